"""Posts application: blogs, posts, microblog, comments, ratings, likes, bookmarks, flags.

Commands load aggregates, call them and save (``run_command``); rules that need
more than one aggregate (the blog's owner, the comment's target, the mentioned
profiles) and who may do what live here.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import grpc

from watercooler.auth import Principal
from watercooler.client import ServiceCredentials, channel
from watercooler.config import Settings
from watercooler.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import CommandContext, EventSourcedApplication
from watercooler.guidelines import GuidelinesAcceptance
from watercooler.moderation import FLAG_THRESHOLD, flag_threshold
from watercooler.personaldata import KeyRing
from watercooler.visibility import INTERNAL, PRIVATE, PUBLIC, Content, may_see_content

from .domainmodel import (
    COMMUNITY,
    PUBLISHED,
    Blog,
    Bookmark,
    Comment,
    Flaggable,
    Like,
    Micropost,
    Post,
    Rating,
    audience,
    blog_id,
    bookmark_id,
    like_id,
    normalize_url,
    parse_mentions,
    parse_uuid,
    rating_id,
    validate_bookmark_fields,
    validate_handle,
    validate_post_fields,
    validate_rating,
)
from .membership import CommunityMembership

DEFAULT_FLAG_THRESHOLD = FLAG_THRESHOLD  # the platform's one threshold (watercooler.moderation)


@dataclass(frozen=True)
class FlaggableKind:
    """A collection whose items flags can hide and moderators can hide and restore."""

    kind: type
    # Whether the caller is in the item's audience, hidden or not: flags, restore votes and
    # moderation reach a hidden item's audience, who answer with the flag state only.
    in_audience: Callable[[Principal, Any], bool]
    # The community whose owners moderate the item ("" when none does).
    community_of: Callable[[Any], str]


@dataclass(frozen=True)
class CommentTarget:
    """What a comment needs to know about its target: who may see it, and whether it takes comments."""

    visibility: str
    community: str
    author_id: str
    # Who is told of a comment or a like on it, when ``author_id`` is not them (a page of a
    # restricted space answers with the caller as ``author_id``): the page's creator.
    told: str = ""

    @property
    def author_to_tell(self) -> str:
        return self.told or self.author_id


class ProfileDirectory:
    """Looks profiles up in the profiles service (its store is not ours to read).

    Profiles are never deleted, so a profile found once is remembered; "not found"
    is not (the profile may be created a moment later)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._stub: Any = None
        self._credentials = ServiceCredentials(settings, "posts")
        self._known: dict[str, dict[str, str]] = {}

    def _profiles(self) -> Any:
        from watercooler.profiles.v1 import profiles_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = profiles_pb2_grpc.ProfileServiceStub(channel(self.settings, "profiles"))
            return self._stub

    def lookup(self, employee_id: str) -> dict[str, str] | None:
        from watercooler.profiles.v1 import profiles_pb2

        if employee_id in self._known:
            return self._known[employee_id]
        try:
            profile = self._profiles().GetProfile(profiles_pb2.GetProfileRequest(name=f"profiles/{employee_id}"), metadata=self._credentials.metadata(), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        found = dict(
            employee_id=employee_id, display_name=profile.display_name, sort_name=profile.sort_name, department=profile.department, country=profile.country
        )
        self._known[employee_id] = found
        return found


def may_read(principal: Principal, visibility: str, community: str, author_id: str, is_member: Callable[[str, str], bool] | None = None) -> bool:
    """Whether the audience of an item (watercooler.visibility's content rule) includes the
    principal. Membership lives in the profiles service, so the application passes
    ``is_member(community_id, employee_id)`` (services/posts/membership.py), asked only
    when it decides."""
    return may_see_content(principal, Content(visibility, community, author_id), is_member)


class PostsApplication(EventSourcedApplication):
    service_name = "posts"

    def __init__(
        self, settings: Settings, profiles: ProfileDirectory | None = None, membership: CommunityMembership | None = None,
        guidelines: GuidelinesAcceptance | None = None, personal_keys: KeyRing | None = None,
    ):
        super().__init__(settings, personal_keys)
        self.profiles = profiles or ProfileDirectory(settings)
        self.membership = membership or CommunityMembership(settings)
        self.guidelines = guidelines or GuidelinesAcceptance(settings, "posts")
        self.flag_threshold = flag_threshold()
        # Comment targets by collection (the first segment of the resource name). The wiki and
        # media code registers its own: ``app.comment_targets["spaces"] = resolver`` where the
        # resolver takes the full name and returns a CommentTarget or raises NotFound /
        # FailedPrecondition (deleted or hidden).
        self.comment_targets: dict[str, Callable[..., CommentTarget]] = {
            "posts": self._post_target,
            "microposts": self._micropost_target,
        }
        # Flaggable collections; the library registers pages and media (library/targets.py).
        self.flaggable: dict[str, FlaggableKind] = {
            collection: FlaggableKind(kind, lambda principal, item: self.sees(principal, item, moderating=True), self._community_of)
            for collection, kind in (("posts", Post), ("microposts", Micropost), ("comments", Comment), ("bookmarks", Bookmark))
        }
        # Called with an item's name once flags hid it (the library forgets what it cached of it).
        self.on_hidden: list[Callable[[str], None]] = []
        # Likeable collections: microposts and comments.
        self.like_targets: dict[str, Callable[..., CommentTarget]] = {
            "microposts": self._micropost_target,
            "comments": self._comment_target,
        }

    @staticmethod
    def _refuse_guest(principal: Principal) -> None:
        """Guests were invited to jams: they write there (the jams service) and read public
        content, but write nothing here (no posts, microposts, comments, ratings, likes,
        bookmarks, flags or restore votes), refused before any lookup so that nothing is
        disclosed either."""
        if principal.kind == "guest":
            raise PermissionDenied("guests write only in the jams that invited them", field="authorization")

    def _check_may_publish(self, principal: Principal, item: Any, before: tuple[str, str] = ("", "")) -> None:
        """A person puts an item into a community only as one of its members (a service acts
        for anyone). Asked when the item's audience is new or changes: an author who has left
        may still correct an item they published there."""
        if item.visibility == COMMUNITY:
            self._check_community_open(item.community)
        if item.visibility != COMMUNITY or principal.is_service or (item.visibility, item.community) == before:
            return
        if not self.membership.is_member(item.community, principal.subject):
            raise PermissionDenied(f"only members of communities/{item.community} may publish to it", field="community")

    def _check_guidelines(self, principal: Principal, item: Any) -> None:
        """What another person can see is written only after accepting the current participation
        guidelines (watercooler.guidelines); a private draft or a PRIVATE item is nobody else's."""
        if getattr(item, "state", PUBLISHED) == PUBLISHED and item.visibility != PRIVATE:
            self.guidelines.require(principal)

    # --- blogs --------------------------------------------------------------------------------------
    def create_blog(self, ctx: CommandContext, fields: dict[str, Any], request_fingerprint: str) -> Blog:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a blog belongs to a person: call as its owner", field="owner")
        handle = validate_handle(fields.get("handle", ""))

        def decide() -> Blog:
            owner = self.profiles.lookup(principal.subject)
            if owner is None:
                raise FailedPrecondition(f"profiles/{principal.subject} does not exist; create the profile first", field="owner")
            if self.exists(blog_id(handle)):
                raise AlreadyExists(f"blogs/{handle} already exists", field="handle")
            blog = Blog.create(
                handle, fields.get("title", ""), fields.get("description", ""), owner, fields.get("visibility", ""), fields.get("community", ""), principal.kind
            )
            self._check_may_publish(principal, blog)
            self._check_guidelines(principal, blog)
            return blog

        try:
            return self.run_command(ctx, "CreateBlog", request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted:
            raise AlreadyExists(f"blogs/{handle} already exists", field="handle") from None

    def get_blog(self, handle: str) -> Blog:
        return self.load(blog_id(handle), Blog, f"blogs/{handle}")

    def read_blog(self, principal: Principal, handle: str) -> Blog:
        """A blog as the caller may see it: one they may not see does not exist for them."""
        blog = self.get_blog(handle)
        if not self.may_read(principal, blog.visibility, blog.community, blog.owner_id):
            raise NotFound(f"blogs/{handle} not found", field="name")
        return blog

    def update_blog(self, ctx: CommandContext, handle: str, fields: dict[str, str], etag: str, request_fingerprint: str) -> Blog:
        self._refuse_guest(ctx.principal)
        def decide() -> Blog:
            blog = self.read_blog(ctx.principal, handle)  # a blog the caller may not see is NOT_FOUND
            if etag and etag != blog.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {blog.etag}", field="etag", current_etag=blog.etag)
            before = (blog.visibility, blog.community)
            blog.edit(ctx.principal.subject, fields)
            self._check_may_publish(ctx.principal, blog, before)
            self._check_guidelines(ctx.principal, blog)
            return blog

        return self.run_command(ctx, "UpdateBlog", request_fingerprint, decide)  # type: ignore[return-value]

    # --- posts ----------------------------------------------------------------------------------------
    def create_post(self, ctx: CommandContext, handle: str, fields: dict[str, Any], request_fingerprint: str) -> Post:
        self._refuse_guest(ctx.principal)
        def decide() -> Post:
            blog = self.load(blog_id(handle), Blog, f"blogs/{handle}", field="parent")
            if not self.may_read(ctx.principal, blog.visibility, blog.community, blog.owner_id):
                raise NotFound(f"blogs/{handle} not found", field="parent")
            if ctx.principal.subject != blog.owner_id:
                raise PermissionDenied("only the blog's owner may post in it", field="parent")
            values = validate_post_fields(fields, ctx.principal.kind)
            post = Post.create(blog.handle, ctx.principal.subject, values)
            self._check_may_publish(ctx.principal, post)
            self._check_guidelines(ctx.principal, post)
            return post

        return self.run_command(ctx, "CreatePost", request_fingerprint, decide)  # type: ignore[return-value]

    def get_post(self, principal: Principal, post_id: str) -> Post:
        post = self.load(parse_uuid(post_id, "name"), Post, f"posts/{post_id}")
        if not self.sees(principal, post):
            raise NotFound(f"posts/{post_id} not found", field="name")
        return post

    def update_post(self, ctx: CommandContext, post_id: str, fields: dict[str, Any], etag: str, request_fingerprint: str) -> Post:
        self._refuse_guest(ctx.principal)
        def decide() -> Post:
            post = self._own(ctx.principal, Post, "posts", post_id, etag)
            current = {name: getattr(post, name) for name in ("title", "body", "tags", "visibility", "community", "classification")}
            post.edit(ctx.principal.subject, validate_post_fields(fields, ctx.principal.kind, current))
            self._check_may_publish(ctx.principal, post, (current["visibility"], current["community"]))
            self._check_guidelines(ctx.principal, post)
            return post

        return self.run_command(ctx, "UpdatePost", request_fingerprint, decide)  # type: ignore[return-value]

    def publish_post(self, ctx: CommandContext, post_id: str, etag: str, request_fingerprint: str) -> Post:
        self._refuse_guest(ctx.principal)
        def decide() -> Post:
            post = self._own(ctx.principal, Post, "posts", post_id, etag)
            post.publish(ctx.principal.subject, ctx.principal.kind, _now())
            self._check_guidelines(ctx.principal, post)
            return post

        return self.run_command(ctx, "PublishPost", request_fingerprint, decide)  # type: ignore[return-value]

    def delete_post(self, ctx: CommandContext, post_id: str, etag: str, request_fingerprint: str) -> Post:
        self._refuse_guest(ctx.principal)
        def decide() -> Post:
            post = self._own(ctx.principal, Post, "posts", post_id, etag)
            post.delete(ctx.principal.subject, moderator=ctx.principal.is_service)
            return post

        return self.run_command(ctx, "DeletePost", request_fingerprint, decide)  # type: ignore[return-value]

    def list_revisions(self, principal: Principal, post_id: str) -> list[dict[str, Any]]:
        """Every revision, oldest first, read from the post's own events."""
        post = self.get_post(principal, post_id)
        revisions = []
        for stored in self.repository.event_store.get(post.id):
            name = type(stored).__name__
            if name == "PostCreated" or (name == "PostEdited" and {"title", "body", "tags"} & set(stored.changed_fields)):
                revisions.append(
                    {
                        "revision": getattr(stored, "revision", 1),
                        "title": stored.title,
                        "body": stored.body,
                        "tags": list(stored.tags),
                        "time": stored.timestamp,
                    }
                )
        return revisions

    # --- microblog ------------------------------------------------------------------------------------
    def create_micropost(self, ctx: CommandContext, fields: dict[str, Any], request_fingerprint: str) -> Micropost:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a micropost is written by a person", field="author")

        def decide() -> Micropost:
            visibility, community = audience(fields.get("visibility", ""), fields.get("community", ""), principal.kind)
            text_value = fields.get("text", "")
            mentions = parse_mentions(text_value)
            for handle in mentions:
                if self.profiles.lookup(handle) is None:
                    raise InvalidArgument(f"@{handle} is not a known profile", field="text")
            for field_name in ("reply_to", "repost_of"):
                if fields.get(field_name):
                    other = self._micropost(fields[field_name], principal, field_name)
                    if other.hidden:
                        raise FailedPrecondition(f"microposts/{fields[field_name]} is hidden", field=field_name)
            micropost = Micropost.create(principal.subject, text_value, mentions, fields.get("reply_to", ""), fields.get("repost_of", ""), visibility, community,
                                         fields.get("classification", INTERNAL))
            self._check_may_publish(principal, micropost)
            self._check_guidelines(principal, micropost)
            return micropost

        return self.run_command(ctx, "CreateMicropost", request_fingerprint, decide)  # type: ignore[return-value]

    def get_micropost(self, principal: Principal, micropost_id: str) -> Micropost:
        return self._micropost(micropost_id, principal, "name")

    def update_micropost(self, ctx: CommandContext, micropost_id: str, text_value: str, etag: str, request_fingerprint: str) -> Micropost:
        self._refuse_guest(ctx.principal)
        def decide() -> Micropost:
            micropost = self._own(ctx.principal, Micropost, "microposts", micropost_id, etag)
            mentions = parse_mentions(text_value)
            for handle in mentions:
                if self.profiles.lookup(handle) is None:
                    raise InvalidArgument(f"@{handle} is not a known profile", field="text")
            micropost.edit(ctx.principal.subject, text_value, mentions)
            self._check_guidelines(ctx.principal, micropost)
            return micropost

        return self.run_command(ctx, "UpdateMicropost", request_fingerprint, decide)  # type: ignore[return-value]

    def delete_micropost(self, ctx: CommandContext, micropost_id: str, request_fingerprint: str) -> Micropost:
        self._refuse_guest(ctx.principal)
        def decide() -> Micropost:
            micropost = self._own(ctx.principal, Micropost, "microposts", micropost_id, "")
            micropost.delete(ctx.principal.subject, moderator=ctx.principal.is_service)
            return micropost

        return self.run_command(ctx, "DeleteMicropost", request_fingerprint, decide)  # type: ignore[return-value]

    def _micropost(self, micropost_id: str, principal: Principal, field: str) -> Micropost:
        micropost = self.load(parse_uuid(micropost_id, field), Micropost, f"microposts/{micropost_id}", field=field)
        if not self.sees(principal, micropost):
            raise NotFound(f"microposts/{micropost_id} not found", field=field)
        return micropost

    # --- comments ---------------------------------------------------------------------------------------
    def create_comment(self, ctx: CommandContext, target: str, parent_id: str, body: str, request_fingerprint: str) -> Comment:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a comment is written by a person", field="author")

        def decide() -> Comment:
            about = self._target(self.comment_targets, target, principal, "target")
            if parent_id:
                parent = self.load(parse_uuid(parent_id, "parent"), Comment, f"comments/{parent_id}", field="parent")
                if parent.deleted:
                    raise FailedPrecondition(f"comments/{parent_id} was deleted", field="parent")
                if parent.target != target:
                    raise InvalidArgument(f"comments/{parent_id} is about {parent.target}, not {target}", field="parent")
            comment = Comment.create(target, parent_id, principal.subject, body, about.visibility, about.community, about.author_to_tell)
            self._check_community_open(self._community_of(comment))
            self._check_guidelines(principal, comment)
            return comment

        return self.run_command(ctx, "CreateComment", request_fingerprint, decide)  # type: ignore[return-value]

    def get_comment(self, principal: Principal, comment_id: str) -> Comment:
        comment = self.load(parse_uuid(comment_id, "name"), Comment, f"comments/{comment_id}")
        if not self.sees(principal, comment):
            raise NotFound(f"comments/{comment_id} not found", field="name")
        return comment

    def _comment_readable(self, comment: Comment, principal: Principal) -> bool:
        """A comment is read by whoever may read its target *now* (the audience it was created
        with is only a copy): not when the target is deleted, not visible to the caller, hidden
        by flags or an unpublished draft, except to the target's author (and services) for the
        last two, who see the item itself too."""
        collection, _, target_id = comment.target.partition("/")
        try:
            if collection in ("posts", "microposts"):
                kind = Post if collection == "posts" else Micropost
                return self.sees(principal, self.load(parse_uuid(target_id, "target"), kind, comment.target, field="target"))
            # Wiki pages and media items: their own resolvers (library/targets.py) decide.
            self._target(self.comment_targets, comment.target, principal, "target")
            return True
        except (NotFound, FailedPrecondition, InvalidArgument):
            return False

    def update_comment(self, ctx: CommandContext, comment_id: str, body: str, etag: str, request_fingerprint: str) -> Comment:
        self._refuse_guest(ctx.principal)
        def decide() -> Comment:
            comment = self._own(ctx.principal, Comment, "comments", comment_id, etag)
            comment.edit(ctx.principal.subject, body)
            self._check_guidelines(ctx.principal, comment)
            return comment

        return self.run_command(ctx, "UpdateComment", request_fingerprint, decide)  # type: ignore[return-value]

    def delete_comment(self, ctx: CommandContext, comment_id: str, etag: str, request_fingerprint: str) -> Comment:
        self._refuse_guest(ctx.principal)
        def decide() -> Comment:
            comment = self._own(ctx.principal, Comment, "comments", comment_id, etag)
            comment.delete(ctx.principal.subject, moderator=ctx.principal.is_service)
            return comment

        return self.run_command(ctx, "DeleteComment", request_fingerprint, decide)  # type: ignore[return-value]

    # --- ratings and likes --------------------------------------------------------------------------------
    def rate_post(self, ctx: CommandContext, post_id: str, value: int, request_fingerprint: str) -> Rating:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a rating is given by a person", field="post")
        validate_rating(value)

        def decide() -> Rating:
            about = self._target({"posts": self._post_target}, f"posts/{post_id}", principal, "post")
            self._check_community_open(about.community if about.visibility == COMMUNITY else "")
            key = rating_id(post_id, principal.subject)
            if self.exists(key):
                rating: Rating = self.repository.get(key)
                if rating.value == 0:
                    rating._changed(value=value)  # a withdrawn rating given again
                else:
                    rating.change(value)
                return rating
            return Rating(post=post_id, rater_id=principal.subject, value=value, visibility=about.visibility, community=about.community)

        # The last rating wins: a concurrent rating by the same person is simply re-applied.
        for _ in range(3):
            try:
                return self.run_command(ctx, "RatePost", request_fingerprint, decide)  # type: ignore[return-value]
            except Aborted:
                continue
        return self.run_command(ctx, "RatePost", request_fingerprint, decide)  # type: ignore[return-value]

    def withdraw_rating(self, ctx: CommandContext, post_id: str, request_fingerprint: str) -> Rating:
        self._refuse_guest(ctx.principal)
        def decide() -> Rating:
            rating = self.load(rating_id(post_id, ctx.principal.subject), Rating, f"posts/{post_id}/ratings/{ctx.principal.subject}", field="post")
            rating.withdraw()
            return rating

        return self.run_command(ctx, "WithdrawRating", request_fingerprint, decide)  # type: ignore[return-value]

    def like(self, ctx: CommandContext, target: str, liked: bool, request_fingerprint: str) -> Like:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a like is given by a person", field="target")

        def decide() -> Like:
            about = self._target(self.like_targets, target, principal, "target")
            if target.startswith("comments/"):  # a comment's audience (and community) is its target's
                self._check_community_open(self._community_of(self.load(parse_uuid(target.split("/", 1)[1], "target"), Comment, target, field="target")))
            else:
                self._check_community_open(about.community if about.visibility == COMMUNITY else "")
            key = like_id(target, principal.subject)
            if self.exists(key):
                existing: Like = self.repository.get(key)
                existing.like() if liked else existing.unlike()
                return existing
            if not liked:
                raise FailedPrecondition("you do not like this", field="target")
            return Like(target=target, person_id=principal.subject, target_author=about.author_to_tell)

        return self.run_command(ctx, "Like" if liked else "Unlike", request_fingerprint, decide)  # type: ignore[return-value]

    # --- bookmarks ----------------------------------------------------------------------------------------
    def create_bookmark(self, ctx: CommandContext, fields: dict[str, Any], request_fingerprint: str) -> Bookmark:
        self._refuse_guest(ctx.principal)
        principal = ctx.principal
        if principal.is_service:
            raise PermissionDenied("a bookmark belongs to a person", field="owner")
        url = normalize_url(fields.get("url", ""))

        def decide() -> Bookmark:
            values = validate_bookmark_fields(fields, principal.kind)
            key = bookmark_id(principal.subject, url)
            if self.exists(key):
                bookmark: Bookmark = self.repository.get(key)
                bookmark.resave(values)  # a deleted one saved again: published anew
            else:
                bookmark = Bookmark(owner_id=principal.subject, url=url, **values)
            self._check_may_publish(principal, bookmark)
            self._check_guidelines(principal, bookmark)
            return bookmark

        return self.run_command(ctx, "CreateBookmark", request_fingerprint, decide)  # type: ignore[return-value]

    def get_bookmark(self, principal: Principal, bookmark_id_: str) -> Bookmark:
        bookmark = self.load(parse_uuid(bookmark_id_, "name"), Bookmark, f"bookmarks/{bookmark_id_}")
        if not self.sees(principal, bookmark):
            raise NotFound(f"bookmarks/{bookmark_id_} not found", field="name")
        return bookmark

    def update_bookmark(self, ctx: CommandContext, bookmark_id_: str, fields: dict[str, Any], etag: str, request_fingerprint: str) -> Bookmark:
        self._refuse_guest(ctx.principal)
        def decide() -> Bookmark:
            bookmark = self._own(ctx.principal, Bookmark, "bookmarks", bookmark_id_, etag)
            current = {name: getattr(bookmark, name) for name in ("title", "tags", "notes", "visibility", "community", "classification")}
            bookmark.edit(ctx.principal.subject, validate_bookmark_fields(fields, ctx.principal.kind, current))
            self._check_may_publish(ctx.principal, bookmark, (current["visibility"], current["community"]))
            self._check_guidelines(ctx.principal, bookmark)
            return bookmark

        return self.run_command(ctx, "UpdateBookmark", request_fingerprint, decide)  # type: ignore[return-value]

    def delete_bookmark(self, ctx: CommandContext, bookmark_id_: str, request_fingerprint: str) -> Bookmark:
        self._refuse_guest(ctx.principal)
        def decide() -> Bookmark:
            bookmark = self._own(ctx.principal, Bookmark, "bookmarks", bookmark_id_, "")
            bookmark.delete(ctx.principal.subject, moderator=ctx.principal.is_service)
            return bookmark

        return self.run_command(ctx, "DeleteBookmark", request_fingerprint, decide)  # type: ignore[return-value]

    # --- flags --------------------------------------------------------------------------------------------
    def flag(self, ctx: CommandContext, collection: str, item_id: str, reason: str, request_fingerprint: str) -> Flaggable:
        self._refuse_guest(ctx.principal)
        def decide() -> Flaggable:
            item = self._visible_item(collection, item_id, ctx.principal)
            if ctx.principal.is_service:
                # A platform job (legal takedown, spam filter) acts for the company: one hide is enough.
                item.moderate_hide(ctx.principal.subject, reason)
            else:
                item.flag(ctx.principal.subject, reason, self.flag_threshold)
            return item

        item: Flaggable = self.run_command(ctx, "FlagItem", request_fingerprint, decide)  # type: ignore[assignment]
        if item.hidden:
            for hidden in self.on_hidden:
                hidden(f"{collection}/{item_id}")
        return item

    def vote_restore(self, ctx: CommandContext, collection: str, item_id: str, request_fingerprint: str) -> Flaggable:
        self._refuse_guest(ctx.principal)
        def decide() -> Flaggable:
            item = self._visible_item(collection, item_id, ctx.principal)
            if ctx.principal.is_service:
                item.moderate_restore()
            else:
                item.vote_restore(ctx.principal.subject, self.flag_threshold)
            return item

        return self.run_command(ctx, "VoteRestoreItem", request_fingerprint, decide)  # type: ignore[return-value]

    def moderate(self, ctx: CommandContext, collection: str, item_id: str, hide: bool, reason: str, request_fingerprint: str) -> Flaggable:
        """An owner of the item's community hides it, or brings a hidden one back, saying why
        (watercooler.moderation); a service moderates anything. Others in its audience: ✘."""
        self._refuse_guest(ctx.principal)
        principal = ctx.principal

        def decide() -> Flaggable:
            item = self._visible_item(collection, item_id, principal)
            if not principal.is_service:
                community = self.flaggable[collection].community_of(item)
                # Owners who left the company moderate no more (memberships reach employees only).
                if not community or principal.kind != "employee" or principal.subject not in self.membership.owners(community):
                    raise PermissionDenied("only an owner of the item's community (or a service) moderates it", field="name")
            if hide:
                item.hide_as_moderator(principal.subject, reason)
            else:
                item.restore_as_moderator(principal.subject, reason)
            return item

        item: Flaggable = self.run_command(ctx, "HideItem" if hide else "RestoreItem", request_fingerprint, decide)  # type: ignore[assignment]
        if item.hidden:
            for hidden in self.on_hidden:
                hidden(f"{collection}/{item_id}")
        return item

    def _community_of(self, item: Any) -> str:
        """The community whose owners moderate a post, micropost, bookmark or comment: its own
        when it is COMMUNITY; for a comment, its target's (a comment is its target's audience)."""
        if isinstance(item, Comment):
            collection, _, target_id = item.target.partition("/")
            entry = self.flaggable.get(collection)
            try:
                return "" if entry is None else entry.community_of(self.load(parse_uuid(target_id, "name"), entry.kind, item.target))
            except NotFound:
                return ""
        return item.community if getattr(item, "visibility", "") == COMMUNITY else ""

    def _visible_item(self, collection: str, item_id: str, principal: Principal) -> Flaggable:
        entry = self.flaggable.get(collection)
        if entry is None:
            raise InvalidArgument(f"must name one of: {', '.join(f'{c}/{{id}}' for c in self.flaggable)}", field="name")
        item = self.load(parse_uuid(item_id, "name"), entry.kind, f"{collection}/{item_id}")
        if not entry.in_audience(principal, item):
            raise NotFound(f"{collection}/{item_id} not found", field="name")
        return item

    # --- helpers ------------------------------------------------------------------------------------------
    def may_read(self, principal: Principal, visibility: str, community: str, author_id: str) -> bool:
        return may_read(principal, visibility, community, author_id, self.membership.is_member)

    def sees(self, principal: Principal, item: Any, moderating: bool = False) -> bool:
        """Whether a read by name shows ``item`` (a post, micropost, comment or bookmark).
        ``moderating``: flags and restore votes reach a hidden item's audience, who vote on
        it without reading it (they answer with the flag state only)."""
        seen = audience_of(item)
        if isinstance(item, Comment):
            # A comment's audience is its target's, now (_comment_readable): the audience copied
            # into it when it was written is history; only its own hidden and deleted state count.
            seen = replace(seen, visibility=PUBLIC, community="")
        if moderating:
            seen = replace(seen, hidden=False)
        if not may_see_content(principal, seen, self.membership.is_member):
            return False
        return not isinstance(item, Comment) or self._comment_readable(item, principal)

    def _own(self, principal: Principal, kind: type, collection: str, item_id: str, etag: str) -> Any:
        """Load an item for a change by its author (the aggregate refuses anyone else); a stale
        etag is ABORTED. An item the caller may not even see is NOT_FOUND, as for a read:
        PERMISSION_DENIED would tell a stranger that a PRIVATE post or a draft exists."""
        item = self.load(parse_uuid(item_id, "name"), kind, f"{collection}/{item_id}")
        if not self.sees(principal, item):
            raise NotFound(f"{collection}/{item_id} not found", field="name")
        if etag and etag != item.etag:
            raise Aborted(f"etag {etag} is stale; the current etag is {item.etag}", field="etag", current_etag=item.etag)
        if not principal.is_service:  # a service's takedown still reaches an archived community
            self._check_community_open(self._community_of(item))
        return item

    def _check_community_open(self, community: str) -> None:
        """An archived community is read-only: nothing more is written into it (new items,
        edits, comments); asked of the profiles service, which keeps the community."""
        if community and self.membership.archived(community):
            raise FailedPrecondition(f"communities/{community} is archived (read-only)", field="community")

    def _target(self, registry: dict[str, Callable[..., CommentTarget]], target: str, principal: Principal, field: str) -> CommentTarget:
        collection = target.split("/", 1)[0]
        resolver = registry.get(collection)
        if resolver is None or "/" not in target:
            raise InvalidArgument(f"must name one of: {', '.join(f'{c}/{{id}}' for c in registry)}", field=field)
        about = resolver(target, principal, field)
        if not self.may_read(principal, about.visibility, about.community, about.author_id):
            raise NotFound(f"{target} not found", field=field)
        return about

    def _post_target(self, target: str, principal: Principal, field: str = "target") -> CommentTarget:
        post_id = target.split("/", 1)[1]
        post = self.load(parse_uuid(post_id, field), Post, target, field=field)
        if not self.sees(principal, post):  # deleted, another person's draft or hidden post: none exists for them
            raise NotFound(f"{target} not found", field=field)
        if post.hidden:
            raise FailedPrecondition(f"{target} is hidden by community flags", field=field)
        if post.state != PUBLISHED:
            raise FailedPrecondition(f"{target} is not published", field=field)
        return CommentTarget(post.visibility, post.community, post.author_id)

    def _micropost_target(self, target: str, principal: Principal, field: str = "target") -> CommentTarget:
        micropost_id = target.split("/", 1)[1]
        micropost = self.load(parse_uuid(micropost_id, field), Micropost, target, field=field)
        if not self.sees(principal, micropost):  # deleted or hidden: none exists for others
            raise NotFound(f"{target} not found", field=field)
        if micropost.hidden:
            raise FailedPrecondition(f"{target} is hidden by community flags", field=field)
        return CommentTarget(micropost.visibility, micropost.community, micropost.author_id)

    def _comment_target(self, target: str, principal: Principal, field: str = "target") -> CommentTarget:
        comment_id = target.split("/", 1)[1]
        comment = self.load(parse_uuid(comment_id, field), Comment, target, field=field)
        if not self.sees(principal, comment):
            raise NotFound(f"{target} not found", field=field)
        if comment.hidden:
            raise FailedPrecondition(f"{target} is hidden by community flags", field=field)
        # Its audience is its target's, checked just above: nothing more to ask of the caller.
        return CommentTarget(PUBLIC, "", comment.author_id)


def audience_of(item: Any) -> Content:
    """What decides who sees a stored content item."""
    return Content(
        item.visibility, item.community, item.owner_id if isinstance(item, Bookmark) else item.author_id,
        published=getattr(item, "state", PUBLISHED) == PUBLISHED, hidden=getattr(item, "hidden", False),
        deleted=getattr(item, "deleted", False) or (isinstance(item, Bookmark) and item.erased),
        classification=getattr(item, "classification", INTERNAL),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


APPLICATION = PostsApplication

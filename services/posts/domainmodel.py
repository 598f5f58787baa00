"""Blogs, posts, microblog, comments, ratings, likes, bookmarks and community flags.

The aggregates' decorated methods are the events they record; every rule about
what these items may contain or who may do what to them lives here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from eventsourcing.domain import event

from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import EventSourcedAggregate, stable_id
from watercooler.mentions import MAX_MENTIONS as MAX_MENTIONS  # re-exported: one definition, shared with the read side
from watercooler.mentions import parse_mentions as parse_mentions
from watercooler.moderation import Flaggable as _Flaggable
from watercooler.text import clean, has_control_characters
from watercooler.urls import MAX_URL_LENGTH
from watercooler.urls import normalize_url as normalize_url
from watercooler.visibility import CLASSIFICATIONS, COMMUNITY, INTERNAL, PUBLISHED, classification_conflict
from watercooler.visibility import CONTENT_VISIBILITIES as VISIBILITIES
from watercooler.visibility import PRIVATE as PRIVATE  # re-exported for the service
from watercooler.visibility import PUBLIC as PUBLIC

DRAFT = "DRAFT"

LIMITS = {
    "handle": 64,
    "blog_title": 200,
    "description": 2000,
    "title": 300,
    "body": 100_000,
    "text": 280,
    "comment": 10_000,
    "notes": 5000,
    "bookmark_title": 500,
    "reason": 500,
    "url": MAX_URL_LENGTH,
}
MAX_TAGS = 20
MAX_TAG_LENGTH = 50

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_HASHTAG = re.compile(r"(?<![\w#])#(\w{1,50})")


# --- shared validation ---------------------------------------------------------------------
def text(field: str, value: str, limit: int, required: bool = False, multiline: bool = False) -> str:
    value = clean(value or "")
    if required and not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > limit:
        raise InvalidArgument(f"must be at most {limit} characters", field=field)
    if has_control_characters(value, allow_newlines=multiline):
        raise InvalidArgument("must not contain control characters", field=field)
    return value


def tags(values: list[str], field: str = "tags") -> list[str]:
    out: list[str] = []
    for raw in values:
        tag = clean(raw).lower().lstrip("#")
        if not tag or len(tag) > MAX_TAG_LENGTH or has_control_characters(tag) or any(ch.isspace() for ch in tag):
            raise InvalidArgument(f"each tag must be 1-{MAX_TAG_LENGTH} printable characters without spaces", field=field)
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags", field=field)
    return out


def audience(visibility: str, community: str, principal_kind: str) -> tuple[str, str]:
    """Check an item's visibility and community; alumni and guests cannot publish internal content."""
    if visibility not in VISIBILITIES:
        raise InvalidArgument(f"must be one of {', '.join(VISIBILITIES)}", field="visibility")
    if visibility == COMMUNITY:
        if not _COMMUNITY.match(community or ""):
            raise InvalidArgument("a COMMUNITY item needs 'communities/{id}'", field="community")
    elif community:
        raise InvalidArgument("only a COMMUNITY item names a community", field="community")
    if visibility == INTERNAL and principal_kind in ("alumni", "guest"):
        raise PermissionDenied(f"{principal_kind} principals cannot publish INTERNAL content", field="visibility")
    return visibility, community


def validate_handle(handle: str, field: str = "handle") -> str:
    handle = (handle or "").strip().lower()
    if not _HANDLE.match(handle):
        raise InvalidArgument("must be 3-64 lowercase letters, digits or '-', starting with a letter or digit", field=field)
    return handle


def parse_hashtags(value: str) -> list[str]:
    return list(dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(value)))[:MAX_TAGS]


# --- ids ---------------------------------------------------------------------------------------
def blog_id(handle: str) -> uuid.UUID:
    return stable_id("blog", handle)


def rating_id(post_id: str, rater_id: str) -> uuid.UUID:
    return stable_id("rating", post_id, rater_id)


def like_id(target: str, person_id: str) -> uuid.UUID:
    return stable_id("like", target, person_id)


def bookmark_id(owner_id: str, url: str) -> uuid.UUID:
    return stable_id("bookmark", owner_id, url)


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{value!r} not found", field=field) from None


# --- community self-regulation -------------------------------------------------------------------
class Flaggable(_Flaggable):
    """The platform's flags (watercooler.moderation), with the posts service's etag."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


# --- blogs -------------------------------------------------------------------------------------
class Blog(EventSourcedAggregate):
    @event("BlogCreated")
    def __init__(
        self,
        handle: str,
        title: str,
        description: str,
        owner_id: str,
        owner_display_name: str,
        owner_sort_name: str,
        owner_department: str,
        owner_country: str,
        visibility: str,
        community: str,
    ):
        self.handle = handle
        self.title = title
        self.description = description
        self.owner_id = owner_id
        self.owner_display_name = owner_display_name
        self.owner_sort_name = owner_sort_name
        self.owner_department = owner_department
        self.owner_country = owner_country
        self.visibility = visibility
        self.community = community

    @classmethod
    def create(cls, handle: str, title: str, description: str, owner: dict[str, str], visibility: str, community: str, principal_kind: str) -> Blog:
        handle = validate_handle(handle)
        visibility, community = audience(visibility, community, principal_kind)
        return cls(
            handle=handle,
            title=text("title", title, LIMITS["blog_title"], required=True),
            description=text("description", description, LIMITS["description"], multiline=True),
            owner_id=owner["employee_id"],
            owner_display_name=owner["display_name"],
            owner_sort_name=owner["sort_name"] or owner["display_name"],
            owner_department=owner["department"],
            owner_country=owner["country"],
            visibility=visibility,
            community=community,
        )

    @staticmethod
    def create_id(handle: str) -> uuid.UUID:
        return blog_id(handle)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def edit(self, person_id: str, fields: dict[str, str]) -> None:
        if person_id != self.owner_id:
            raise PermissionDenied("only the blog's owner may edit it", field="name")
        title = text("title", fields["title"], LIMITS["blog_title"], required=True) if "title" in fields else self.title
        description = text("description", fields["description"], LIMITS["description"], multiline=True) if "description" in fields else self.description
        changed = [name for name, new in (("title", title), ("description", description)) if new != getattr(self, name)]
        if changed:
            self._edited(changed_fields=changed, title=title, description=description)

    @event("BlogEdited")
    def _edited(self, changed_fields: list[str], title: str, description: str) -> None:
        self.title = title
        self.description = description


# --- blog posts ---------------------------------------------------------------------------------
POST_FIELDS = ("title", "body", "tags", "visibility", "community", "classification")


def classification(visibility: str, label: str, only_visibility_changed: bool = False) -> str:
    """A known label that the visibility allows (watercooler.visibility.classification_conflict);
    a refusal names what the request changed: the visibility, or else the label."""
    if label not in CLASSIFICATIONS:
        raise InvalidArgument(f"must be one of {', '.join(CLASSIFICATIONS)}", field="classification")
    conflict = classification_conflict(visibility, label)
    if conflict:
        raise InvalidArgument(conflict, field="visibility" if only_visibility_changed else "classification")
    return label


def validate_post_fields(fields: dict[str, Any], principal_kind: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Clean the editable fields; with ``current``, the result is the complete new state."""
    values = dict(current or {})
    if "title" in fields:
        values["title"] = text("title", fields["title"], LIMITS["title"], required=True)
    if "body" in fields:
        values["body"] = text("body", fields["body"], LIMITS["body"], multiline=True)
    if "tags" in fields:
        values["tags"] = tags(list(fields["tags"]))
    if "visibility" in fields or "community" in fields:
        values["visibility"], values["community"] = audience(
            fields.get("visibility", values.get("visibility", "")), fields.get("community", values.get("community", "")), principal_kind
        )
    if "classification" in fields:
        values["classification"] = fields["classification"]
    values["classification"] = classification(
        values.get("visibility", ""), values.get("classification", INTERNAL), "visibility" in fields and "classification" not in fields
    )
    if current is None:
        if "title" not in values:
            raise InvalidArgument("is required", field="title")
        values.setdefault("body", "")
        values.setdefault("tags", [])
        if "visibility" not in values:
            raise InvalidArgument("is required", field="visibility")
    return values


class Post(Flaggable):
    ANSWERING_FIELDS = ("title", "body")

    @event("PostCreated")
    def __init__(self, blog: str, author_id: str, title: str, body: str, tags: list[str], visibility: str, community: str, classification: str = INTERNAL):
        # classification: INTERNAL for a post created before labels existed.
        self.classification = classification
        self.blog = blog
        self.author_id = author_id
        self.title = title
        self.body = body
        self.tags = list(tags)
        self.visibility = visibility
        self.community = community
        self.state = DRAFT
        self.published_at = ""
        self.deleted = False
        self.revision = 1
        self._init_flags()

    @classmethod
    def create(cls, blog: str, author_id: str, values: dict[str, Any]) -> Post:
        values = {"classification": INTERNAL, **values}  # unlabelled: INTERNAL
        return cls(blog=blog, author_id=author_id, **{name: values[name] for name in POST_FIELDS})

    def _check_author(self, person_id: str, field: str = "name", moderator: bool = False) -> None:
        if self.deleted:
            raise NotFound("the post was deleted", field=field)
        if person_id != self.author_id and not moderator:
            raise PermissionDenied("only the author may change a post", field=field)

    def edit(self, person_id: str, values: dict[str, Any]) -> None:
        self._check_author(person_id)
        values = {name: values.get(name, getattr(self, name)) for name in POST_FIELDS}  # what is not given stays
        changed = [name for name in POST_FIELDS if values[name] != getattr(self, name)]
        if not changed:
            return
        self._edited(changed_fields=changed, revision=self.revision + 1, **values)
        self._author_edited(changed)

    @event("PostEdited")
    def _edited(
        self, changed_fields: list[str], title: str, body: str, tags: list[str], visibility: str, community: str, revision: int, classification: str = INTERNAL
    ) -> None:
        self.classification = classification
        self.title, self.body, self.tags = title, body, list(tags)
        self.visibility, self.community = visibility, community
        self.revision = revision

    def publish(self, person_id: str, principal_kind: str, now: str) -> None:
        self._check_author(person_id)
        if self.state == PUBLISHED:
            raise FailedPrecondition("the post is already published", field="name")
        audience(self.visibility, self.community, principal_kind)
        self._published(published_at=now)

    @event("PostPublished")
    def _published(self, published_at: str) -> None:
        self.state = PUBLISHED
        self.published_at = published_at

    def delete(self, person_id: str, moderator: bool = False) -> None:
        """By the author, or by a service moderating (it may delete, never rewrite, someone's words)."""
        self._check_author(person_id, moderator=moderator)
        self._deleted()

    @event("PostDeleted")
    def _deleted(self) -> None:
        self.deleted = True


# --- microblog -----------------------------------------------------------------------------------
class Micropost(Flaggable):
    ANSWERING_FIELDS = ("text",)

    @event("MicropostCreated")
    def __init__(
        self, author_id: str, text: str, mentions: list[str], hashtags: list[str], reply_to: str, repost_of: str, visibility: str, community: str,
        classification: str = INTERNAL,
    ):
        self.classification = classification  # INTERNAL for a micropost written before labels existed
        self.author_id = author_id
        self.text = text
        self.mentions = list(mentions)
        self.hashtags = list(hashtags)
        self.reply_to = reply_to
        self.repost_of = repost_of
        self.visibility = visibility
        self.community = community
        self.deleted = False
        self._init_flags()

    @classmethod
    def create(
        cls, author_id: str, body: str, mentions: list[str], reply_to: str, repost_of: str, visibility: str, community: str, label: str = INTERNAL
    ) -> Micropost:
        body = text("text", body, LIMITS["text"], required=not repost_of, multiline=True)
        label = classification(visibility, label)
        return cls(
            author_id=author_id,
            text=body,
            mentions=mentions,
            hashtags=parse_hashtags(body),
            reply_to=reply_to,
            repost_of=repost_of,
            visibility=visibility,
            community=community,
            classification=label,
        )

    def delete(self, person_id: str, moderator: bool = False) -> None:
        if self.deleted:
            raise NotFound("the micropost was deleted", field="name")
        if person_id != self.author_id and not moderator:
            raise PermissionDenied("only the author may delete a micropost", field="name")
        self._deleted()

    @event("MicropostDeleted")
    def _deleted(self) -> None:
        self.deleted = True

    def edit(self, person_id: str, body: str, mentions: list[str]) -> None:
        """The author's edit; it also restores the micropost if flags hid it (the flags rule)."""
        if self.deleted:
            raise NotFound("the micropost was deleted", field="name")
        if person_id != self.author_id:
            raise PermissionDenied("only the author may edit a micropost", field="name")
        body = text("text", body, LIMITS["text"], required=not self.repost_of, multiline=True)
        changed = ["text"] if body != self.text else []
        self._edited(text=body, mentions=list(mentions), hashtags=parse_hashtags(body))
        self._author_edited(changed)

    @event("MicropostEdited")
    def _edited(self, text: str, mentions: list[str], hashtags: list[str]) -> None:
        self.text = text
        self.mentions = list(mentions)
        self.hashtags = list(hashtags)


# --- comments ------------------------------------------------------------------------------------
class Comment(Flaggable):
    ANSWERING_FIELDS = ("body",)

    @event("CommentCreated")
    def __init__(self, target: str, parent: str, author_id: str, body: str, visibility: str, community: str, target_author: str = ""):
        self.target = target
        self.target_author = target_author  # who is told (the notifications projection); "" in older events
        self.parent = parent
        self.author_id = author_id
        self.body = body
        self.visibility = visibility
        self.community = community
        self.deleted = False
        self._init_flags()

    @classmethod
    def create(cls, target: str, parent: str, author_id: str, body: str, visibility: str, community: str, target_author: str = "") -> Comment:
        body = text("body", body, LIMITS["comment"], required=True, multiline=True)
        return cls(target=target, parent=parent, author_id=author_id, body=body, visibility=visibility, community=community, target_author=target_author)

    def _check_author(self, person_id: str, moderator: bool = False) -> None:
        if self.deleted:
            raise NotFound("the comment was deleted", field="name")
        if person_id != self.author_id and not moderator:
            raise PermissionDenied("only the author may change a comment", field="name")

    def edit(self, person_id: str, body: str) -> None:
        self._check_author(person_id)
        body = text("body", body, LIMITS["comment"], required=True, multiline=True)
        if body == self.body:
            return
        self._edited(body=body)
        self._author_edited(["body"])

    @event("CommentEdited")
    def _edited(self, body: str) -> None:
        self.body = body

    def delete(self, person_id: str, moderator: bool = False) -> None:
        self._check_author(person_id, moderator)
        self._deleted()

    @event("CommentDeleted")
    def _deleted(self) -> None:
        self.deleted = True


# --- ratings and likes ---------------------------------------------------------------------------
def validate_rating(value: int) -> int:
    if not 1 <= value <= 5:
        raise InvalidArgument("must be 1 to 5", field="value")
    return value


class Rating(EventSourcedAggregate):
    """One per person and post: the last value wins; withdrawn counts as none."""

    @staticmethod
    def create_id(post: str, rater_id: str) -> uuid.UUID:
        return rating_id(post, rater_id)

    @event("PostRated")
    def __init__(self, post: str, rater_id: str, value: int, visibility: str, community: str):
        self.post = post
        self.rater_id = rater_id
        self.value = value
        self.visibility = visibility
        self.community = community

    def change(self, value: int) -> None:
        if value != self.value:
            self._changed(value=validate_rating(value))

    @event("RatingChanged")
    def _changed(self, value: int) -> None:
        self.value = value

    def withdraw(self) -> None:
        if self.value == 0:
            raise FailedPrecondition("the rating is already withdrawn", field="name")
        self._withdrawn()

    @event("RatingWithdrawn")
    def _withdrawn(self) -> None:
        self.value = 0


class Like(EventSourcedAggregate):
    @staticmethod
    def create_id(target: str, person_id: str) -> uuid.UUID:
        return like_id(target, person_id)

    @event("Liked")
    def __init__(self, target: str, person_id: str, target_author: str = ""):
        self.target = target
        self.target_author = target_author  # who is told (the notifications projection); "" in older events
        self.person_id = person_id
        self.active = True

    def like(self) -> None:
        if not self.active:
            self._reliked()

    def unlike(self) -> None:
        if not self.active:
            raise FailedPrecondition("you do not like this", field="name")
        self._unliked()

    @event("Unliked")
    def _unliked(self) -> None:
        self.active = False

    @event("Reliked")
    def _reliked(self) -> None:
        self.active = True


# --- bookmarks -----------------------------------------------------------------------------------
BOOKMARK_FIELDS = ("title", "tags", "notes", "visibility", "community", "classification")


def validate_bookmark_fields(fields: dict[str, Any], principal_kind: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    values = dict(current or {})
    if "title" in fields:
        values["title"] = text("title", fields["title"], LIMITS["bookmark_title"])
    if "tags" in fields:
        values["tags"] = tags(list(fields["tags"]))
    if "notes" in fields:
        values["notes"] = text("notes", fields["notes"], LIMITS["notes"], multiline=True)
    if "visibility" in fields or "community" in fields:
        values["visibility"], values["community"] = audience(
            fields.get("visibility", values.get("visibility", "")), fields.get("community", values.get("community", "")), principal_kind
        )
    if "classification" in fields:
        values["classification"] = fields["classification"]
    values["classification"] = classification(
        values.get("visibility", ""), values.get("classification", INTERNAL), "visibility" in fields and "classification" not in fields
    )
    if current is None:
        values.setdefault("title", "")
        values.setdefault("tags", [])
        values.setdefault("notes", "")
        if "visibility" not in values:
            raise InvalidArgument("is required", field="visibility")
    return values


class Bookmark(Flaggable):
    ANSWERING_FIELDS = ("title", "notes")

    @staticmethod
    def create_id(owner_id: str, url: str) -> uuid.UUID:
        return bookmark_id(owner_id, url)

    @event("BookmarkCreated")
    def __init__(self, owner_id: str, url: str, title: str, tags: list[str], notes: str, visibility: str, community: str, classification: str = INTERNAL):
        self.classification = classification  # INTERNAL for a bookmark saved before labels existed
        self.owner_id = owner_id
        self.author_id = owner_id
        self.url = url
        self.title = title
        self.tags = list(tags)
        self.notes = notes
        self.visibility = visibility
        self.community = community
        self.deleted = False
        self._init_flags()

    @property
    def erased(self) -> bool:
        """Its owner was erased: the url, sealed with their key like their words, opens to its
        tombstone "" (a saved link always has one). A bookmark with nothing left is gone for
        every reader, as a deleted one: no other person's content hangs off it."""
        return not self.url

    def resave(self, values: dict[str, Any]) -> None:
        if not self.deleted:
            raise AlreadyExists("you already saved this link", field="url")
        values = {"classification": INTERNAL, **values}  # saved anew: INTERNAL unless labelled
        self._resaved(**{name: values[name] for name in BOOKMARK_FIELDS})

    @event("BookmarkResaved")
    def _resaved(self, title: str, tags: list[str], notes: str, visibility: str, community: str, classification: str = INTERNAL) -> None:
        self.title, self.tags, self.notes, self.visibility, self.community = title, list(tags), notes, visibility, community
        self.classification = classification
        self.deleted = False

    def _check_owner(self, person_id: str, moderator: bool = False) -> None:
        if self.deleted:
            raise NotFound("the bookmark was deleted", field="name")
        if person_id != self.owner_id and not moderator:
            raise PermissionDenied("only the owner may change a bookmark", field="name")

    def edit(self, person_id: str, values: dict[str, Any]) -> None:
        self._check_owner(person_id)
        values = {name: values.get(name, getattr(self, name)) for name in BOOKMARK_FIELDS}  # what is not given stays
        changed = [name for name in BOOKMARK_FIELDS if values[name] != getattr(self, name)]
        if not changed:
            return
        self._edited(changed_fields=changed, **values)
        self._author_edited(changed)

    @event("BookmarkEdited")
    def _edited(self, changed_fields: list[str], title: str, tags: list[str], notes: str, visibility: str, community: str, classification: str = INTERNAL) -> None:
        self.title, self.tags, self.notes, self.visibility, self.community = title, list(tags), notes, visibility, community
        self.classification = classification

    def delete(self, person_id: str, moderator: bool = False) -> None:
        self._check_owner(person_id, moderator)
        self._deleted()

    @event("BookmarkDeleted")
    def _deleted(self) -> None:
        self.deleted = True

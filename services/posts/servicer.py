"""gRPC face of the posts application: translates messages, nothing more."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc

from watercooler.auth import current_principal
from watercooler.errors import InvalidArgument
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc
from watercooler.rpc import (
    command_context,
    decode_page_token,
    encode_page_token,
    enum_name,
    fields_under,
    in_thread,
    page_size,
    parse_name,
    request_fingerprint,
)

from .application import PostsApplication
from .domainmodel import PUBLISHED, Blog, Bookmark, Comment, Flaggable, Micropost, Post

Visibility = pb.Audience.Visibility
Label = pb.Classification.Label


def _visibility(value: int) -> str:
    return enum_name(Visibility, value, "visibility")


def _classification(value: int) -> str:
    return enum_name(Label, value, "classification", zero="INTERNAL")


def _community_in(name: str) -> str:
    return parse_name(name, "communities", field="community") if name else ""


def _community_out(community: str) -> str:
    return f"communities/{community}" if community else ""


def _mask(request: Any, allowed: tuple[str, ...]) -> list[str]:
    if not request.HasField("update_mask"):
        raise InvalidArgument(f"is required: some of {', '.join(allowed)}", field="update_mask")
    paths = list(request.update_mask.paths)
    unknown = [p for p in paths if p not in allowed]
    if unknown or not paths:
        raise InvalidArgument(f"unknown or read-only field(s): {', '.join(unknown) or '(none given)'}", field="update_mask")
    return paths


def _times(message: Any, aggregate: Any) -> None:
    message.create_time.FromDatetime(aggregate.created_on)
    if hasattr(message, "update_time"):
        message.update_time.FromDatetime(aggregate.modified_on)


def blog_proto(blog: Blog) -> pb.Blog:
    message = pb.Blog(
        name=f"blogs/{blog.handle}",
        handle=blog.handle,
        title=blog.title,
        description=blog.description,
        owner=f"profiles/{blog.owner_id}",
        visibility=Visibility.Value(blog.visibility),
        community=_community_out(blog.community),
        etag=blog.etag,
    )
    message.create_time.FromDatetime(blog.created_on)
    return message


def post_proto(post: Post) -> pb.Post:
    message = pb.Post(
        name=f"posts/{post.id}",
        blog=f"blogs/{post.blog}",
        author=f"profiles/{post.author_id}",
        title=post.title,
        body=post.body,
        tags=post.tags,
        visibility=Visibility.Value(post.visibility),
        community=_community_out(post.community),
        classification=Label.Value(post.classification),
        state=pb.Post.PUBLISHED if post.state == PUBLISHED else pb.Post.DRAFT,
        revision=post.revision,
        hidden=post.hidden,
        hide_reason=post.hide_reason,
        deleted=post.deleted,
        etag=post.etag,
    )
    _times(message, post)
    if post.published_at:
        message.publish_time.FromDatetime(dt.datetime.fromisoformat(post.published_at.replace("Z", "+00:00")))
    return message


def micropost_proto(micropost: Micropost) -> pb.Micropost:
    message = pb.Micropost(
        name=f"microposts/{micropost.id}",
        author=f"profiles/{micropost.author_id}",
        text=micropost.text,
        mentions=[f"profiles/{m}" for m in micropost.mentions],
        hashtags=micropost.hashtags,
        reply_to=f"microposts/{micropost.reply_to}" if micropost.reply_to else "",
        repost_of=f"microposts/{micropost.repost_of}" if micropost.repost_of else "",
        visibility=Visibility.Value(micropost.visibility),
        community=_community_out(micropost.community),
        classification=Label.Value(micropost.classification),
        hidden=micropost.hidden,
        hide_reason=micropost.hide_reason,
        deleted=micropost.deleted,
        etag=micropost.etag,
    )
    message.create_time.FromDatetime(micropost.created_on)
    return message


def comment_proto(comment: Comment) -> pb.Comment:
    message = pb.Comment(
        name=f"comments/{comment.id}",
        target=comment.target,
        parent=f"comments/{comment.parent}" if comment.parent else "",
        author=f"profiles/{comment.author_id}",
        body=comment.body,
        hidden=comment.hidden,
        hide_reason=comment.hide_reason,
        deleted=comment.deleted,
        etag=comment.etag,
    )
    _times(message, comment)
    return message


def bookmark_proto(bookmark: Bookmark) -> pb.Bookmark:
    message = pb.Bookmark(
        name=f"bookmarks/{bookmark.id}",
        url=bookmark.url,
        title=bookmark.title,
        tags=bookmark.tags,
        notes=bookmark.notes,
        visibility=Visibility.Value(bookmark.visibility),
        classification=Label.Value(bookmark.classification),
        community=_community_out(bookmark.community),
        owner=f"profiles/{bookmark.owner_id}",
        hidden=bookmark.hidden,
        hide_reason=bookmark.hide_reason,
        etag=bookmark.etag,
    )
    message.create_time.FromDatetime(bookmark.created_on)
    return message


def _item_name(name: str) -> tuple[str, str]:
    collection, _, item_id = name.partition("/")
    if not collection or not item_id or "/" in item_id:
        raise InvalidArgument("must look like 'posts/{id}', 'microposts/{id}', 'comments/{id}' or 'bookmarks/{id}'", field="name")
    return collection, item_id


class PostServicer(posts_pb2_grpc.PostServiceServicer):
    def __init__(self, app: PostsApplication):
        self.app = app

    # --- blogs ---------------------------------------------------------------------------------------
    async def CreateBlog(self, request, context):
        ctx = command_context(context, request.request_id)
        blog = request.blog
        with fields_under("blog"):
            fields = dict(
                handle=blog.handle,
                title=blog.title,
                description=blog.description,
                visibility=_visibility(blog.visibility),
                community=_community_in(blog.community),
            )
            created = await in_thread(self.app.create_blog, ctx, fields, request_fingerprint(request))
        return blog_proto(created)

    async def GetBlog(self, request, context):
        return blog_proto(await in_thread(self.app.read_blog, current_principal(), parse_name(request.name, "blogs")))

    async def UpdateBlog(self, request, context):
        handle = parse_name(request.blog.name, "blogs", field="blog.name")
        paths = _mask(request, ("title", "description"))
        ctx = command_context(context, request.request_id)
        with fields_under("blog"):
            fields = {name: getattr(request.blog, name) for name in paths}
            updated = await in_thread(self.app.update_blog, ctx, handle, fields, request.blog.etag, request_fingerprint(request))
        return blog_proto(updated)

    # --- posts ---------------------------------------------------------------------------------------
    async def CreatePost(self, request, context):
        handle = parse_name(request.parent, "blogs", field="parent")
        ctx = command_context(context, request.request_id)
        post = request.post
        with fields_under("post", request_level=("request_id", "parent")):
            fields = dict(
                title=post.title, body=post.body, tags=list(post.tags), visibility=_visibility(post.visibility), community=_community_in(post.community),
                classification=_classification(post.classification),
            )
            created = await in_thread(self.app.create_post, ctx, handle, fields, request_fingerprint(request))
        return post_proto(created)

    async def GetPost(self, request, context):
        return post_proto(await in_thread(self.app.get_post, current_principal(), parse_name(request.name, "posts")))

    async def UpdatePost(self, request, context):
        post_id = parse_name(request.post.name, "posts", field="post.name")
        paths = _mask(request, ("title", "body", "tags", "visibility", "community", "classification"))
        ctx = command_context(context, request.request_id)
        post = request.post
        with fields_under("post"):
            values = dict(
                title=post.title, body=post.body, tags=list(post.tags), visibility=_visibility(post.visibility), community=_community_in(post.community),
                classification=_classification(post.classification),
            )
            fields = {name: values[name] for name in paths}
            updated = await in_thread(self.app.update_post, ctx, post_id, fields, post.etag, request_fingerprint(request))
        return post_proto(updated)

    async def PublishPost(self, request, context):
        post_id = parse_name(request.name, "posts")
        ctx = command_context(context, request.request_id)
        return post_proto(await in_thread(self.app.publish_post, ctx, post_id, request.etag, request_fingerprint(request)))

    async def DeletePost(self, request, context):
        post_id = parse_name(request.name, "posts")
        ctx = command_context(context, request.request_id)
        return post_proto(await in_thread(self.app.delete_post, ctx, post_id, request.etag, request_fingerprint(request)))

    async def ListPostRevisions(self, request, context):
        post_id = parse_name(request.parent, "posts", field="parent")
        size = page_size(request.page_size)
        start = decode_page_token(request.page_token, post_id) or 0
        with fields_under("parent", request_level=("page_token", "page_size", "name")):
            revisions = await in_thread(self.app.list_revisions, current_principal(), post_id)
        response = pb.ListPostRevisionsResponse()
        for revision in revisions[start : start + size]:
            message = response.revisions.add(revision=revision["revision"], title=revision["title"], body=revision["body"], tags=revision["tags"])
            message.create_time.FromDatetime(revision["time"])
        if start + size < len(revisions):
            response.next_page_token = encode_page_token(start + size, post_id)
        return response

    # --- microblog -------------------------------------------------------------------------------------
    async def CreateMicropost(self, request, context):
        ctx = command_context(context, request.request_id)
        m = request.micropost
        with fields_under("micropost"):
            fields = dict(
                text=m.text,
                visibility=_visibility(m.visibility),
                community=_community_in(m.community),
                reply_to=parse_name(m.reply_to, "microposts", field="reply_to") if m.reply_to else "",
                repost_of=parse_name(m.repost_of, "microposts", field="repost_of") if m.repost_of else "",
                classification=_classification(m.classification),
            )
            created = await in_thread(self.app.create_micropost, ctx, fields, request_fingerprint(request))
        return micropost_proto(created)

    async def GetMicropost(self, request, context):
        return micropost_proto(await in_thread(self.app.get_micropost, current_principal(), parse_name(request.name, "microposts")))

    async def UpdateMicropost(self, request, context):
        micropost_id = parse_name(request.micropost.name, "microposts", field="micropost.name")
        _mask(request, ("text",))
        ctx = command_context(context, request.request_id)
        with fields_under("micropost"):
            updated = await in_thread(
                self.app.update_micropost, ctx, micropost_id, request.micropost.text, request.micropost.etag, request_fingerprint(request)
            )
        return micropost_proto(updated)

    async def DeleteMicropost(self, request, context):
        micropost_id = parse_name(request.name, "microposts")
        ctx = command_context(context, request.request_id)
        return micropost_proto(await in_thread(self.app.delete_micropost, ctx, micropost_id, request_fingerprint(request)))

    # --- comments ----------------------------------------------------------------------------------------
    async def CreateComment(self, request, context):
        ctx = command_context(context, request.request_id)
        c = request.comment
        with fields_under("comment"):
            if not c.target:
                raise InvalidArgument("is required", field="target")
            parent = parse_name(c.parent, "comments", field="parent") if c.parent else ""
            created = await in_thread(self.app.create_comment, ctx, c.target, parent, c.body, request_fingerprint(request))
        return comment_proto(created)

    async def GetComment(self, request, context):
        return comment_proto(await in_thread(self.app.get_comment, current_principal(), parse_name(request.name, "comments")))

    async def UpdateComment(self, request, context):
        comment_id = parse_name(request.comment.name, "comments", field="comment.name")
        _mask(request, ("body",))
        ctx = command_context(context, request.request_id)
        with fields_under("comment"):
            updated = await in_thread(self.app.update_comment, ctx, comment_id, request.comment.body, request.comment.etag, request_fingerprint(request))
        return comment_proto(updated)

    async def DeleteComment(self, request, context):
        comment_id = parse_name(request.name, "comments")
        ctx = command_context(context, request.request_id)
        return comment_proto(await in_thread(self.app.delete_comment, ctx, comment_id, request.etag, request_fingerprint(request)))

    # --- ratings and likes -----------------------------------------------------------------------------------
    async def RatePost(self, request, context):
        post_id = parse_name(request.post, "posts", field="post")
        ctx = command_context(context, request.request_id)
        rating = await in_thread(self.app.rate_post, ctx, post_id, request.value, request_fingerprint(request))
        return pb.Rating(name=f"posts/{post_id}/ratings/{rating.rater_id}", post=f"posts/{post_id}", value=rating.value)

    async def WithdrawRating(self, request, context):
        post_id = parse_name(request.post, "posts", field="post")
        ctx = command_context(context, request.request_id)
        rating = await in_thread(self.app.withdraw_rating, ctx, post_id, request_fingerprint(request))
        return pb.Rating(name=f"posts/{post_id}/ratings/{rating.rater_id}", post=f"posts/{post_id}", value=rating.value)

    async def Like(self, request, context):
        ctx = command_context(context, request.request_id)
        like = await in_thread(self.app.like, ctx, request.target, True, request_fingerprint(request))
        return pb.LikeState(target=like.target, liked=like.active)

    async def Unlike(self, request, context):
        ctx = command_context(context, request.request_id)
        like = await in_thread(self.app.like, ctx, request.target, False, request_fingerprint(request))
        return pb.LikeState(target=like.target, liked=like.active)

    # --- bookmarks ----------------------------------------------------------------------------------------------
    async def CreateBookmark(self, request, context):
        ctx = command_context(context, request.request_id)
        b = request.bookmark
        with fields_under("bookmark"):
            fields = dict(
                url=b.url, title=b.title, tags=list(b.tags), notes=b.notes, visibility=_visibility(b.visibility), community=_community_in(b.community),
                classification=_classification(b.classification),
            )
            created = await in_thread(self.app.create_bookmark, ctx, fields, request_fingerprint(request))
        return bookmark_proto(created)

    async def GetBookmark(self, request, context):
        return bookmark_proto(await in_thread(self.app.get_bookmark, current_principal(), parse_name(request.name, "bookmarks")))

    async def UpdateBookmark(self, request, context):
        bookmark_id = parse_name(request.bookmark.name, "bookmarks", field="bookmark.name")
        paths = _mask(request, ("title", "tags", "notes", "visibility", "community", "classification"))
        ctx = command_context(context, request.request_id)
        b = request.bookmark
        with fields_under("bookmark"):
            values = dict(title=b.title, tags=list(b.tags), notes=b.notes, visibility=_visibility(b.visibility), community=_community_in(b.community),
                          classification=_classification(b.classification))
            updated = await in_thread(self.app.update_bookmark, ctx, bookmark_id, {p: values[p] for p in paths}, b.etag, request_fingerprint(request))
        return bookmark_proto(updated)

    async def DeleteBookmark(self, request, context):
        bookmark_id = parse_name(request.name, "bookmarks")
        ctx = command_context(context, request.request_id)
        return bookmark_proto(await in_thread(self.app.delete_bookmark, ctx, bookmark_id, request_fingerprint(request)))

    # --- flags ------------------------------------------------------------------------------------------------------
    def _flag_state(self, name: str, item: Flaggable) -> pb.FlagState:
        return pb.FlagState(
            name=name, hidden=item.hidden, flag_count=len(item.flaggers), restore_votes=len(item.restore_voters), threshold=self.app.flag_threshold,
            hide_reason=item.hide_reason,
        )

    async def FlagItem(self, request, context):
        collection, item_id = _item_name(request.name)
        ctx = command_context(context, request.request_id)
        item = await in_thread(self.app.flag, ctx, collection, item_id, request.reason, request_fingerprint(request))
        return self._flag_state(request.name, item)

    async def VoteRestoreItem(self, request, context):
        collection, item_id = _item_name(request.name)
        ctx = command_context(context, request.request_id)
        item = await in_thread(self.app.vote_restore, ctx, collection, item_id, request_fingerprint(request))
        return self._flag_state(request.name, item)

    async def HideItem(self, request, context):
        collection, item_id = _item_name(request.name)
        ctx = command_context(context, request.request_id)
        return self._flag_state(request.name, await in_thread(self.app.moderate, ctx, collection, item_id, True, request.reason, request_fingerprint(request)))

    async def RestoreItem(self, request, context):
        collection, item_id = _item_name(request.name)
        ctx = command_context(context, request.request_id)
        return self._flag_state(request.name, await in_thread(self.app.moderate, ctx, collection, item_id, False, request.reason, request_fingerprint(request)))


def register(server: grpc.aio.Server, app: PostsApplication) -> list[str]:
    posts_pb2_grpc.add_PostServiceServicer_to_server(PostServicer(app), server)
    return [pb.DESCRIPTOR.services_by_name["PostService"].full_name]

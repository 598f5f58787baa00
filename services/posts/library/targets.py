"""Wiki pages and media items as targets of the posts service's comments and likes.

Comments and ratings are the posts application's (one mechanism for all content);
this only teaches it the `pages/{id}` and `media/{id}` collections.  Both are
aggregates in the same store, so the posts application loads them itself.
Wire it once where the posts application is built: ``install(app)``."""

from __future__ import annotations

from typing import Any

from watercooler.errors import FailedPrecondition, NotFound
from watercooler.visibility import INTERNAL, PRIVATE, PUBLIC, reads_hidden

from .application import _uuid, forget_everywhere
from .domainmodel import MediaItem, Page, Space, space_id_of


def page_target(app: Any, target: str, principal: Any, field: str = "target") -> Any:
    from services.posts.application import CommentTarget

    page = app.load(_uuid(target.split("/", 1)[1], field), Page, target, field=field)
    space = app.load(space_id_of(page.space_id), Space, target, field=field)
    if not space.visible_to(principal, app.membership.is_member):
        raise NotFound(f"{target} not found", field=field)
    if page.deleted:
        raise FailedPrecondition(f"{target} was deleted", field=field)
    _check_not_hidden(page, target, principal, field)
    return _as_comment_target(CommentTarget, space.visibility, page.author_id, principal)


def media_target(app: Any, target: str, principal: Any, field: str = "target") -> Any:
    from services.posts.application import CommentTarget

    item = app.load(_uuid(target.split("/", 1)[1], field), MediaItem, target, field=field)
    if not item.visible_to(principal):
        raise NotFound(f"{target} not found", field=field)
    if item.removed:
        raise FailedPrecondition(f"{target} was removed", field=field)
    _check_not_hidden(item, target, principal, field)
    return _as_comment_target(CommentTarget, item.visibility, item.owner.split("/", 1)[1], principal)


def _check_not_hidden(item: Any, target: str, principal: Any, field: str) -> None:
    """Hidden by flags: absent for everyone but its author and services, and closed to new
    comments and likes for them too (as a hidden post is)."""
    if item.hidden:
        if not reads_hidden(principal, item.author_id):
            raise NotFound(f"{target} not found", field=field)
        raise FailedPrecondition(f"{target} is hidden (by community flags or a moderator)", field=field)


def page_in_audience(app: Any, principal: Any, page: Page) -> bool:
    """Whether the caller may see the page, hidden or not (flags and restore votes)."""
    space = app.load(space_id_of(page.space_id), Space, f"pages/{page.page_id}")
    return not page.deleted and space.visible_to(principal, app.membership.is_member)


def page_community(app: Any, page: Page) -> str:
    """A page of a space a community owns is moderated by the community's owners."""
    owner = app.load(space_id_of(page.space_id), Space, f"pages/{page.page_id}").owner
    return owner.removeprefix("communities/") if owner.startswith("communities/") else ""


def media_in_audience(app: Any, principal: Any, item: MediaItem) -> bool:
    return not item.removed and item.visible_to(principal)


def _as_comment_target(comment_target: Any, visibility: str, author_id: str, principal: Any) -> Any:
    """PUBLIC and INTERNAL mean the same to both.  A RESTRICTED item was already checked
    above (owner and members): the caller passes the posts application's own check.  What a
    comment stores is only a copy made at creation: a comment is read by whoever may read its
    target now (PostsApplication._comment_readable resolves the target again; search keeps the
    page's space and the media item's rule on each comment, services/search/readmodels/projections/comments.py)."""
    if visibility in (PUBLIC, INTERNAL):
        return comment_target(visibility, "", author_id, author_id)
    return comment_target(PRIVATE, "", principal.subject, author_id)


def install(app: Any) -> None:
    """Registers pages and media as comment, like and flag targets of the posts application."""
    for registry in (getattr(app, "comment_targets", None), getattr(app, "like_targets", None)):
        if registry is not None:
            registry["pages"] = lambda target, principal, field="target": page_target(app, target, principal, field)
            registry["media"] = lambda target, principal, field="target": media_target(app, target, principal, field)
    if getattr(app, "flaggable", None) is not None:
        from services.posts.application import FlaggableKind

        app.flaggable["pages"] = FlaggableKind(Page, lambda principal, page: page_in_audience(app, principal, page), lambda page: page_community(app, page))
        app.flaggable["media"] = FlaggableKind(MediaItem, lambda principal, item: media_in_audience(app, principal, item), lambda item: "")  # a person's
        app.on_hidden.append(forget_everywhere)

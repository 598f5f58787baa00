"""What a caller may see in the search indices: the platform's rule (watercooler.visibility)
applied to each search kind, with the caller's scope (communities, spaces, jams) read once.

Content documents store ``visibility``, ``community``, the author's employee id
(``author_id`` or ``owner_id``), ``hidden``, ``deleted`` and, for posts and the comments on
them, the ``classification`` label (a CONFIDENTIAL one reaches employees and services only;
a document without the field is INTERNAL); ``content_filter`` is the
one Elasticsearch filter every content query, aggregation and facet uses, so nothing
leaks through a count either.  COMMUNITY membership is read from the ``communities``
index (one document per community whose ``members`` is the complete member list; see
services/search/projections/communities.py).

A comment has no audience of its own: it is its target's, now (``comment_filter``; each
comment document carries its target's current audience, services/search/projections/comments.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler import visibility as rule
from watercooler.auth import Principal, current_principal
from watercooler.config import Settings
from watercooler.errors import PermissionDenied

from .kept import Kept

MAX_COMMUNITIES = 10_000


def directory_reader() -> Principal:
    """The caller, if they may browse the employee directory (people, communities, the graph).

    Guests — family, clients, partners invited to a jam — see that jam and public content,
    not who works here; the unified Search hides people and communities from them too."""
    principal = current_principal()
    if not rule.may_browse_directory(principal):
        raise PermissionDenied("guests see the jams that invited them and public content, not the employee directory", field="authorization")
    return principal


async def caller_communities(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> list[str]:
    """The ids of the communities the caller belongs to, where that reaches content (empty
    if the index does not exist yet)."""
    if principal.is_service or not rule.memberships_reach(principal):
        return []
    try:
        found = await es.search(
            index=settings.index_alias("communities"),
            query={"bool": {"filter": [{"term": {"members": principal.subject}}, {"term": {"deleted": False}}]}},
            source=["community_id"],
            size=MAX_COMMUNITIES,
        )
    except NotFoundError:
        return []
    return [hit["_source"]["community_id"] for hit in found["hits"]["hits"]]


def content_filter(principal: Principal, communities: list[str], author_field: str = "author_id") -> list[dict[str, Any]]:
    """Filters (for a bool ``filter``) that keep what ``principal`` may see."""
    return rule.content_clauses(principal, communities, author_field)


# --- one search over every kind: wiki pages take their space's audience and media items
# their own (the library rule), jam ideas and threads their jam's, people and communities
# the directory's.

MAX_SPACES = 10_000
MAX_JAMS = 10_000


@dataclass(frozen=True)
class Scope:
    """What a caller may see, read once per request (their communities, spaces, jams)."""

    principal: Principal
    communities: list[str]
    # None: every space / jam (services; for jams also employees and alumni).
    spaces: list[str] | None
    jams: list[str] | None


# A caller's scope is kept for SCOPE_SECONDS: reading it is two or three Elasticsearch
# round trips, as much as a whole Suggest over a million documents took, and a type-ahead asks
# for it at every keystroke.  It changes only when a membership or a space changes, which reach
# the communities and wiki indices through their projections and a refresh (WC_ES_REFRESH,
# 0.5-1 s) anyway: one second more of staleness, in both directions, is the price.
SCOPE_SECONDS = 1.0
_scopes: Kept[Scope] = Kept(SCOPE_SECONDS, size=10_000)


async def scope_of(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> Scope:
    key = (id(es), settings.namespace, principal.kind, principal.subject, tuple(principal.jams))
    scope = _scopes.get(key)
    if scope is None:
        scope = await _read_scope(es, settings, principal)
        _scopes.put(key, scope)
    return scope


async def _read_scope(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> Scope:
    from .stats import jams as jam_stats

    communities = await caller_communities(es, settings, principal)
    spaces: list[str] | None = None
    seen = rule.library_audience(principal, communities)
    if seen is not None:
        try:
            found = await es.search(
                index=settings.index_alias("wiki"),
                query={"bool": {"filter": [{"term": {"kind": "space"}}, {"term": {"deleted": False}}, seen]}},
                source=["space_id"], size=MAX_SPACES,
            )
            spaces = [h["_source"]["space_id"] for h in found["hits"]["hits"]]
        except NotFoundError:
            spaces = []
    jams = rule.visible_jams(principal, ())
    if jams is not None:
        try:
            found = await es.search(index=jam_stats.index_alias(settings), query={"term": {"visibility": rule.PUBLIC}}, source=["jam_id"], size=MAX_JAMS)
            jams = rule.visible_jams(principal, [h["_source"]["jam_id"] for h in found["hits"]["hits"]])
        except NotFoundError:
            pass
    return Scope(principal, communities, spaces, jams)


def comment_filter(scope: Scope) -> list[dict[str, Any]]:
    """A comment is read by whoever may read its target now (services/search/projections/comments.py
    keeps the target's current audience on each comment): the comment itself not deleted or
    hidden, its target not deleted, and
    - a post or micropost: the content rule above on the post's visibility, community and
      author, not hidden by flags, published (a draft's comments reach its author only);
    - a wiki page: its space is one the caller may see (as for the page itself);
    - a media item: the library's rule on the item's visibility and owner."""
    from .library import visibility_filter as library_filter

    principal = scope.principal
    # Hidden or deleted, the comment or its target: nobody (services included, as for posts).
    live: list[dict[str, Any]] = [{"term": {"deleted": False}}, {"term": {"hidden": False}}, {"term": {"target_deleted": False}}, {"term": {"target_hidden": False}}]
    if principal.is_service:
        return [*live, {"term": {"target_state": "PUBLISHED"}}]
    published: dict[str, Any] = {"bool": {"should": [{"term": {"target_state": "PUBLISHED"}}, {"term": {"target_author_id": principal.subject}}], "minimum_should_match": 1}}
    on_post = [{"term": {"target_kind": "post"}}, published,
               *content_filter(principal, scope.communities, author_field="target_author_id")]
    on_page: list[dict[str, Any]] = [{"term": {"target_kind": "page"}}]
    if scope.spaces is not None:
        on_page.append({"terms": {"space_id": scope.spaces}})
    on_media: list[dict[str, Any]] = [{"term": {"target_kind": "media"}}]
    seen = library_filter(principal, scope.communities)
    if seen is not None:
        # The comment keeps the item's owner as ``target_owner`` (``owner`` would make it
        # match an author filter on the item's owner) and no member list (media items have none).
        on_media.append(_renamed(seen, {"owner": "target_owner"}))
    branches = [{"bool": {"filter": branch}} for branch in (on_post, on_page, on_media)]
    return [*live, {"bool": {"should": branches, "minimum_should_match": 1}}]


def _renamed(clause: Any, fields: dict[str, str]) -> Any:
    """``clause`` with the fields its term/terms queries name renamed."""
    if isinstance(clause, list):
        return [_renamed(item, fields) for item in clause]
    if not isinstance(clause, dict):
        return clause
    out: dict[str, Any] = {}
    for key, value in clause.items():
        if key in ("term", "terms") and isinstance(value, dict):
            out[key] = {fields.get(name, name): inner for name, inner in value.items()}
        else:
            out[key] = _renamed(value, fields)
    return out


def kind_filter(scope: Scope, kind: str) -> list[dict[str, Any]]:
    """The filters that keep the documents of one search kind that the caller may see."""
    principal = scope.principal
    if kind in ("post", "micropost"):
        return rule.content_clauses(principal, scope.communities, drafts=True)
    if kind == "comment":
        return comment_filter(scope)
    if kind == "bookmark":
        return rule.content_clauses(principal, scope.communities, "owner_id")
    if kind == "wiki_page":
        live: list[dict[str, Any]] = [{"term": {"deleted": False}}]
        return live if scope.spaces is None else [*live, {"terms": {"space_id": scope.spaces}}]
    if kind == "media":
        return rule.library_clauses(principal, scope.communities)
    if kind in ("person", "community"):
        return rule.directory_clauses(principal)
    if kind in ("jam_idea", "jam_thread"):
        return [{"term": {"deleted": False}}] + ([] if scope.jams is None else [{"terms": {"jam_id": scope.jams}}])
    raise ValueError(f"no visibility rule for {kind!r}")

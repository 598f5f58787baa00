"""What a caller may see of content items (posts, microposts, comments, bookmarks, blogs).

Contract: every content document stores ``visibility`` (PUBLIC, INTERNAL, COMMUNITY,
PRIVATE), ``community`` (the community id when COMMUNITY), its author's employee id
(``author_id`` or ``owner_id``), ``hidden`` (community flags) and ``deleted``.
``content_filter`` is the one Elasticsearch filter every content query, aggregation
and facet uses, so nothing leaks through a count either:

- PUBLIC: everyone (guests included);
- INTERNAL: employees (not alumni, not guests);
- COMMUNITY: members of that community, found in the ``communities`` index
  (one document per community whose ``members`` keyword array is the complete member
  list; see services/search/projections/communities.py);
- PRIVATE: the author only;
- hidden or deleted: nobody; service principals see everything else.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler.auth import Principal
from watercooler.config import Settings

MAX_COMMUNITIES = 10_000


async def caller_communities(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> list[str]:
    """The ids of the communities the caller belongs to (empty if the index does not exist yet)."""
    if principal.is_service:
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
    live: list[dict[str, Any]] = [{"term": {"deleted": False}}, {"term": {"hidden": False}}]
    if principal.is_service:
        return live
    visible: list[dict[str, Any]] = [{"term": {"visibility": "PUBLIC"}}, {"term": {author_field: principal.subject}}]
    if principal.kind == "employee":
        visible.append({"term": {"visibility": "INTERNAL"}})
    if communities:
        visible.append({"bool": {"filter": [{"term": {"visibility": "COMMUNITY"}}, {"terms": {"community": communities}}]}})
    # PRIVATE items only match the author clause.
    return [*live, {"bool": {"should": visible, "minimum_should_match": 1}}]

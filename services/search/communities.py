"""Community queries (the caller's communities, for every COMMUNITY visibility filter, are
``visibility.caller_communities``).

The source is the `communities` index (services/search/readmodels/projections/communities.py):
one document per community whose ``members`` is the complete member list."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings

from .readmodels import indices

INVITE_ONLY = "INVITE_ONLY"


async def list_communities(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, member_id: str, size: int, after: list[Any] | None
) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """ListCommunities, of everyone or of ``member_id``'s memberships: (each community's
    document, the total, the last hit's sort values when the page is full, for the next token)."""
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if member_id:
        filters.append({"term": {"members": member_id}})
        if not principal.is_service:
            # An INVITE_ONLY community's member list is for its members and services
            # (ListCommunityMembers): listing someone's memberships shows the others only
            # the open ones.
            filters.append({"bool": {"should": [{"bool": {"must_not": [{"term": {"access": INVITE_ONLY}}]}}, {"term": {"members": principal.subject}}], "minimum_should_match": 1}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "sort": [{"sort_key": "asc"}, {"community_id": "asc"}],
        "size": size,
        "track_total_hits": True,
        "source": {"excludes": ["members", "invited"]},
    }
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.COMMUNITIES), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [hit["_source"] for hit in hits], result["hits"]["total"]["value"], last

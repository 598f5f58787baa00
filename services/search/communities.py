"""Community queries, and the membership check every service's COMMUNITY visibility uses.

The source is the `communities` index (services/search/readmodels/projections/communities.py):
one document per community whose ``members`` is the complete member list."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings

from .readmodels import indices

# A person is in few communities; this bounds the terms filter built from them.
MAX_COMMUNITIES_PER_PERSON = 10_000
INVITE_ONLY = "INVITE_ONLY"


async def communities_of(es: AsyncElasticsearch, settings: Settings, employee_id: str) -> list[str]:
    """Ids of the communities ``employee_id`` is a member of (for COMMUNITY visibility filters)."""
    if not employee_id:
        return []
    result = await es.search(
        index=settings.index_alias(indices.COMMUNITIES),
        query={"bool": {"filter": [{"term": {"members": employee_id}}, {"term": {"deleted": False}}]}},
        source=["community_id"],
        size=MAX_COMMUNITIES_PER_PERSON,
    )
    return [hit["_source"]["community_id"] for hit in result["hits"]["hits"]]


async def is_member(es: AsyncElasticsearch, settings: Settings, community_id: str, employee_id: str) -> bool:
    result = await es.count(
        index=settings.index_alias(indices.COMMUNITIES),
        query={"bool": {"filter": [{"term": {"community_id": community_id}}, {"term": {"members": employee_id}}, {"term": {"deleted": False}}]}},
    )
    return result["count"] > 0


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

"""The social graph as search serves it: relations and counts, status updates, the
network feed and people you may know (indices `graph`, `statuses`, `people`,
`communities`). Every query runs as the caller and shows only what they may see."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from elasticsearch import AsyncElasticsearch
from google.protobuf.timestamp_pb2 import Timestamp

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import PermissionDenied
from watercooler.media_names import media_name_of
from watercooler.search.v1 import search_pb2

from .people import DIRECTORY_SORT
from .readmodels import indices
from .visibility import any_of, caller_communities, content_filter, hits_matching, photos_seen

# The feed reads the whole network of a person at once; beyond this many people it
# takes the most recent edges (a terms filter of 10k ids is cheap for Elasticsearch).
MAX_NETWORK = 10_000
# People you may know: candidates counted a page of this many at a time.
CANDIDATES_PAGE = 10_000

_ACTIVE_FOLLOW = [{"term": {"kind": "follow"}}, {"term": {"state": "ACTIVE"}}]
_CONNECTED = [{"term": {"kind": "connection"}}, {"term": {"state": "CONNECTED"}}]
_PENDING = [{"term": {"kind": "connection"}}, {"term": {"state": "PENDING"}}]


def require_self_or_service(principal: Principal, person: str, what: str) -> None:
    if not (principal.is_service or principal.subject == person):
        raise PermissionDenied(f"only {person} (or a service) may read their {what}", field="person")


def _timestamp(iso: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(iso.replace("+00:00", "Z"))
    return stamp


# --- relations ------------------------------------------------------------------------------------
# The relations ListRelations lists are its enum's names; these only the person or a service may
# read (require_self_or_service, checked by the servicer before the other fields).
PENDING_RELATIONS = ("PENDING_INCOMING", "PENDING_OUTGOING")


def _relation_filter(relation: str, person: str) -> tuple[list[dict[str, Any]], str]:
    """(filters, which field holds the other person)"""
    if relation == "FOLLOWERS":
        return [*_ACTIVE_FOLLOW, {"term": {"target": person}}], "source"
    if relation == "FOLLOWING":
        return [*_ACTIVE_FOLLOW, {"term": {"source": person}}], "target"
    if relation == "CONNECTIONS":
        return [*_CONNECTED, {"term": {"members": person}}], "members"
    if relation == "PENDING_INCOMING":
        return [*_PENDING, {"term": {"target": person}}], "source"
    if relation == "PENDING_OUTGOING":
        return [*_PENDING, {"term": {"source": person}}], "target"
    raise ValueError(f"unknown relation {relation!r}")


def _other(doc: dict[str, Any], field: str, person: str) -> str:
    if field == "members":
        return next((m for m in doc["members"] if m != person), person)
    return doc[field]


async def list_relations(
    es: AsyncElasticsearch, settings: Settings, person: str, relation: str, size: int, after: list[Any] | None
) -> tuple[list[tuple[str, str]], int, list[Any] | None]:
    """ListRelations of ``person`` (an employee id; ``relation`` one of RELATIONS): (each other
    person's employee id with the ISO time the relation began, the total, the last hit's sort
    values when the page is full)."""
    filters, other_field = _relation_filter(relation, person)
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [*filters, {"term": {"deleted": False}}]}},
        "sort": [{"since": "desc"}, {"source": "asc"}, {"target": "asc"}],
        "size": size,
        "track_total_hits": True,
    }
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.GRAPH), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [(_other(hit["_source"], other_field, person), hit["_source"]["since"]) for hit in hits], result["hits"]["total"]["value"], last


async def network_counts(es: AsyncElasticsearch, settings: Settings, person: str) -> tuple[int, int, int]:
    """GetNetworkCounts of ``person`` (an employee id): (followers, following, connections)."""
    index = settings.index_alias(indices.GRAPH)

    async def count(relation: str) -> int:
        filters, _ = _relation_filter(relation, person)
        return (await es.count(index=index, query={"bool": {"filter": [*filters, {"term": {"deleted": False}}]}}))["count"]

    followers, following, connections = await asyncio.gather(count("FOLLOWERS"), count("FOLLOWING"), count("CONNECTIONS"))
    return followers, following, connections


async def network_of(es: AsyncElasticsearch, settings: Settings, person: str) -> set[str]:
    """Everyone ``person`` follows or is connected to."""
    query = {
        "bool": {
            "filter": [{"term": {"deleted": False}}],
            "should": [
                {"bool": {"filter": [*_ACTIVE_FOLLOW, {"term": {"source": person}}]}},
                {"bool": {"filter": [*_CONNECTED, {"term": {"members": person}}]}},
            ],
            "minimum_should_match": 1,
        }
    }
    # Doc values instead of _source, no hit count: this runs on every feed page.
    result = await es.search(
        index=settings.index_alias(indices.GRAPH), query=query, size=MAX_NETWORK, sort=[{"since": "desc"}, {"source": "asc"}, {"target": "asc"}, {"members": {"order": "asc", "mode": "min"}}, {"members": {"order": "asc", "mode": "max"}}], source=False, docvalue_fields=["members"], track_total_hits=False
    )
    return {m for hit in result["hits"]["hits"] for m in hit["fields"]["members"] if m != person}


# --- status updates and the feed -----------------------------------------------------------------
async def visible_content(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> list[dict[str, Any]]:
    """What the caller may see, by the content contract every service shares
    (services/search/visibility.py): PUBLIC to all, INTERNAL to employees, COMMUNITY to
    the community's members, PRIVATE to the author; services see all."""
    return content_filter(principal, await caller_communities(es, settings, principal))


def _photo(doc: dict[str, Any]) -> str:
    # Indexed before StatusUpdatePosted v3, a photo may still read `mediaItems/{id}`.
    return media_name_of(doc.get("photo", ""))


def status_hit(doc: dict[str, Any], photos: set[str]) -> search_pb2.StatusUpdateHit:
    """``photos``: the photos the caller may see now (visibility.photos_seen); any other is not shown."""
    micropost = "status_id" not in doc
    return search_pb2.StatusUpdateHit(
        name=doc["name"],
        author=f"profiles/{doc['author_id']}",
        text=doc.get("content", "") if micropost else doc.get("text", ""),
        photo=_photo(doc) if _photo(doc) in photos else "",
        visibility=doc["visibility"],
        community=f"communities/{doc['community']}" if doc.get("community") else "",
        create_time=_timestamp(doc["created_at"]),
        kind="micropost" if micropost else "status",
    )


# Newest first; the resource name breaks ties (status ids are time-ordered) so that
# search_after pages are stable while new items arrive at the top.
_NEWEST_FIRST = [{"created_at": "desc"}, {"name": "desc"}]


async def list_status_updates(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, author: str, size: int, after: list[Any] | None
) -> tuple[list[dict[str, Any]], set[str], list[Any] | None]:
    """ListStatusUpdates of ``author`` (an employee id) the caller may see, newest first: (the
    documents, the photos among them the caller may see now — for status_hit —, the last hit's
    sort values when the page is full)."""
    communities = await caller_communities(es, settings, principal)
    filters = [{"term": {"author_id": author}}, *content_filter(principal, communities)]
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}, "sort": _NEWEST_FIRST, "size": size}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.STATUSES), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    photos = await photos_seen(es, settings, principal, communities, (_photo(h["_source"]) for h in hits))
    return [h["_source"] for h in hits], photos, last


# --- people you may know ---------------------------------------------------------------------------
async def people_you_may_know(es: AsyncElasticsearch, settings: Settings, person: str, size: int) -> list[tuple[dict[str, Any], int, bool, float]]:
    """Ranked by mutual connections (colleagues of colleagues), then by sharing a department,
    then in directory order; never yourself, your connections or people with a pending request.
    Each suggestion: (the person's document, mutual connections, same department, score).

    Nothing is read cut at a page: a person's own edges are read whole (``hits_matching``), the
    mutual connections are counted by Elasticsearch over every edge of their connections (a
    composite aggregation, exact on any number of shards, read on page by page), and only the
    people who can make the list are fetched, one level of mutual connections after the other.
    At company scale a second degree has far more than 10,000 edges: counted over the first
    10,000 in no order, the counts and so the ranking changed with every rebuild of the index."""
    graph = settings.index_alias(indices.GRAPH)
    people = settings.index_alias(indices.PEOPLE)
    mine = await hits_matching(es, graph, {"bool": {"filter": [
        {"term": {"kind": "connection"}}, {"terms": {"state": ["CONNECTED", "PENDING"]}}, {"term": {"members": person}}, {"term": {"deleted": False}}]}},
        source=["members", "state"])
    connected: set[str] = set()
    excluded = {person}
    for hit in mine:
        other = next((m for m in hit["_source"]["members"] if m != person), person)
        excluded.add(other)
        if hit["_source"]["state"] == "CONNECTED":
            connected.add(other)
    me = await es.search(index=people, query={"term": {"employee_id": person}}, size=1, source=["department"])
    department = me["hits"]["hits"][0]["_source"].get("department", "") if me["hits"]["hits"] else ""
    mutual = await _mutual_connections(es, graph, connected, excluded) if connected else Counter()
    chosen: list[tuple[dict[str, Any], int, bool, float]] = []
    # Levels of equal mutual connections, most first; within one, the same department first,
    # then directory order (Elasticsearch's sort over the level's people, who may be many).
    levels: dict[int, list[str]] = {}
    for candidate, count in mutual.items():
        levels.setdefault(count, []).append(candidate)
    for count in sorted(levels, reverse=True):
        if len(chosen) >= size:
            break
        for doc in await _people_in_order(es, people, levels[count], department, size - len(chosen)):
            same = bool(department) and doc.get("department") == department
            chosen.append((doc, count, same, 2.0 * count + (1.0 if same else 0.0)))
    if department and len(chosen) < size:
        # Colleagues without a mutual connection come last (score 1), in directory order.
        colleagues = await es.search(
            index=people,
            query={"bool": {"filter": [{"term": {"department": department}}, {"term": {"alumni": False}}, {"term": {"deleted": False}}],
                            "must_not": [any_of("employee_id", sorted(excluded | set(mutual)))]}},
            sort=DIRECTORY_SORT,
            size=size - len(chosen),
        )
        chosen += [(hit["_source"], 0, True, 1.0) for hit in colleagues["hits"]["hits"]]
    return chosen


async def _mutual_connections(es: AsyncElasticsearch, graph: str, connected: set[str], excluded: set[str]) -> Counter[str]:
    """Everyone connected to one of ``connected`` and not in ``excluded`` -> how many of
    ``connected`` they are connected to: each connection of one of them counts its other member."""
    query = {"bool": {"filter": [*_CONNECTED, any_of("members", sorted(connected)), {"term": {"deleted": False}}]}}
    mutual: Counter[str] = Counter()
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": CANDIDATES_PAGE, "sources": [{"person": {"terms": {"field": "members"}}}]}
        if after is not None:
            composite["after"] = after
        found = await es.search(index=graph, query=query, size=0, track_total_hits=False, aggs={"mutual": {"composite": composite}})
        counted = found["aggregations"]["mutual"]
        for bucket in counted["buckets"]:
            candidate = bucket["key"]["person"]
            if candidate not in excluded:
                mutual[candidate] = bucket["doc_count"]
        if len(counted["buckets"]) < CANDIDATES_PAGE or "after_key" not in counted:
            return mutual
        after = counted["after_key"]


async def _people_in_order(es: AsyncElasticsearch, people: str, candidates: list[str], department: str, size: int) -> list[dict[str, Any]]:
    """Up to ``size`` of ``candidates`` still in the directory: those of ``department`` first,
    then in directory order."""
    same_first: dict[str, Any] = {"constant_score": {"filter": {"term": {"department": department}}, "boost": 1.0}} if department else {"match_none": {}}
    found = await es.search(index=people, size=size, sort=[{"_score": "desc"}, *DIRECTORY_SORT],
                            query={"bool": {"filter": [any_of("employee_id", candidates), {"term": {"deleted": False}}], "should": [same_first]}})
    return [hit["_source"] for hit in found["hits"]["hits"]]

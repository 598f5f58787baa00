"""Queries over the wiki, the media library and their view/download counts.

Every query runs as the caller: pages of spaces they may not see, deleted pages,
removed media, media they may not see and pages or media hidden by community flags
are never listed, and their counts are NOT_FOUND (not even their existence is disclosed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler import visibility as rule
from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, NotFound

from .readmodels import indices
from .visibility import Scope, any_of, caller_communities, ids_matching, scope_of

MAX_DAYS = 366
# Top-N reads this many times N buckets: the items the caller may not see are left out in the
# query (``unseen_filters``), this is slack for an item whose audience changed between reads.
TOP_OVERFETCH = 5


async def unseen_filters(es: AsyncElasticsearch, settings: Settings, scope: Scope, kind: str) -> list[dict[str, Any]]:
    """Filters on the view-count rows of ``kind`` ("views" of pages, "downloads" of media items)
    that leave out the items the caller may not see and those community flags hid (from
    everyone): in the query, so a count never includes them and a top list is never short of
    the items the caller may see (it once read five times the list and dropped the rest after,
    and came back empty when the most viewed were pages of a restricted space)."""
    filters: list[dict[str, Any]] = []
    if kind == "views" and scope.spaces is not None:
        filters.append(any_of("space_id", scope.spaces))
    unseen: list[dict[str, Any]] = [{"term": {"hidden": True}}]
    if kind == "downloads":
        seen = visibility_filter(scope.principal, scope.communities)
        if seen is not None:
            unseen.append({"bool": {"must_not": [seen]}})
        left_out = await ids_matching(es, settings.index_alias(indices.MEDIA), {"bool": {"should": unseen, "minimum_should_match": 1}})
    else:
        left_out = await ids_matching(es, settings.index_alias(indices.WIKI), {"bool": {"filter": [{"term": {"kind": "page"}}, *unseen]}})
    prefix = "media/" if kind == "downloads" else "pages/"
    if left_out:
        filters.append({"bool": {"must_not": [any_of("target", (f"{prefix}{item_id}" for item_id in left_out))]}})
    return filters


def visibility_filter(principal: Principal, communities: Sequence[str] = ()) -> dict[str, Any] | None:
    """The ES filter matching spaces and media items the principal may see (None: all);
    ``communities``: the caller's (a community's RESTRICTED space is its members')."""
    return rule.library_audience(principal, communities)


def _can_see(doc: dict[str, Any], principal: Principal, communities: Sequence[str] = ()) -> bool:
    return rule.may_see_library(principal, rule.Library(doc.get("visibility") or "", doc.get("owner") or "", tuple(doc.get("members") or ()),
                                                        classification=doc.get("classification") or rule.INTERNAL), lambda c, _: c in communities)


async def _communities_of(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> list[str]:
    if principal.is_service or not rule.memberships_reach(principal):
        return []
    return await caller_communities(es, settings, principal)


# What visible_targets never reads of a page or media item: its text and the copies made of it
# for matching (a page's body may be 200,000 characters, and a dashboard's top list asks for
# several times the items it shows). The audience, member lists included, is read: the rule needs it.
UNREAD_TEXT = ["body", "description", "lang", indices.EXCERPT]


async def visible_targets(es: AsyncElasticsearch, settings: Settings, principal: Principal, names: list[str],
                          communities: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """name -> {title, space} for the pages/media among ``names`` the principal may see now;
    ``communities``: the caller's, when the caller already has them (a search Scope)."""
    if communities is None:
        communities = await _communities_of(es, settings, principal) if names else []
    pages = [n.split("/", 1)[1] for n in names if n.startswith("pages/")]
    media = [n.split("/", 1)[1] for n in names if n.startswith("media/")]
    out: dict[str, dict[str, Any]] = {}
    if pages:
        found = await es.mget(index=settings.index_alias(indices.WIKI), ids=pages, source_excludes=UNREAD_TEXT)
        docs = {d["_id"]: d["_source"] for d in found["docs"] if d.get("found") and not d["_source"].get("deleted") and not d["_source"].get("hidden")}
        for page_id, doc in docs.items():
            # The page carries its space's audience (projections/wiki.py), as a space has it.
            space = {field: doc.get(as_on_page) for field, as_on_page in indices.PAGE_AUDIENCE.items()}
            if _can_see(space, principal, communities):
                out[f"pages/{page_id}"] = {"title": doc["title"], "space": f"spaces/{doc['space_id']}", "doc": doc}
    if media:
        found = await es.mget(index=settings.index_alias(indices.MEDIA), ids=media, source_excludes=UNREAD_TEXT)
        for d in found["docs"]:
            if d.get("found") and not d["_source"].get("deleted") and not d["_source"].get("hidden") and _can_see(d["_source"], principal, communities):
                out[f"media/{d['_id']}"] = {"title": d["_source"]["title"], "space": "", "doc": d["_source"]}
    return out


async def backlinks(es: AsyncElasticsearch, settings: Settings, principal: Principal, page: str, size: int, after: Any) -> tuple[list[dict[str, Any]], Any]:
    visible = await visible_targets(es, settings, principal, [page])
    if page not in visible:
        raise NotFound(f"{page} not found", field="page")
    doc = visible[page]["doc"]
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": "page"}},
                {"term": {"space_id": doc["space_id"]}},
                {"terms": {"links": doc["title_keys"]}},
                {"term": {"deleted": False}},
                rule.NOT_HIDDEN,
            ],
            "must_not": [{"ids": {"values": [page.split("/", 1)[1]]}}],
        }
    }
    body: dict[str, Any] = {"query": query, "sort": [{"title.raw": "asc"}, {"created_at": "asc"}], "size": size}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.WIKI), **body)
    hits = result["hits"]["hits"]
    return [{"page": f"pages/{h['_id']}", **h["_source"]} for h in hits], (hits[-1]["sort"] if len(hits) == size else None)


async def list_media(es: AsyncElasticsearch, settings: Settings, principal: Principal, owner: str, tag: str, size: int, after: Any) -> tuple[list[dict[str, Any]], Any, int]:
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}, rule.NOT_HIDDEN]
    if owner:
        filters.append({"term": {"owner": owner}})
    if tag:
        filters.append({"term": {"tags.folded": tag.strip()}})
    seen = visibility_filter(principal, await _communities_of(es, settings, principal))
    if seen:
        filters.append(seen)
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}, "sort": [{"created_at": "desc"}, {"title.raw": "asc"}, {"media_id": "asc"}], "size": size, "track_total_hits": True}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.MEDIA), **body)
    hits = result["hits"]["hits"]
    items = [{"media_item": f"media/{h['_id']}", **h["_source"]} for h in hits]
    return items, (hits[-1]["sort"] if len(hits) == size else None), result["hits"]["total"]["value"]


def _kind_of(name: str) -> str:
    return "views" if name.startswith("pages/") else "downloads"


async def view_counts(es: AsyncElasticsearch, settings: Settings, principal: Principal, name: str, days: int, department: str, today: dt.date | None = None) -> tuple[int, list[tuple[str, int]]]:
    if not (name.startswith("pages/") or name.startswith("media/")) or name.count("/") != 1:
        raise InvalidArgument("must be 'pages/{id}' or 'media/{id}'", field="name")
    if days < 0 or days > MAX_DAYS:
        raise InvalidArgument(f"must be between 1 and {MAX_DAYS}", field="days")
    days = days or 7
    if not principal.is_service and name not in await visible_targets(es, settings, principal, [name]):
        raise NotFound(f"{name} not found", field="name")
    today = today or dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    filters: list[dict[str, Any]] = [{"term": {"kind": _kind_of(name)}}, {"term": {"target": name}}]
    if department:
        filters.append({"term": {"department": department}})
    result = await es.search(
        index=indices.alias(settings, indices.VIEW_COUNTS),
        query={"bool": {"filter": filters}},
        size=0,
        aggs={
            "total": {"sum": {"field": "count"}},
            "recent": {
                "filter": {"range": {"day": {"gte": first.isoformat(), "lte": today.isoformat()}}},
                "aggs": {"days": {"terms": {"field": "day", "size": MAX_DAYS, "format": "yyyy-MM-dd"}, "aggs": {"n": {"sum": {"field": "count"}}}}},
            },
        },
    )
    per_day = {b["key_as_string"]: int(b["n"]["value"]) for b in result["aggregations"]["recent"]["days"]["buckets"]}
    series = [((first + dt.timedelta(days=i)).isoformat(), per_day.get((first + dt.timedelta(days=i)).isoformat(), 0)) for i in range(days)]
    return int(result["aggregations"]["total"]["value"]), series


async def top_viewed(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, kind: str, period: str, day: dt.date, space_id: str, department: str, size: int
) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"term": {"kind": kind}}]
    if period == "DAY":
        filters.append({"term": {"day": day.isoformat()}})
    elif period == "WEEK":
        filters.append({"range": {"day": {"gte": (day - dt.timedelta(days=6)).isoformat(), "lte": day.isoformat()}}})
    if space_id:
        filters.append({"term": {"space_id": space_id}})
    if department:
        filters.append({"term": {"department": department}})
    filters += await unseen_filters(es, settings, await scope_of(es, settings, principal), kind)
    result = await es.search(
        index=indices.alias(settings, indices.VIEW_COUNTS),
        query={"bool": {"filter": filters}},
        size=0,
        aggs={"top": {"terms": {"field": "target", "size": size * TOP_OVERFETCH, "order": [{"n": "desc"}, {"_key": "asc"}]}, "aggs": {"n": {"sum": {"field": "count"}}}}},
    )
    buckets = [(b["key"], int(b["n"]["value"])) for b in result["aggregations"]["top"]["buckets"]]
    visible = await visible_targets(es, settings, principal, [name for name, _ in buckets])
    top = [{"name": name, "count": count, "title": visible[name]["title"], "space": visible[name]["space"]} for name, count in buckets if name in visible]
    return top[:size]

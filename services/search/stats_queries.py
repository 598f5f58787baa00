"""GetStats: totals, series and top items of one metric, read from what the projections
and the stats processors keep, as the caller (every count carries the visibility filter
of its kind, so a PRIVATE or COMMUNITY item never adds to a number someone else sees)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, NotFound
from watercooler.search.v1 import search_pb2 as sp

from . import jams as jam_queries
from . import library
from .readmodels import indices
from .unified import _kind_clause, index_of
from .visibility import Scope, any_of, hits_matching, scope_of

INTERVALS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7), "month": dt.timedelta(days=31)}
MAX_BUCKETS = 1000
MAX_TOP = 50
# Active blogs per department/country: the owner's department is on the blog, the activity
# on its posts, so the blogs of the department are looked up first (17,000 blogs company-wide).
MAX_BLOGS_PER_FILTER = 65_000
COMMENTED = ("posts/", "microposts/", "pages/", "media/")

# metric -> (filters it accepts)
METRICS: dict[str, tuple[str, ...]] = {
    "blogs": ("department", "country"),
    "active_blogs": ("department", "country", "blog"),
    "posts": ("blog",),
    "microposts": (),
    "comments": ("target",),
    "ratings": ("blog", "target"),
    "tags": ("blog",),
    "bookmarks": (),
    "wiki_views": ("target", "space", "department"),
    "media_downloads": ("target", "department"),
    "people": ("department", "country"),
    "alumni": ("department", "country"),
    "jam_activity": ("jam",),
    "jam_votes": ("jam",),
    "jam_participants": ("jam",),
    "jam_tone": ("jam",),
}
FILTERS = ("target", "space", "department", "jam", "blog", "country")
# metric -> (the prefixes its target may have, the message naming them)
TARGETS = {
    "comments": (COMMENTED, "must name a post, micropost, wiki page or media item, e.g. 'posts/{id}'"),
    "ratings": (("posts/",), "must look like 'posts/{id}'"),
    "wiki_views": (("pages/",), "must look like 'pages/{id}'"),
    "media_downloads": (("media/",), "must look like 'media/{id}'"),
}


def check_target(metric: str, target: str) -> str:
    """``target`` if it names an item ``metric`` counts (a resource name "kind/{id}")."""
    prefixes, message = TARGETS[metric]
    if not target.startswith(prefixes) or target.count("/") != 1:
        raise InvalidArgument(message, field="target")
    return target


@dataclass(frozen=True)
class StatsQuery:
    """What a GetStats asks, checked (the servicer builds it from the request); the filters a
    metric does not take (METRICS) are empty."""

    metric: str  # one of METRICS
    interval: str  # one of INTERVALS
    start: dt.datetime | None
    end: dt.datetime | None
    top: int  # how many top items, 1 to MAX_TOP
    target: str = ""  # a resource name the metric counts (check_target)
    space_id: str = ""
    department: str = ""
    country: str = ""
    jam_id: str = ""
    blog: str = ""  # a blog's handle


class Stats:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    async def get_stats(self, principal: Principal, q: StatsQuery) -> sp.GetStatsResponse:
        """GetStats as the caller: the metric's total, series per interval and top items."""
        metric, interval, start, end, top = q.metric, q.interval, q.start, q.end, q.top
        response = sp.GetStatsResponse(metric=metric, interval=interval)
        if metric.startswith("jam_"):
            await self._jam(principal, q, metric, interval, start, end, top, response)
            return response
        scope = await scope_of(self.es, self.settings, principal)
        if metric in ("wiki_views", "media_downloads"):
            await self._views(scope, q, metric, interval, start, end, top, response)
            return response
        index, time_field, filters, aggregate = await self._plan(scope, q, metric)
        await self._count(index, time_field, filters, aggregate, interval, start, end, response)
        if metric == "tags":
            await self._top_tags(index, time_field, filters, start, end, top, response)
        return response

    async def _plan(self, scope: Scope, q: StatsQuery, metric: str) -> tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]:
        """(index, time field, filters, value aggregation or None for a document count)."""
        settings = self.settings
        if metric == "blogs":
            from .visibility import content_filter

            filters = content_filter(scope.principal, scope.communities, "owner_id")
            filters.extend(_owner_filters(q))
            return settings.index_alias(indices.BLOGS), "created_at", filters, None
        if metric in ("active_blogs", "posts", "tags"):
            filters = [_kind_clause(settings, scope, "post"), {"term": {"state": "PUBLISHED"}}]
            if q.blog:
                filters.append({"term": {"blog": q.blog}})
            if metric == "active_blogs" and (q.department or q.country):
                filters.append({"terms": {"blog": await self._blogs_of(scope, q)}})
            if metric == "tags":
                filters.append({"exists": {"field": "tags"}})
            aggregate = {"cardinality": {"field": "blog", "precision_threshold": 40000}} if metric == "active_blogs" else None
            return index_of(settings, "post"), "published_at", filters, aggregate
        if metric == "microposts":
            return index_of(settings, "micropost"), "created_at", [_kind_clause(settings, scope, "micropost")], None
        if metric == "comments":
            filters = [_kind_clause(settings, scope, "comment")]
            if q.target:
                filters.append({"term": {"target": q.target}})
            return index_of(settings, "comment"), "created_at", filters, None
        if metric == "bookmarks":
            return index_of(settings, "bookmark"), "saved_at", [_kind_clause(settings, scope, "bookmark")], None
        if metric in ("people", "alumni"):
            filters = [_kind_clause(settings, scope, "person"), {"term": {"alumni": metric == "alumni"}}]
            if q.department:
                filters.append({"term": {"department": q.department}})
            if q.country:
                filters.append({"term": {"country": q.country}})
            return index_of(settings, "person"), "created_at", filters, None
        if metric == "ratings":
            filters: list[dict[str, Any]] = [{"term": {"kind": "rating"}}, {"term": {"active": True}}, {"term": {"deleted": False}}]
            rated = await self._rated_posts(scope, q)
            if rated is not None:
                filters.append(rated)
            return settings.index_alias(indices.REACTIONS), "updated_at", filters, None
        raise AssertionError(metric)

    async def _rated_posts(self, scope: Scope, q: StatsQuery) -> dict[str, Any] | None:
        """The filter on ratings' ``target`` that keeps the posts the caller may see (and the
        blog or post asked for); None: every rating counts (a service, unfiltered).

        Ratings carry no audience of their own, so the posts are read and named in the filter:
        every one of them (``hits_matching``), never the most recent 10,000 only, as before
        (a dashboard's ratings of a company with years of posts were those of its last weeks).
        Unfiltered, the list named is the shorter of the posts the caller may see and those
        they may not, which for an employee is the drafts, the private posts and the posts of
        communities they are not in: left out rather than listed."""
        settings = self.settings
        narrowed: list[dict[str, Any]] = []
        if q.blog:
            narrowed.append({"term": {"blog": q.blog}})
        if q.target:  # a post the caller may not see counts nothing
            narrowed.append({"term": {"name": q.target}})
        if scope.principal.is_service and not narrowed:
            return None
        index, seen = index_of(settings, "post"), _kind_clause(settings, scope, "post")
        posts: dict[str, Any] = {"bool": {"filter": [{"term": {"kind": "blog"}}, *narrowed]}}
        left_out = False
        if not narrowed:
            counted = await self.es.search(index=index, query=posts, size=0, track_total_hits=True, aggs={"seen": {"filter": seen}}, ignore_unavailable=True)
            seen_count = counted.get("aggregations", {}).get("seen", {}).get("doc_count", 0)
            left_out = counted["hits"]["total"]["value"] - seen_count < seen_count
        if left_out:
            unseen = await hits_matching(self.es, index, {"bool": {"filter": [posts], "must_not": [seen]}}, source=["name"])
            return {"bool": {"must_not": [any_of("target", (hit["_source"]["name"] for hit in unseen))]}} if unseen else None
        visible = await hits_matching(self.es, index, {"bool": {"filter": [posts, seen]}}, source=["name"])
        return any_of("target", (hit["_source"]["name"] for hit in visible))

    async def _blogs_of(self, scope: Scope, q: StatsQuery) -> list[str]:
        """Handles of the blogs (the caller may see) whose owner is in the requested department/country."""
        from .visibility import content_filter

        filters = [*content_filter(scope.principal, scope.communities, "owner_id"), *_owner_filters(q)]
        result = await self.es.search(index=self.settings.index_alias(indices.BLOGS), size=0, query={"bool": {"filter": filters}},
                                      aggs={"h": {"terms": {"field": "handle", "size": MAX_BLOGS_PER_FILTER}}}, ignore_unavailable=True)
        return [b["key"] for b in result.get("aggregations", {}).get("h", {}).get("buckets", [])]

    async def _top_tags(self, index: str, time_field: str, filters: list[dict[str, Any]], start: dt.datetime | None,
                        end: dt.datetime | None, top: int, response: sp.GetStatsResponse) -> None:
        """Popular tags: total = distinct tags on the posts counted, top = tags by number of posts."""
        bounds = {k: v.isoformat() for k, v in (("gte", start), ("lt", end)) if v}
        if bounds:
            filters = [*filters, {"range": {time_field: bounds}}]
        result = await self.es.search(index=index, size=0, query={"bool": {"filter": filters}}, ignore_unavailable=True, aggs={
            "distinct": {"cardinality": {"field": "tags", "precision_threshold": 40000}},
            "top": {"terms": {"field": "tags", "size": top, "order": [{"_count": "desc"}, {"_key": "asc"}]}}})
        a = result.get("aggregations")
        if not a:
            return
        response.total = float(a["distinct"]["value"])
        for b in a["top"]["buckets"]:
            response.top.add(name=f"tags/{b['key']}", title=b["key"], value=float(b["doc_count"]))

    async def _count(self, index: str, time_field: str, filters: list[dict[str, Any]], aggregate: dict[str, Any] | None,
                     interval: str, start: dt.datetime | None, end: dt.datetime | None, response: sp.GetStatsResponse, value_field: str = "") -> None:
        bounds: dict[str, str] = {}
        if start:
            bounds["gte"] = start.isoformat()
        if end:
            bounds["lt"] = end.isoformat()
        if bounds:
            # An explicit format: the view counts' `day` field is mapped as yyyy-MM-dd.
            filters = [*filters, {"range": {time_field: {**bounds, "format": "strict_date_optional_time"}}}]
        histogram: dict[str, Any] = {"field": time_field, "calendar_interval": interval, "min_doc_count": 0 if start and end else 1, "format": "strict_date_optional_time"}
        if start and end:
            histogram["extended_bounds"] = {"min": start.isoformat(), "max": (end - dt.timedelta(milliseconds=1)).isoformat()}
        sub = {"v": aggregate} if aggregate else {}
        aggs: dict[str, Any] = {"series": {"date_histogram": histogram, "aggs": sub}}
        if aggregate:
            aggs["total"] = aggregate
        result = await self.es.search(index=index, size=0, track_total_hits=True, query={"bool": {"filter": filters}}, aggs=aggs, ignore_unavailable=True)
        if "aggregations" not in result:  # no index yet
            return
        a = result["aggregations"]
        response.total = float(a["total"]["value"]) if aggregate else float(result["hits"]["total"]["value"])
        for b in a["series"]["buckets"][:MAX_BUCKETS]:
            point = response.series.add(value=float(b["v"]["value"]) if aggregate else float(b["doc_count"]))
            point.start_time.FromMilliseconds(int(b["key"]))

    async def _views(self, scope: Scope, q: StatsQuery, metric: str, interval: str,
                     start: dt.datetime | None, end: dt.datetime | None, top: int, response: sp.GetStatsResponse) -> None:
        principal = scope.principal
        kind = "views" if metric == "wiki_views" else "downloads"
        filters: list[dict[str, Any]] = [{"term": {"kind": kind}}]
        if q.target:
            if q.target not in await library.visible_targets(self.es, self.settings, principal, [q.target], scope.communities):
                raise NotFound(f"{q.target} not found", field="target")
            filters.append({"term": {"target": q.target}})
        if q.space_id:
            if scope.spaces is not None and q.space_id not in scope.spaces:
                raise NotFound(f"spaces/{q.space_id} not found", field="space")
            filters.append({"term": {"space_id": q.space_id}})
        if q.department:
            filters.append({"term": {"department": q.department}})
        filters += await library.unseen_filters(self.es, self.settings, scope, kind)
        alias = indices.alias(self.settings, indices.VIEW_COUNTS)
        await self._count(alias, "day", filters, {"sum": {"field": "count"}}, interval, start, end, response)
        # Top items over the same range.
        bounds = {}
        if start:
            bounds["gte"] = start.date().isoformat()
        if end:
            bounds["lt"] = end.date().isoformat() if end.time() == dt.time(0) else (end.date() + dt.timedelta(days=1)).isoformat()
        top_filters = [*filters, {"range": {"day": bounds}}] if bounds else filters
        result = await self.es.search(index=alias, size=0, query={"bool": {"filter": top_filters}}, ignore_unavailable=True, aggs={
            "top": {"terms": {"field": "target", "size": top * library.TOP_OVERFETCH, "order": [{"n": "desc"}, {"_key": "asc"}]}, "aggs": {"n": {"sum": {"field": "count"}}}}})
        buckets = [(b["key"], b["n"]["value"]) for b in result.get("aggregations", {}).get("top", {}).get("buckets", [])]
        visible = await library.visible_targets(self.es, self.settings, principal, [name for name, _ in buckets], scope.communities)
        for name, value in [(n, v) for n, v in buckets if n in visible][:top]:
            response.top.add(name=name, title=visible[name]["title"], value=float(value))

    async def _jam(self, principal: Principal, q: StatsQuery, metric: str, interval: str,
                   start: dt.datetime | None, end: dt.datetime | None, top: int, response: sp.GetStatsResponse) -> None:
        doc = await jam_queries.stats_doc(self.es, self.settings, principal, q.jam_id)
        field = {"jam_activity": "posts", "jam_votes": "votes", "jam_participants": "active_participants", "jam_tone": "tone"}[metric]
        step = INTERVALS[interval]
        buckets: dict[dt.datetime, list[float]] = {}  # start -> [value, weight]
        for hour, b in sorted(doc.get("hours", {}).items()):
            when = dt.datetime.fromisoformat(hour.replace("Z", "+00:00"))
            if (start and when < start) or (end and when >= end):
                continue
            key = _truncate(when, interval, step)
            slot = buckets.setdefault(key, [0.0, 0.0])
            if metric == "jam_tone":
                weight = float(b.get("toned_posts") or 0)
                slot[0] += float(b.get("tone") or 0.0) * weight
                slot[1] += weight
            elif metric == "jam_participants":
                # Participants active in each hour; a longer interval shows the busiest hour's.
                slot[0] = max(slot[0], float(b.get(field) or 0))
            else:
                slot[0] += float(b.get(field) or 0)
        for key, (value, weight) in sorted(buckets.items()):
            point = response.series.add(value=round(value / weight, 4) if metric == "jam_tone" and weight else value)
            point.start_time.FromDatetime(key.replace(tzinfo=None))
        if metric == "jam_tone":
            weight = sum(w for _, w in buckets.values())
            response.total = round(sum(v for v, _ in buckets.values()) / weight, 4) if weight else 0.0
        elif metric == "jam_participants":
            response.total = float(doc.get("participants", 0))
        elif metric == "jam_votes" and not (start or end):
            response.total = float(doc.get("votes", 0))
        else:
            response.total = float(sum(v for v, _ in buckets.values()))
        if metric == "jam_votes":
            jam = doc["jam_id"]
            for row in doc.get("leaderboard", [])[:top]:
                response.top.add(name=f"jams/{jam}/ideas/{row['idea_id']}", title=row["title"], value=float(row["votes"]))


def _owner_filters(q: StatsQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if q.department:
        filters.append({"term": {"owner_department": q.department}})
    if q.country:
        filters.append({"term": {"owner_country": q.country}})
    return filters


def _truncate(when: dt.datetime, interval: str, step: dt.timedelta) -> dt.datetime:
    when = when.astimezone(dt.UTC)
    if interval == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":  # ISO weeks start on Monday, as Elasticsearch's calendar weeks
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)

"""Jam queries for the search service: leaderboard, pulse, stats export and idea search.

Every query runs as the caller: a guest sees only the jams that invited them (their
token's ``jams`` claim) and PUBLIC jams, alumni the PUBLIC ones; anyone else sees every
jam (JamService's read rule, docs/authorization.md)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler import visibility as rule
from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, NotFound
from watercooler.search.v1 import search_pb2
from watercooler.visibility import INTERNAL, may_see_jam

from .queries import content_text_query
from .readmodels import indices
from .readmodels.indices import search_languages
from .visibility import hidden_threads, jam_discussion_clauses


def jam_id_from(name: str, field: str = "jam") -> str:
    parts = (name or "").split("/")
    if len(parts) != 2 or parts[0] != "jams" or not parts[1]:
        raise InvalidArgument(f"must look like 'jams/{{jam}}', got {name!r}", field=field)
    return parts[1]


may_see = may_see_jam


async def require_visible_jam(es: AsyncElasticsearch, settings: Settings, principal: Principal, jam_id: str) -> None:
    """NOT_FOUND unless the caller may see the jam (JamService's read rule). Only a guest or
    alumnus outside the token's jams needs the jam's visibility, read from its stats document."""
    if may_see(principal, jam_id, ""):
        return
    try:
        visibility = (await es.get(index=indices.alias(settings, indices.JAM_STATS), id=jam_id))["_source"].get("visibility", INTERNAL)
    except NotFoundError:
        visibility = ""
    if not may_see(principal, jam_id, visibility):
        raise NotFound(f"jams/{jam_id} not found", field="jam")


# The jam board (GET /api/v1/jams): this many jams, the most recently active first.
BOARD_SIZE = 50


async def board(es: AsyncElasticsearch, settings: Settings, principal: Principal, size: int | None = None) -> list[dict[str, Any]]:
    """The stats documents of the jams the caller may see, the most recently active first, up
    to ``size`` (BOARD_SIZE). The rule is in the query: the 50 most recent jams filtered
    afterwards left a guest whose jam was the 51st an empty board."""
    seen = rule.jam_audience(principal)
    filters = [] if seen is None else [seen]
    result = await es.search(index=indices.alias(settings, indices.JAM_STATS), size=BOARD_SIZE if size is None else size,
                             source=["jam_id", "title", "visibility", "participants", "updated_at"], query={"bool": {"filter": filters}},
                             sort=[{"updated_at": "desc"}, {"jam_id": "asc"}], ignore_unavailable=True)
    return [hit["_source"] for hit in result["hits"]["hits"]]


async def stats_doc(es: AsyncElasticsearch, settings: Settings, principal: Principal, jam_id: str) -> dict[str, Any]:
    try:
        found = await es.get(index=indices.alias(settings, indices.JAM_STATS), id=jam_id)
    except NotFoundError:
        raise NotFound(f"no statistics for jams/{jam_id} (yet)", field="jam") from None
    doc = found["_source"]
    if not may_see(principal, jam_id, doc.get("visibility", INTERNAL)):
        raise NotFound(f"no statistics for jams/{jam_id} (yet)", field="jam")
    return doc


def leaderboard(doc: dict[str, Any], size: int) -> search_pb2.JamLeaderboard:
    jam = doc["jam_id"]
    message = search_pb2.JamLeaderboard(
        jam=f"jams/{jam}", participants=doc["participants"], guests=doc["guests"], votes=doc["votes"], voters=doc["voters"], posts=doc["posts"], ideas=doc["ideas"],
        rows=[search_pb2.JamLeaderboardRow(rank=r["rank"], idea=f"jams/{jam}/ideas/{r['idea_id']}", title=r["title"], votes=r["votes"]) for r in doc["leaderboard"][:size]],
    )
    message.update_time.FromDatetime(dt.datetime.fromisoformat(doc["updated_at"]).astimezone(dt.UTC).replace(tzinfo=None))
    return message


def _bucket(key: str, b: dict[str, Any]) -> search_pb2.JamPulseBucket:
    return search_pb2.JamPulseBucket(key=key, title=b.get("title", ""), posts=b["posts"], votes=b["votes"], active_participants=b["active_participants"], tone=b["tone"] or 0.0, toned_posts=b["toned_posts"])


def pulse(doc: dict[str, Any]) -> search_pb2.JamPulse:
    jam = doc["jam_id"]
    return search_pb2.JamPulse(
        jam=f"jams/{jam}", participants=doc["participants"],
        hours=[_bucket(h, b) for h, b in doc["hours"].items()],
        forums=[_bucket(f"jams/{jam}/forums/{f}", b) for f, b in doc["forums"].items()],
    )


async def search_ideas(
    es: AsyncElasticsearch, settings: Settings, jam_id: str, text: str, include_merged: bool, size: int, after: list[Any] | None
) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """SearchJamIdeas in a jam the caller may see (require_visible_jam, which the servicer checks
    before reading the other fields): (each idea's document, the total, the last hit's sort
    values when the page is full)."""
    filters: list[dict[str, Any]] = [{"term": {"jam_id": jam_id}}, {"term": {"deleted": False}}, rule.NOT_HIDDEN]
    if not include_merged:
        filters.append({"term": {"merged_into": ""}})
    must: list[dict[str, Any]] = []
    if text.strip():
        must.append(content_text_query(text, folded_fields=("text_folded",), raw_fields=("title^3",), languages=search_languages(text)))
        sort: list[Any] = [{"_score": "desc"}, {"idea_id": "asc"}]
    else:
        sort = [{"idea_id": "asc"}]  # time-ordered ids: oldest first
    body: dict[str, Any] = {"query": {"bool": {"filter": filters, "must": must}}, "sort": sort, "size": size, "track_total_hits": True}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.JAM_IDEAS), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [hit["_source"] for hit in hits], result["hits"]["total"]["value"], last


def child_id(name: str, jam_id: str, collection: str, field: str) -> str:
    """The id in ``jams/{jam_id}/{collection}/{id}``; INVALID_ARGUMENT on ``field`` otherwise."""
    parts = (name or "").split("/")
    if len(parts) != 4 or parts[0] != "jams" or parts[2] != collection or not parts[3]:
        raise InvalidArgument(f"must look like 'jams/{{jam}}/{collection}/{{id}}', got {name!r}", field=field)
    if parts[1] != jam_id:
        raise InvalidArgument(f"belongs to jams/{parts[1]}, not jams/{jam_id}", field=field)
    return parts[3]


async def list_discussion(
    es: AsyncElasticsearch, settings: Settings, jam_id: str, thread_id: str, forum_id: str, idea_id: str, text: str, size: int, after: list[Any] | None
) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """ListJamDiscussion in a jam the caller may see (require_visible_jam, which the servicer
    checks before reading the other fields): the threads, or one thread's posts, oldest first.
    (Each post's document, the total, the last hit's sort values when the page is full.)"""
    filters: list[dict[str, Any]] = [{"term": {"jam_id": jam_id}}, {"term": {"deleted": False}},
                                     *jam_discussion_clauses(await hidden_threads(es, settings, jam_id))]
    if thread_id:
        filters.append({"term": {"thread_id": thread_id}})
    else:
        filters.append({"term": {"kind": "thread"}})
    if forum_id:
        filters.append({"term": {"forum_id": forum_id}})
    if idea_id:
        filters.append({"term": {"idea_id": idea_id}})
    must = [content_text_query(text, folded_fields=("text_folded",), languages=search_languages(text), typos=False)] if text.strip() else []
    body: dict[str, Any] = {"query": {"bool": {"filter": filters, "must": must}}, "size": size, "track_total_hits": True,
                            "sort": [{"created_at": "asc"}, {"thread_id": "asc"}, {"reply_id": "asc"}]}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.JAM_THREADS), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [hit["_source"] for hit in hits], result["hits"]["total"]["value"], last


def export(doc: dict[str, Any], fmt: str) -> tuple[str, str, bytes]:
    """(content type, filename, bytes) of a jam's stats as JSON or as CSV (one table of
    rows: section, key, and the measures)."""
    jam = doc.get("jam_id", "jam")
    if fmt == "json":
        return "application/json", f"{jam}-stats.json", json.dumps(doc, ensure_ascii=False, indent=2).encode()
    buffer = io.StringIO()
    columns = ["section", "key", "title", "votes", "posts", "active_participants", "tone", "count"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in doc.get("leaderboard", []):
        writer.writerow({"section": "leaderboard", "key": row["idea_id"], "title": row["title"], "votes": row["votes"]})
    for hour, bucket in doc.get("hours", {}).items():
        writer.writerow({"section": "hour", "key": hour, **bucket})
    for forum, bucket in doc.get("forums", {}).items():
        writer.writerow({"section": "forum", "key": forum, **bucket})
    totals = Counter({k: doc.get(k, 0) for k in ("participants", "guests", "votes", "voters", "posts", "ideas")})
    for key, value in totals.items():
        writer.writerow({"section": "total", "key": key, "count": value})
    return "text/csv; charset=utf-8", f"{jam}-stats.csv", buffer.getvalue().encode()

"""One shared content index against one index per projection: the same corpus, the same
Searches and Suggests, replayed at a constant rate straight to Elasticsearch.

    WC_INFRA=external WC_ES_URL=http://127.0.0.1:29200 .venv/bin/python -m benchmarks.search_layout --docs 200000

What it does:
- loads the corpus of `benchmarks/search_latency.py` (same generator, same seed) into this
  run's projection indices, one per projection, as the platform keeps them;
- loads the same content documents (posts, comments, bookmarks, wiki, media, jam ideas and
  threads: the generator's, same seed) into one shared index with the union of their mappings
  and a ``projection`` keyword naming where each belongs;
  people and communities stay indices of their own in both layouts;
- runs `services.search.unified.Search` in this process for a fixed mix of requests (the
  benchmark's), recording each Elasticsearch request it sends; the shared layout's requests are
  the same ones with the index list narrowed to the shared index and each ``_index`` clause
  (filter, tie-break sort, kind aggregation) made a ``projection`` one;
- replays both sets, alternately, closed loop to warm up and then at a constant rate, latency
  from each request's scheduled time (HDR histogram); reports p50/p99, Elasticsearch's CPU per
  request (the node's process CPU, minus what it spent in an idle window of the same length
  just before: the node is shared), shard queries per request (`_shards.total`) and mean `took`.

It measures the query side only: the search service's own work is the same in both layouts.
Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from services.search.readmodels import indices

ROOT = Path(__file__).resolve().parents[1]
CONTENT = (indices.POSTS, indices.COMMENTS, indices.BOOKMARKS, indices.WIKI, indices.MEDIA, indices.JAM_IDEAS, indices.JAM_THREADS)
SHARED = "content-shared"


def merge_properties(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Union of two mappings' properties: the same field keeps its type; copy_to targets and
    sub-fields are joined (a person's title is not among the content kinds, so no field differs
    in type here)."""
    for name, spec in extra.items():
        if name not in into:
            into[name] = copy.deepcopy(spec)
            continue
        have = into[name]
        if "properties" in spec:
            merge_properties(have.setdefault("properties", {}), spec["properties"])
            continue
        if have.get("type") != spec.get("type"):
            raise ValueError(f"{name}: {have.get('type')} against {spec.get('type')}")
        for key in ("copy_to",):
            if key in spec:
                have[key] = sorted(set(have.get(key, [])) | set(spec[key]))
        if "fields" in spec:
            have.setdefault("fields", {}).update(spec["fields"])


def shared_index_body(settings) -> dict[str, Any]:
    from services.search.readmodels.projections import ALL

    bodies = {p.name: p(settings).index_body() for p in ALL if p.name in CONTENT}
    properties: dict[str, Any] = {"projection": {"type": "keyword"}}
    for body in bodies.values():
        merge_properties(properties, body["mappings"]["properties"])
    first = bodies["posts"]
    return {"settings": {**first["settings"], "refresh_interval": "1s"}, "mappings": {"dynamic": "strict", "properties": properties}}


async def build_shared(es, settings, docs: int) -> dict[str, Any]:
    """The shared index, bulk-loaded from the same generator and seed as the per-projection
    ones (this Elasticsearch has no `_reindex`: the distribution's reindex module is not loaded)."""
    from elasticsearch.helpers import async_bulk

    from benchmarks.search_latency import ID_PREFIX, SPACE_ID, documents

    name = f"{settings.namespace}-{SHARED}"
    await es.indices.create(index=name, **shared_index_body(settings))
    await es.indices.put_settings(index=name, settings={"refresh_interval": "-1"})
    projections = {settings.index_alias(p): p for p in CONTENT}
    started = time.monotonic()

    def actions():
        yield {"_index": name, "_id": f"{ID_PREFIX}space", "_source": {"projection": "wiki", "kind": "space", "space_id": SPACE_ID, "display_name": "Bench",
                                                                    "owner": "profiles/e1", "visibility": "INTERNAL", "members": [], "deleted": False}}
        for action in documents(settings, docs, seed=7):
            projection = projections.get(action["_index"])
            if projection:
                yield {**action, "_index": name, "_source": {**action["_source"], "projection": projection}}

    generated = actions()
    await asyncio.gather(*(async_bulk(es, generated, chunk_size=2000, max_retries=3, request_timeout=120, raise_on_error=True) for _ in range(2)))
    await es.indices.put_settings(index=name, settings={"refresh_interval": "1s"})
    await es.indices.refresh(index=name)
    return {"index": name, "seconds": round(time.monotonic() - started, 1), "documents": (await es.count(index=name))["count"]}


def to_shared(settings, index: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The same request against the shared layout."""
    aliases = {settings.index_alias(p): p for p in CONTENT}
    shared = f"{settings.namespace}-{SHARED}"
    names = []
    for one in index.split(","):
        name = shared if one in aliases else one
        if name not in names:
            names.append(name)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            prefix = node.get("prefix")
            if isinstance(prefix, dict) and "_index" in prefix and len(node) == 1:
                alias = prefix["_index"].removesuffix("-v")
                if alias in aliases:
                    return {"term": {"projection": aliases[alias]}}
                return node
            if node.get("field") == "_index":
                return {**node, "field": "projection"}
            if list(node) == ["_index"] and node["_index"] in ("asc", "desc"):
                return {"projection": node["_index"]}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return ",".join(names), walk(body)


async def record_requests(settings, subjects: list[str], searches: int, suggests: int) -> dict[str, list[tuple[str, str, Any]]]:
    """(kind, index, body) of every Search's and Suggest's own requests (not the caller's scope
    lookups), in the benchmark's mix."""
    from benchmarks.search_latency import request_maker
    from services.search import servicer
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    es = es_client(settings)
    sent: list[tuple[str, str, Any]] = []
    real_search, real_msearch = es.search, es.msearch

    async def search(**kwargs):
        if "sort" in kwargs or "aggs" in kwargs:
            body = {k: v for k, v in kwargs.items() if k not in ("index", "ignore_unavailable")}
            sent.append(("search", kwargs["index"], copy.deepcopy(body)))
        return await real_search(**kwargs)

    async def msearch(**kwargs):
        sent.append(("msearch", "", copy.deepcopy(kwargs["searches"])))
        return await real_msearch(**kwargs)

    out = {}
    try:
        es.search, es.msearch = search, msearch
        for rpc, n in (("Search", searches), ("Suggest", suggests)):
            sent.clear()
            make = request_maker(rpc, seed=31)
            for k in range(n):
                who = Principal(subjects[k % len(subjects)], "employee")
                await (servicer.search if rpc == "Search" else servicer.suggest)(es, settings, who, make(k))
            out[rpc] = list(sent)
    finally:
        es.search, es.msearch = real_search, real_msearch
        await es.close()
    return out


def shared_requests(settings, requests: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    out = []
    for kind, index, body in requests:
        if kind == "search":
            out.append((kind, *to_shared(settings, index, body)))
        else:
            ops = []
            for header, one in zip(body[::2], body[1::2], strict=True):
                index2, one2 = to_shared(settings, header["index"], one)
                ops += [{**header, "index": index2}, one2]
            out.append((kind, "", ops))
    return out


async def es_cpu_ms(es) -> float:
    stats = await es.nodes.stats(metric="process")
    return sum(n["process"]["cpu"]["total_in_millis"] for n in stats["nodes"].values())


async def search_time_ms(es, namespace: str) -> tuple[float, int]:
    """(query + fetch time in ms, shard queries) Elasticsearch spent on this run's indices: its
    own per-index counters, which other users of a shared node do not move."""
    stats = (await es.indices.stats(index=f"{namespace}-*", metric="search"))["_all"]["primaries"]["search"]
    return stats["query_time_in_millis"] + stats["fetch_time_in_millis"], stats["query_total"]


async def replay(es, requests: list[tuple[str, str, Any]], rate: float, seconds: float, warm_seconds: float, namespace: str) -> dict[str, Any]:
    from benchmarks.harness import _closed_loop, _open_loop

    shards: list[int] = []
    took: list[int] = []

    async def call(request):
        kind, index, body = request
        if kind == "search":
            result = await es.search(index=index, ignore_unavailable=True, **body)
            results = [result]
        else:
            results = (await es.msearch(searches=body))["responses"]
        shards.append(sum(r.get("_shards", {}).get("total", 0) for r in results))
        took.append(sum(r.get("took", 0) for r in results))
        return None

    make = lambda k: requests[k % len(requests)]  # noqa: E731
    if warm_seconds:
        await _closed_loop(call, lambda _w, n: make(n), warm_seconds, 4)
    shards.clear()
    took.clear()
    idle0 = await es_cpu_ms(es)
    await asyncio.sleep(seconds / 3)
    idle_per_s = (await es_cpu_ms(es) - idle0) / (seconds / 3)
    cpu0, t0, (spent0, queries0) = await es_cpu_ms(es), time.monotonic(), await search_time_ms(es, namespace)
    result = await _open_loop(call, make, rate, seconds)
    cpu1, wall, (spent1, queries1) = await es_cpu_ms(es), time.monotonic() - t0, await search_time_ms(es, namespace)
    done = max(1, result["completed"])
    lat = result["latency_from_scheduled"]
    return {"p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"), "max_ms": lat.get("max_ms"), "completed": result["completed"],
            "errors": result["errors"], "achieved_per_s": result["achieved_per_s"],
            "es_cpu_ms_per_request": round((cpu1 - cpu0) / done, 2),
            "es_cpu_ms_per_request_less_idle": round((cpu1 - cpu0 - idle_per_s * wall) / done, 2),
            "es_idle_cpu_ms_per_s": round(idle_per_s, 1),
            "shard_queries_per_request": round(sum(shards) / max(1, len(shards)), 2), "took_ms_mean": round(sum(took) / max(1, len(took)), 2),
            "es_query_fetch_ms_per_request": round((spent1 - spent0) / done, 2), "es_query_phases_per_request": round((queries1 - queries0) / done, 2)}


async def segments(es, index: str) -> int:
    stats = await es.indices.stats(index=index, metric="segments")
    return stats["_all"]["primaries"]["segments"]["count"]


async def run(settings, args) -> dict[str, Any]:
    from benchmarks.search_latency import load, settle
    from watercooler.projection import es_client

    out: dict[str, Any] = {"docs": args.docs, "rate": args.rate, "seconds": args.seconds, "uptime_start": os.popen("uptime").read().strip()}
    if not args.no_load:
        out["load"] = await load(settings, args.docs)
        print(f"loaded {out['load']['documents']:,} in {out['load']['seconds']} s", flush=True)
    es = es_client(settings)
    try:
        shared = f"{settings.namespace}-{SHARED}"
        if await es.indices.exists(index=shared):
            out["shared"] = {"index": shared, "documents": (await es.count(index=shared))["count"]}
        else:
            out["shared"] = await build_shared(es, settings, args.docs)
        print(f"shared index: {out['shared']}", flush=True)
        # A shared node merges for its other users too: wait at most a minute.
        out["merges_settled_s"] = await settle(es, timeout=60)
        per = ",".join(settings.index_alias(p) for p in CONTENT)
        out["segments"] = {"per_projection_content": await segments(es, per), "shared_content": await segments(es, out["shared"]["index"])}
        subjects = [f"e{k}" for k in range(1, 51)]
        recorded = await record_requests(settings, subjects, args.requests, args.requests)
        for rpc, requests in recorded.items():
            layouts = {"per_projection": requests, "shared": shared_requests(settings, requests)}
            for round_ in range(args.rounds):
                for layout, reqs in layouts.items():
                    figures = await replay(es, reqs, args.rate, args.seconds, args.warm_seconds if round_ == 0 else args.warm_seconds / 3, settings.namespace)
                    figures["uptime"] = os.popen("uptime").read().strip().split("load average:")[-1].strip()
                    out.setdefault(rpc, {}).setdefault(layout, []).append(figures)
                    print(f"{rpc:8s} {layout:15s} round {round_ + 1}: {json.dumps(figures)}", flush=True)
        # The answers agree: the same hits in the same order in both layouts.
        same = 0
        checked = [r for r in recorded["Search"][:40] if r[0] == "search"]
        for _kind, index, body in checked:
            a = await es.search(index=index, ignore_unavailable=True, **body)
            b = await es.search(index=to_shared(settings, index, body)[0], ignore_unavailable=True, **to_shared(settings, index, body)[1])
            same += [h["_id"] for h in a["hits"]["hits"]] == [h["_id"] for h in b["hits"]["hits"]]
        out["same_hits"] = f"{same} of {len(checked)}"
        print(f"same hits in both layouts: {out['same_hits']}", flush=True)
    finally:
        if not args.keep:
            mine = list(await es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
            if mine:
                await es.indices.delete(index=",".join(mine))
        await es.close()
    out["uptime_end"] = os.popen("uptime").read().strip()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warm-seconds", type=float, default=60, help="closed loop before the first measured round of each layout")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per layout, alternating")
    parser.add_argument("--requests", type=int, default=300, help="distinct Searches and Suggests recorded and replayed")
    parser.add_argument("--keep", action="store_true", help="leave the namespace's indices (the corpus and the shared index)")
    parser.add_argument("--no-load", action="store_true", help="use the corpus a run with --keep left in WC_NAMESPACE")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    os.environ["WC_NAMESPACE"] = os.environ.get("WC_NAMESPACE") or f"benchlayout{secrets.token_hex(3)}"
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    from watercooler import config

    result = asyncio.run(run(config.load(), args))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

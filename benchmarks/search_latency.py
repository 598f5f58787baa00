"""Search and Suggest latency at a constant 100 requests/s over a large index (1,000,000 documents).

`make bench` runs it as a step (``--search-docs``, default 1,000,000) against the benchmark's
platform; standalone it starts its own search service:

    WC_INFRA=external WC_ES_PORT=19200 .venv/bin/python -m benchmarks.search_latency --docs 1000000 --seconds 30

What it does, and what it leaves out:
- bulk-loads synthetic documents straight into the real projection indices (same mappings,
  through their aliases) of the namespace it runs in — posts and microposts (80 %), comments,
  people, wiki pages — with the text fields the projections write (Elasticsearch folds them
  and analyses the ``lang.en`` copy: the synthetic words are English), ids prefixed ``bench-search-`` so that nothing the platform wrote is
  touched. Every author is one of the corpus's people (a person for every 20 documents), as
  every employee who writes has a profile: the department facet reads its authors' departments
  from the people index. Ingest through Kafka is measured elsewhere; this measures queries;
- calls Search and Suggest over gRPC at a constant offered rate, latency counted from each
  request's *scheduled* send time (no coordinated omission) into an HDR histogram, speaking as
  several distinct employees in turn (a real load comes from many people; one principal would
  meet the per-principal rate limit and any per-caller cache);
- deletes the documents it loaded at the end (``--keep`` leaves them; a ``--no-load`` run,
  which loaded none, leaves the corpus it searched).
Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import copy
import datetime as dt
import itertools
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ID_PREFIX = "bench-search-"
SPACE_ID = "bench-search-space"
# The bench space's audience as its pages carry it (services/search/readmodels/projections/wiki.py).
SPACE_AUDIENCE = {"visibility": "INTERNAL", "space_owner": "profiles/e1", "space_members": [], "classification": "INTERNAL", "audience_version": 1}
WORDS = ["quantum", "cloud", "roadmap", "customer", "service", "analytics", "security", "mobile", "design", "research", "patent", "watson", "mainframe", "storage", "network", "linux", "java", "python", "agile", "devops", "innovation", "marketing", "finance", "travel", "health", "education", "energy", "retail", "banking", "insurance", "supply", "chain", "blockchain", "privacy", "compliance", "startup", "mentor", "career", "alumni", "community", "jam", "wiki", "video", "podcast", "blog"]
NAMES = ["Ana", "Bob", "Carla", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "João", "Kofi", "Lena", "Marta", "Nuno", "Olga", "Pablo", "Qing", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wang", "Xavi", "Yara", "Zoë"]
# The aliases the documents go to (the projections' names).
ALIASES = ("posts", "comments", "people", "wiki")

# A Zipf-like vocabulary as in real text: a few common words, a long tail of rare ones
# (a 50-word vocabulary would make every query match half the corpus).
_vocab_rng = random.Random(3)
VOCAB = WORDS + ["".join(_vocab_rng.choice("bcdfghklmnprstvz") + _vocab_rng.choice("aeiou") for _ in range(_vocab_rng.randint(2, 4))) for _ in range(20_000)]
ZIPF = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(VOCAB))))


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCAB, cum_weights=ZIPF, k=n))


def doc_id(n: int) -> tuple[str, str]:
    """(alias name, document id) of the n-th synthetic document: the same for load and delete."""
    roll = n % 20
    kind = "posts" if roll < 16 else "comments" if roll < 18 else "people" if roll == 18 else "wiki"
    return kind, f"{ID_PREFIX}{kind[0]}{n}"


def documents(settings, docs: int, seed: int) -> Iterator[dict[str, Any]]:
    """Bulk actions for `docs` synthetic documents, each filtered to its index's (strict) mapping."""
    from services.search.readmodels.indices import EXCERPT, excerpt
    from services.search.readmodels.projections import ALL
    from watercooler.text import collation_key

    props = {p.name: set(p(settings).index_body()["mappings"]["properties"]) for p in ALL if p.name in ALIASES}
    rng = random.Random(seed)
    from watercooler.text import fold
    now = dt.datetime.now(dt.UTC)

    def when() -> str:
        return (now - dt.timedelta(seconds=rng.randint(0, 90 * 86400))).isoformat()

    def searchable(source: dict[str, Any], value: str) -> dict[str, Any]:
        # Elasticsearch folds the text fields itself (copy_to); the synthetic words are English.
        source.update(language="en", lang={"en": {"body": value}})
        return source

    # Every author is one of the corpus's people, as every employee who writes has a profile:
    # the department facet reads authors' departments from the people index (and keeps them).
    people = len(range(18, docs, 20))

    def someone() -> str:
        return doc_id(20 * rng.randint(0, people - 1) + 18)[1] if people else f"e{rng.randint(0, 400_000)}"

    for n in range(docs):
        alias, _id = doc_id(n)
        roll = n % 20
        vis = rng.choice(("PUBLIC", "INTERNAL", "INTERNAL", "INTERNAL", "COMMUNITY", "PRIVATE"))
        author = someone()
        if alias == "posts":
            title = text(rng, 5).title() if roll < 6 else ""
            body = text(rng, 40 if roll < 6 else 12)
            source = searchable({
                "kind": "blog" if roll < 6 else "micro", "name": f"posts/{_id}", "blog": f"b{rng.randint(0, 17000)}" if roll < 6 else "", "author_id": author,
                "title": title, "content": body, "tags": rng.sample(WORDS, 2), "mentions": [], "reply_to": "", "repost_of": "",
                "visibility": vis, "community": "c1" if vis == "COMMUNITY" else "", "state": "PUBLISHED", "hidden": False, "revision": 1,
                "created_at": when(), "published_at": when(), "deleted": False, EXCERPT: excerpt(body)}, f"{title}\n{body}")
        elif alias == "comments":
            body = text(rng, 15)
            # A comment carries its target's audience (services/search/readmodels/projections/comments.py).
            source = searchable({"name": f"comments/{_id}", "target": f"posts/{ID_PREFIX}p{n - 1}", "parent": "", "author_id": author, "body": body,
                                 "visibility": vis, "community": "c1" if vis == "COMMUNITY" else "", "hidden": False, "created_at": when(), "deleted": False,
                                 "target_kind": "post", "target_author_id": someone(), "target_owner": "", "space_id": "",
                                 "target_state": "PUBLISHED", "target_hidden": False, "target_deleted": False, "audience_version": 1, EXCERPT: excerpt(body)}, body)
        elif alias == "people":
            name = f"{rng.choice(NAMES)} {rng.choice(NAMES)}son"
            bio = text(rng, 10)
            source = {"employee_id": _id, "display_name": name, "sort_key": collation_key(name), "title": "Engineer",
                      "department": rng.choice(("Research", "Sales", "Services")), "country": "ES", "expertise": rng.sample(WORDS, 2), "bio": bio,
                      "state": "ACTIVE", "alumni": False, "created_at": when(), "deleted": False, EXCERPT: excerpt(bio)}
        else:
            title = text(rng, 3).title()
            body = text(rng, 60)
            # With the bench space's audience, as the wiki projection copies it onto each page
            # (a checkout whose mapping has no such fields leaves them out below).
            source = searchable({"kind": "page", "space_id": SPACE_ID, "title": title, "title_keys": [fold(title)], "former_titles": [], "links": [],
                                 "body": body, "author": author, "revision": 1, "created_at": when(), "deleted": False, **SPACE_AUDIENCE, EXCERPT: excerpt(body)},
                                f"{title}\n{body}")
        if alias == "posts":
            from services.search.readmodels.projections.posts import audience_of
            source["audience"] = audience_of(source)  # who may see it, as the projection writes it (schema 4 on)
        allowed = props[alias]
        yield {"_index": settings.index_alias(alias), "_id": _id, "_source": {k: v for k, v in source.items() if k in allowed}}


async def count(es, settings) -> int:
    from services.search.readmodels.projections import ALL

    aliases = ",".join(settings.index_alias(p.name) for p in ALL)
    return (await es.count(index=aliases, ignore_unavailable=True))["count"]


async def count_synthetic(es, settings) -> int:
    """How many of this module's documents the aliases hold (ES cannot prefix-match `_id`)."""
    query = {"bool": {"should": [{"prefix": {"name": f"posts/{ID_PREFIX}"}}, {"prefix": {"name": f"comments/{ID_PREFIX}"}},
                                 {"prefix": {"employee_id": ID_PREFIX}}, {"term": {"space_id": SPACE_ID}}], "minimum_should_match": 1}}
    return (await es.count(index=",".join(settings.index_alias(a) for a in ALIASES), query=query, ignore_unavailable=True))["count"]


async def load(settings, docs: int, seed: int = 7, in_flight: int = 2) -> dict[str, Any]:
    """Bulk-load `docs` documents (refresh off while loading, restored after); `in_flight`
    bulk requests at a time (two cores: two)."""
    from elasticsearch.helpers import async_bulk

    from services.search.readmodels.projections import ALL
    from watercooler.projection import es_client

    es = es_client(settings)
    try:
        refresh: dict[str, str] = {}
        for projection in ALL:
            await projection(settings).ensure_index(es)
        for alias in ALIASES:
            name = settings.index_alias(alias)
            current = await es.indices.get_settings(index=name, name="index.refresh_interval", include_defaults=True)
            index_settings = next(iter(current.body.values()))
            refresh[name] = (index_settings.get("settings") or index_settings.get("defaults") or {}).get("index", {}).get("refresh_interval", "1s")
            await es.indices.put_settings(index=name, settings={"refresh_interval": "-1"})
        now = dt.datetime.now(dt.UTC).isoformat()
        space = {"kind": "space", "space_id": SPACE_ID, "display_name": "Bench", "owner": "profiles/e1", "visibility": "INTERNAL", "members": [], "created_at": now,
                 "deleted": False, "classification": "INTERNAL", "audience_version": 1}
        wiki_fields = next(set(p(settings).index_body()["mappings"]["properties"]) for p in ALL if p.name == "wiki")
        await es.index(index=settings.index_alias("wiki"), id=f"{ID_PREFIX}space", document={k: v for k, v in space.items() if k in wiki_fields})
        started = time.monotonic()
        actions = documents(settings, docs, seed)
        try:
            # Several loaders drain one generator: `in_flight` bulk requests at a time.
            results = await asyncio.gather(*(async_bulk(es, actions, chunk_size=2000, max_retries=3, request_timeout=120, raise_on_error=True) for _ in range(in_flight)))
        finally:
            for name, interval in refresh.items():
                await es.indices.put_settings(index=name, settings={"refresh_interval": interval})
        await es.indices.refresh(index=",".join(refresh))
        seconds = time.monotonic() - started
        loaded = sum(ok for ok, _ in results)
        return {"documents": loaded + 1, "seconds": round(seconds, 1), "docs_per_s": round(loaded / seconds, 1) if seconds else None, "in_flight": in_flight,
                "refresh_interval_restored": refresh}
    finally:
        await es.close()


async def unload(settings, docs: int) -> int:
    """Delete what `load` wrote (by id: the ids are a function of n), then refresh."""
    from elasticsearch.helpers import async_bulk

    from watercooler.projection import es_client

    es = es_client(settings)

    def deletes() -> Iterator[dict[str, Any]]:
        yield {"_op_type": "delete", "_index": settings.index_alias("wiki"), "_id": f"{ID_PREFIX}space"}
        for n in range(docs):
            alias, _id = doc_id(n)
            yield {"_op_type": "delete", "_index": settings.index_alias(alias), "_id": _id}

    try:
        ok, _ = await async_bulk(es, deletes(), chunk_size=5000, max_retries=3, request_timeout=120, raise_on_error=False)
        await es.indices.refresh(index=",".join(settings.index_alias(a) for a in ALIASES))
        return ok
    finally:
        await es.close()


async def settle(es, timeout: float = 300.0) -> float | None:
    """Wait until Elasticsearch has no segment merge running (three checks in a row, a second
    apart) and return the seconds waited (None: still merging at `timeout`). A million
    documents bulk-loaded leave merging behind (4-9 s on two cores here), which a live index
    that grew over months does not have: it is kept out of the Search and Suggest figures."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout:
        stats = await es.nodes.stats(metric="indices", index_metric="merge")
        running = sum(node["indices"]["merges"]["current"] for node in stats["nodes"].values())
        quiet = quiet + 1 if running == 0 else 0
        if quiet >= 3:
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(1.0)
    return None


def hot_thread_lines(text: str, frames: int = 3) -> list[str]:
    """Each hot thread's headline ("63.1% [cpu=…] cpu usage by thread '…[search][T#1]'") and
    its first few frames: enough to tell searching from merging, refreshing or writing."""
    out: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "cpu usage by thread" in line:
            out.append(line.strip())
            stack = [x.strip() for x in lines[i + 1:i + 12] if x.strip().startswith(("app/", "org.", "java.", "com.", "io."))]
            out += [f"  {x}" for x in stack[:frames]]
    return out


# The steps measured and the RPC each calls: "SearchFacets" is a Search whose read mask is "*"
# (a search box's first page with its facets); a Search without a mask has none. "SearchTypo"
# (`benchmarks.search_ab --rpcs SearchTypo`, not a `make bench` step) is a Search for one word
# of the mix with one letter changed, which matches nothing as typed: the typo pass every time.
RPC_METHODS = {"Search": "Search", "SearchFacets": "Search", "SearchTypo": "Search", "Suggest": "Suggest"}


def request_maker(rpc: str, seed: int = 11, kinds: tuple[str, ...] = ()):
    """k -> the k-th request: one or two words of the Zipf tail for Search (of ``kinds``, none:
    every kind; for SearchFacets with every response field, facets too; for SearchTypo one such
    word of five letters or more, mistyped), two to four typed letters of a word or a name for Suggest."""
    from google.protobuf.field_mask_pb2 import FieldMask

    from watercooler.search.v1 import search_pb2 as sp

    rng = random.Random(seed)
    prefixes = VOCAB[:5000] + [n.lower() for n in NAMES]
    typo_words = [w for w in VOCAB[50:5000] if len(w) >= 5]

    def make(_k: int):
        if rpc in ("Search", "SearchFacets"):
            mask = FieldMask(paths=["*"]) if rpc == "SearchFacets" else None
            return sp.SearchRequest(query=" ".join(rng.sample(VOCAB[50:5000], rng.choice((1, 2)))), page_size=20, kinds=list(kinds), read_mask=mask)
        if rpc == "SearchTypo":
            word = rng.choice(typo_words)
            at = rng.randrange(1, len(word))  # a typo past the first letter, as the typo tier allows
            typo = word[:at] + rng.choice([c for c in "bcdfghklmnprstvz" if c != word[at]]) + word[at + 1:]
            return sp.SearchRequest(query=typo, page_size=20, kinds=list(kinds))
        word = rng.choice(prefixes)
        return sp.SuggestRequest(prefix=word[: rng.randint(2, 4)])

    return make


# The callers take turns across the whole run, warm-ups and windows alike: a window that began
# again at the first caller would speak only as callers the warm-up had just spoken as, whose
# communities and languages the search service keeps (services/search/memberships.py). With more
# callers than a run makes requests, every measured request is a caller never seen before.
_next_caller = itertools.count()


async def warm_up(address: str, callers: list, rpc: str, max_seconds: float, es_cpu=None, window: float = 10.0, in_flight: int = 4,
                  settled_within: float = 0.10, min_seconds: float = 120.0) -> dict[str, Any]:
    """Run `rpc` closed loop (`in_flight` at a time, requests of their own: a different seed, so
    the measured ones meet no request cache) in windows of `window` s until Elasticsearch's CPU
    per request has settled (harness.until_settled), or for `max_seconds`. `es_cpu`: () ->
    Elasticsearch's CPU seconds so far (None: for `max_seconds`). At least two minutes: three
    alike windows after 60 s were once 30 ms against the 16 ms reached later (two cores).

    Why: `make bench` starts its own Elasticsearch, and Search's query shapes (multi_match over
    nine indices, the sampler and terms aggregations, distance_feature, the fuzzy fallback) first
    run in that JVM in this step. Until the JIT has compiled them a Search costs a fresh node far
    more CPU (two cores, 1,000,000 documents, by 10 s window: 106, 58, 48, 45, 39, 35 ms ... 17,
    16 ms after ~3 minutes and ~10,000 Searches; the C2 compiler thread alone took a quarter of
    it): measured after 20 requests, Search showed 36-56 ms of Elasticsearch CPU and 36-46/s
    achieved instead of 15-17 ms and ~77/s. A long-running node is warm."""
    import grpc

    from benchmarks.harness import _closed_loop, until_settled
    from watercooler.search.v1 import search_pb2_grpc as sg

    async with grpc.aio.insecure_channel(address) as channel:
        method = getattr(sg.SearchServiceStub(channel), RPC_METHODS[rpc])
        spread = _next_caller
        make = request_maker(rpc, seed=12)

        async def call(request) -> None:
            try:
                await method(request, metadata=callers[next(spread) % len(callers)], timeout=30)
            except grpc.RpcError:
                pass  # warming, not measuring: a refused request still ran its query

        async def one_window(seconds_left: float) -> dict[str, Any]:
            cpu0, t0 = (es_cpu() if es_cpu else None), time.monotonic()
            done, _, _ = await _closed_loop(call, lambda _w, n: make(n), min(window, seconds_left), in_flight)
            cpu1 = es_cpu() if es_cpu else None
            per = round(1000 * (cpu1 - cpu0) / max(1, done), 2) if cpu0 is not None and cpu1 is not None else None
            return {"seconds": round(time.monotonic() - t0, 1), "requests": done, "elasticsearch_cpu_ms_per_request": per}

        result = await until_settled(one_window, lambda w: w["elasticsearch_cpu_ms_per_request"], min_seconds, max_seconds, settled_within)
    result["requests"] = sum(w["requests"] for w in result["windows"])
    return result


async def measure(address: str, callers: list, rpc: str, rate: float, seconds: float, warmup: int = 20, kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    """`rpc` (RPC_METHODS) at a constant `rate`, callers in turn (bearer metadata each)."""
    import grpc

    from benchmarks.harness import _open_loop
    from watercooler.search.v1 import search_pb2_grpc as sg

    async with grpc.aio.insecure_channel(address) as channel:
        stub = sg.SearchServiceStub(channel)
        method = getattr(stub, RPC_METHODS[rpc])
        spread = _next_caller
        call = lambda req: method(req, metadata=callers[next(spread) % len(callers)], timeout=30)  # noqa: E731
        make = request_maker(rpc, kinds=kinds)
        for k in range(warmup):
            await call(make(k))
        result = await _open_loop(call, make, rate, seconds)
    return {"rpc": rpc, **result}


def callers_for(settings, subjects: list[str]) -> list:
    from watercooler.auth import issue_token
    from watercooler.client import bearer_metadata

    return [bearer_metadata(issue_token(settings, subject, "employee", ttl_seconds=3600)) for subject in subjects]


async def run_step(settings, docs: int, rate: float, seconds: float, callers: list, seed: int = 7, profiler=None, cpu=None, hot_threads=None,
                   warmup_seconds: float = 180.0, subjects: list[str] | None = None,
                   rpcs: tuple[str, ...] = ("Search", "SearchFacets", "Suggest")) -> dict[str, Any]:
    """The harness step: load, measure each of ``rpcs`` in turn, delete; the counts before and after
    show that nothing is left behind. `profiler`: (start, finish) to sample the search process
    during each measurement; `cpu`: () -> {process: CPU seconds so far}, read before and after
    each measurement; `hot_threads`: () -> Elasticsearch's hot threads, taken halfway through
    (where the time goes); `warmup_seconds`: the most each RPC is run before it is measured
    (`warm_up`: until Elasticsearch's CPU per request has settled); `subjects`: the callers'
    employee ids, for Elasticsearch's own profile of Search's queries after it is measured."""
    from watercooler.projection import es_client

    es = es_client(settings)
    try:
        before = await count(es, settings)
    finally:
        await es.close()
    out: dict[str, Any] = {"documents_before": before, "callers": len(callers), "offered_per_s": rate}
    try:
        out["load"] = await load(settings, docs, seed=seed)
        es = es_client(settings)
        try:
            out["documents"] = await count(es, settings)
            out["synthetic_loaded"] = await count_synthetic(es, settings)
            out["merges_settled_s"] = await settle(es)
        finally:
            await es.close()
        es_cpu = (lambda: (cpu() or {}).get("elasticsearch")) if cpu else None
        for rpc in rpcs:
            warm = await warm_up(settings.grpc_address("search"), callers, rpc, warmup_seconds, es_cpu) if warmup_seconds > 0 else None
            sampling = profiler[0]() if profiler else None
            cpu_before, started = (cpu() if cpu else {}), time.monotonic()

            async def halfway() -> str:
                await asyncio.sleep(seconds / 2)
                return await asyncio.to_thread(hot_threads)

            hot = asyncio.create_task(halfway()) if hot_threads else None
            out[rpc.lower()] = await measure(settings.grpc_address("search"), callers, rpc, rate, seconds)
            if warm:
                out[rpc.lower()]["warm_up"] = warm
            if hot:
                out[rpc.lower()]["elasticsearch_hot_threads"] = hot_thread_lines(await hot)
            if cpu:
                cpu_after, wall = cpu(), time.monotonic() - started
                done = max(1, out[rpc.lower()].get("completed") or 0)
                spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_after if name in cpu_before}
                out[rpc.lower()]["cpu_ms_per_request"] = {name: round(1000 * v / done, 2) for name, v in spent.items() if "(count)" not in name}
                out[rpc.lower()]["per_request"] = {name.replace(" (count)", ""): round(v / done, 1) for name, v in spent.items() if "(count)" in name}
                out[rpc.lower()]["cores_busy"] = {name: round(v / wall, 2) for name, v in spent.items() if "(count)" not in name}
            if sampling:
                out[rpc.lower()]["profile_of_search"] = profiler[1](sampling).get("search")
            if rpc == "Search" and subjects:
                out["search"]["elasticsearch_profile"] = await elasticsearch_profile_of_search(settings, subjects)
    finally:
        out["deleted"] = await unload(settings, docs)
        es = es_client(settings)
        try:
            out["documents_after"] = await count(es, settings)
            out["synthetic_left"] = await count_synthetic(es, settings)
        finally:
            await es.close()
    return out


async def elasticsearch_profile_of_search(settings, subjects: list[str], requests: int = 60, seed: int = 23) -> dict[str, Any]:
    """Where a Search's time goes inside Elasticsearch: `requests` Searches (the measured mix)
    run in this process as the given employees, each Elasticsearch query they send recorded
    and run again with `profile: true`. Per projection index and phase (rewrite, query,
    collector, aggregations, fetch), in ms per Search summed over its queries; the typo query
    (a Search's second, sent when the words match nothing) is counted apart. The phases come
    from Elasticsearch's profiler: they overlap a little and leave out the coordinating node."""
    from services.search import servicer
    from services.search.unified import KINDS
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    es = es_client(settings)
    sent: list[tuple[int, str, dict[str, Any]]] = []  # (which Search, which of its queries, the query)
    real_search = es.search
    current = -1

    async def recording(**kwargs):
        if "sort" in kwargs or "aggs" in kwargs:  # Search's own queries, not its scope lookups
            query = "typo query" if sent and sent[-1][0] == current else "first query"
            sent.append((current, query, copy.deepcopy(kwargs)))
        return await real_search(**kwargs)

    projections = {settings.index_alias(alias) + "-v": alias for alias, _ in KINDS.values()}
    ms: collections.Counter = collections.Counter()
    try:
        es.search = recording
        make = request_maker("Search", seed)
        for current in range(requests):
            await servicer.search(es, settings, Principal(subjects[current % len(subjects)], "employee"), make(current))
        es.search = real_search
        for _, query, body in sent:
            result = await es.search(**{**body, "profile": True})
            for shard in result["profile"]["shards"]:
                index = shard["id"].split("][")[1]
                projection = next((alias for start, alias in projections.items() if index.startswith(start)), index)
                for searched in shard["searches"]:
                    ms[(query, projection, "rewrite")] += searched["rewrite_time"] / 1e6
                    ms[(query, projection, "query")] += sum(q["time_in_nanos"] for q in searched["query"]) / 1e6
                    ms[(query, projection, "collector")] += sum(c["time_in_nanos"] for c in searched["collector"]) / 1e6
                ms[(query, projection, "aggregations")] += sum(a["time_in_nanos"] for a in shard.get("aggregations", [])) / 1e6
                ms[(query, projection, "fetch")] += (shard.get("fetch") or {}).get("time_in_nanos", 0) / 1e6
    finally:
        es.search = real_search
        await es.close()
    by_query: collections.Counter = collections.Counter()
    for (query, _, _), v in ms.items():
        by_query[query] += v / requests
    return {"searches": requests, "typo_queries": sum(1 for _, query, _ in sent if query == "typo query"),
            "ms_per_search": {f"{q} {projection} {phase}": round(v / requests, 3) for (q, projection, phase), v in ms.most_common() if v / requests >= 0.005},
            "ms_per_search_by_query": {q: round(v, 2) for q, v in by_query.items()}}


def main() -> None:
    from benchmarks.harness import free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--callers", type=int, default=50, help="distinct employees the load speaks as")
    parser.add_argument("--warmup-seconds", type=float, default=180, help="the most each RPC runs before it is measured (until Elasticsearch's CPU per request settles)")
    parser.add_argument("--keep", action="store_true", help="leave the loaded documents (and the namespace's indices)")
    parser.add_argument("--profile", type=float, default=0, help="seconds of py-spy sampling of the search process during each RPC's run")
    parser.add_argument("--no-load", action="store_true", help="search the documents a run with --keep left in WC_NAMESPACE, load none")
    parser.add_argument("--service-root", default=str(ROOT), help="run the search service from this checkout (a before/after over one corpus)")
    parser.add_argument("--rpcs", default="Search,Suggest")
    parser.add_argument("--kinds", default="", help="the kinds each Search asks for (comma-separated; default: every kind)")
    parser.add_argument("--no-es-profile", action="store_true", help="skip Elasticsearch's profile of Search's queries")
    args = parser.parse_args()
    os.environ["WC_NAMESPACE"] = os.environ.get("WC_NAMESPACE") or f"benchsearch{secrets.token_hex(3)}"
    os.environ["WC_SEARCH_PORT"] = str(free_port())
    os.environ.setdefault("WC_SEARCH_HTTP_PORT", str(free_port()))
    os.environ.setdefault("WC_SEARCH_METRICS_PORT", "0")
    os.environ.setdefault("WC_RATE_LIMIT", "0")
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    from watercooler import auth, config

    settings = config.load()
    auth.ensure_dev_keys(settings)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT)])}
    service_root = Path(args.service_root)
    env["PYTHONPATH"] = os.pathsep.join([str(service_root / "libs"), str(service_root)])
    server = subprocess.Popen([sys.executable, "-m", "services.search"], cwd=service_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from watercooler.client import wait_serving

        wait_serving(settings.grpc_address("search"), 60)
        subjects = [f"e{k}" for k in range(1, args.callers + 1)]
        callers = callers_for(settings, subjects)
        if not args.no_load:
            loaded = asyncio.run(load(settings, args.docs))
            print(f"loaded {loaded['documents']:,} documents in {loaded['seconds']}s ({loaded['docs_per_s']} docs/s)", flush=True)
        from benchmarks.harness import cpu_seconds, finish_profilers, listening_pid, start_profilers

        es_pid = listening_pid(int(settings.es_url.rsplit(":", 1)[1].split("/")[0]) if settings.es_url else settings.es_port)
        print(f"{os.popen('uptime').read().strip()}; search service from {service_root}", flush=True)
        for rpc in args.rpcs.split(","):
            if args.warmup_seconds > 0:
                warm = asyncio.run(warm_up(settings.grpc_address("search"), callers, rpc, args.warmup_seconds, (lambda: cpu_seconds(es_pid)) if es_pid else None))
                print(f"{rpc:8s} warm-up {warm['seconds']} s, {warm['requests']} requests, Elasticsearch CPU ms per request by window: "
                      f"{[w['elasticsearch_cpu_ms_per_request'] for w in warm['windows']]}", flush=True)
            sampling = start_profilers({"search": server}, ("search",), args.profile) if args.profile else None
            cpu0 = {"search": cpu_seconds(server.pid), "elasticsearch": cpu_seconds(es_pid) if es_pid else None}
            result = asyncio.run(measure(settings.grpc_address("search"), callers, rpc, args.rate, args.seconds, warmup=0, kinds=tuple(filter(None, args.kinds.split(",")))))
            cpu1 = {"search": cpu_seconds(server.pid), "elasticsearch": cpu_seconds(es_pid) if es_pid else None}
            per = {name: round(1000 * (cpu1[name] - cpu0[name]) / max(1, result["completed"]), 2) for name in cpu0 if cpu0[name] is not None and cpu1[name] is not None}
            lat = result["latency_from_scheduled"]
            print(f"{rpc:8s} at {args.rate:g} req/s over {args.docs:,} docs: p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, "
                  f"max {lat.get('max_ms')} ms, errors {result['errors'] or 'none'} of {result['requests']}, achieved {result['achieved_per_s']}/s; "
                  f"CPU ms per request {per}; load {os.popen('uptime').read().split('load average:')[-1].strip()}", flush=True)
            if rpc == "Search" and not args.no_es_profile:
                esp = asyncio.run(elasticsearch_profile_of_search(settings, subjects))
                print(f"  Elasticsearch's profile, ms per Search: {esp['ms_per_search_by_query']}; " + "; ".join(f"{k} {v}" for k, v in list(esp["ms_per_search"].items())[:12]), flush=True)
            if sampling:
                prof = finish_profilers(sampling).get("search", {})
                print(f"  search process ({prof.get('samples')} samples): " + "; ".join(f"{f} {v:.0%}" for f, v in prof.get("inclusive", [])[:10]), flush=True)
                print("  self: " + "; ".join(f"{f} {v:.0%}" for f, v in prof.get("self", [])[:8]), flush=True)
    finally:
        server.terminate()
        server.wait(10)
        # A run that loaded nothing deletes nothing: the corpus it searched is another run's.
        if not args.keep and not args.no_load:
            from elasticsearch import Elasticsearch

            es = Elasticsearch(settings.es_url)
            mine = list(es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
            if mine:
                es.indices.delete(index=",".join(mine))


if __name__ == "__main__":
    main()

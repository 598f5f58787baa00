"""Search and Suggest latency (p50/p99) at a constant 100 requests/s over a large index.

    WC_ES_PORT=19200 .venv/bin/python -m benchmarks.search_latency --docs 1000000 --seconds 30

What it does, and what it leaves out:
- creates the real projection indices (same mappings) in a namespace of its own and bulk-loads
  synthetic documents straight into Elasticsearch — posts and microposts (80 %), comments,
  bookmarks, people, wiki pages, media — with folded text as the projections write it.
  Ingest through Kafka is measured elsewhere (benchmarks/posts.py); this measures queries;
- starts the real search service process (`python -m services.search`) on a free port and
  calls Search and Suggest over gRPC as an employee at a constant offered rate, latency counted
  from each request's *scheduled* send time (no coordinated omission) into an HDR histogram;
- deletes its indices at the end (``--keep`` leaves them for another run).
Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["quantum", "cloud", "roadmap", "customer", "service", "analytics", "security", "mobile", "design", "research", "patent", "watson", "mainframe", "storage", "network", "linux", "java", "python", "agile", "devops", "innovation", "marketing", "finance", "travel", "health", "education", "energy", "retail", "banking", "insurance", "supply", "chain", "blockchain", "privacy", "compliance", "startup", "mentor", "career", "alumni", "community", "jam", "wiki", "video", "podcast", "blog"]
NAMES = ["Ana", "Bob", "Carla", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "João", "Kofi", "Lena", "Marta", "Nuno", "Olga", "Pablo", "Qing", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wang", "Xavi", "Yara", "Zoë"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A Zipf-like vocabulary as in real text: a few common words, a long tail of rare ones
# (a 50-word vocabulary would make every query match half the corpus).
_vocab_rng = random.Random(3)
VOCAB = WORDS + ["".join(_vocab_rng.choice("bcdfghklmnprstvz") + _vocab_rng.choice("aeiou") for _ in range(_vocab_rng.randint(2, 4))) for _ in range(20_000)]
ZIPF = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(VOCAB))))


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCAB, cum_weights=ZIPF, k=n))


async def load(settings, docs: int, seed: int = 7) -> None:
    from elasticsearch.helpers import async_bulk

    from services.search.projections import ALL
    from watercooler.projection import es_client
    from watercooler.text import collation_key, fold

    es = es_client(settings)
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    for projection in ALL:
        await projection(settings).ensure_index(es)
        await es.indices.put_settings(index=settings.index_alias(projection.name), settings={"refresh_interval": "-1"})

    def when() -> str:
        return (now - dt.timedelta(seconds=rng.randint(0, 90 * 86400))).isoformat()

    def actions():
        for n in range(docs):
            roll = n % 20
            vis = rng.choice(("PUBLIC", "INTERNAL", "INTERNAL", "INTERNAL", "COMMUNITY", "PRIVATE"))
            author = f"e{rng.randint(0, 400_000)}"
            if roll < 16:
                title = text(rng, 5).title() if roll < 6 else ""
                body = text(rng, 40 if roll < 6 else 12)
                yield {"_index": settings.index_alias("posts"), "_id": f"p{n}", "_source": {
                    "kind": "blog" if roll < 6 else "micro", "name": f"posts/p{n}", "blog": f"b{rng.randint(0, 17000)}" if roll < 6 else "", "author_id": author,
                    "title": title, "content": body, "folded": fold(f"{title}\n{body}"), "tags": rng.sample(WORDS, 2), "mentions": [], "reply_to": "", "repost_of": "",
                    "visibility": vis, "community": "c1" if vis == "COMMUNITY" else "", "state": "PUBLISHED", "hidden": False, "revision": 1,
                    "created_at": when(), "published_at": when(), "deleted": False}}
            elif roll < 18:
                body = text(rng, 15)
                yield {"_index": settings.index_alias("comments"), "_id": f"c{n}", "_source": {"name": f"comments/c{n}", "target": f"posts/p{n - 1}", "parent": "",
                       "author_id": author, "body": body, "visibility": vis, "community": "", "hidden": False, "created_at": when(), "deleted": False}}
            elif roll == 18:
                name = f"{rng.choice(NAMES)} {rng.choice(NAMES)}son"
                yield {"_index": settings.index_alias("people"), "_id": f"h{n}", "_source": {"employee_id": f"h{n}", "display_name": name, "name_folded": fold(name),
                       "sort_key": collation_key(name), "title": "Engineer", "department": rng.choice(("Research", "Sales", "Services")), "country": "ES",
                       "expertise": rng.sample(WORDS, 2), "bio": text(rng, 10), "state": "ACTIVE", "alumni": False, "created_at": when(), "deleted": False}}
            else:
                title = text(rng, 3).title()
                yield {"_index": settings.index_alias("wiki"), "_id": f"w{n}", "_source": {"kind": "page", "space_id": "s1", "title": title, "title_keys": [fold(title)],
                       "former_titles": [], "links": [], "body": text(rng, 60), "author": author, "revision": 1, "created_at": when(), "deleted": False}}

    started = time.monotonic()
    await es.index(index=settings.index_alias("wiki"), id="space-s1", document={"kind": "space", "space_id": "s1", "display_name": "S", "owner": "profiles/e1",
                                                                               "visibility": "INTERNAL", "members": [], "created_at": now.isoformat(), "deleted": False})
    await async_bulk(es, actions(), chunk_size=2000, max_retries=3, request_timeout=120)
    for projection in ALL:
        await es.indices.put_settings(index=settings.index_alias(projection.name), settings={"refresh_interval": "1s"})
    await es.indices.refresh(index=f"{settings.namespace}-*")
    print(f"loaded {docs:,} documents in {time.monotonic() - started:.0f}s", flush=True)
    await es.close()


async def measure(address: str, token: str, rpc: str, rate: int, seconds: int) -> dict:
    import grpc
    from hdrh.histogram import HdrHistogram

    from watercooler.search.v1 import search_pb2 as sp
    from watercooler.search.v1 import search_pb2_grpc as sg

    rng = random.Random(11)
    histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds
    errors = 0
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = sg.SearchServiceStub(channel)

        def request():
            if rpc == "Search":
                return stub.Search(sp.SearchRequest(query=" ".join(rng.sample(VOCAB[50:5000], rng.choice((1, 2)))), page_size=20), metadata=metadata, timeout=10)
            word = rng.choice(VOCAB[:5000] + [n.lower() for n in NAMES])
            return stub.Suggest(sp.SuggestRequest(prefix=word[: rng.randint(2, 4)]), metadata=metadata, timeout=10)

        for _ in range(20):  # warm up
            await request()
        start = time.perf_counter() + 0.1
        total = rate * seconds

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                await request()
            except grpc.RpcError:
                errors += 1
                return
            histogram.record_value(max(1, int((time.perf_counter() - scheduled) * 1e6)))

        await asyncio.gather(*(one(i) for i in range(total)))
    return {"rpc": rpc, "rate": rate, "requests": total, "errors": errors,
            "p50_ms": histogram.get_value_at_percentile(50) / 1000, "p99_ms": histogram.get_value_at_percentile(99) / 1000,
            "max_ms": histogram.get_max_value() / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--namespace", default="")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    os.environ["WC_NAMESPACE"] = args.namespace or f"benchsearch{secrets.token_hex(3)}"
    port = free_port()
    os.environ["WC_SEARCH_PORT"] = str(port)
    os.environ.setdefault("WC_SEARCH_HTTP_PORT", str(free_port()))
    os.environ.setdefault("WC_SEARCH_METRICS_PORT", "0")
    from watercooler import auth, config

    settings = config.load()
    auth.ensure_dev_keys(settings)
    if not args.namespace:
        asyncio.run(load(settings, args.docs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT)])}
    server = subprocess.Popen([sys.executable, "-m", "services.search"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from watercooler.client import wait_serving

        wait_serving(settings.grpc_address("search"), 60)
        token = auth.issue_token(settings, "e1", "employee")
        for rpc in ("Search", "Suggest"):
            result = asyncio.run(measure(settings.grpc_address("search"), token, rpc, args.rate, args.seconds))
            print(f"{rpc:8s} at {result['rate']} req/s over {args.docs:,} docs: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                  f"max {result['max_ms']:.1f} ms, {result['errors']} errors of {result['requests']}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
        if not args.keep:
            from elasticsearch import Elasticsearch

            es = Elasticsearch(settings.es_url)
            mine = list(es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
            if mine:
                es.indices.delete(index=",".join(mine))


if __name__ == "__main__":
    main()

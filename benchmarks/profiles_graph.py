"""CreateProfile and Follow throughput and latency through gRPC, the time until the
created profiles are searchable, and the feed latency of a person following many.

Starts its own platform (every service, relay and processor) in a namespace of its own
against running Kafka and Elasticsearch, and removes its topics and indices at the end:

    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 \\
        .venv/bin/python -m benchmarks.profiles_graph --profiles 2000 --follows 2000 --concurrency 16

Never part of `make test`: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare_env() -> None:
    os.environ.setdefault("WC_NAMESPACE", f"bench{secrets.token_hex(3)}")
    os.environ.setdefault("WC_DATA_DIR", tempfile.mkdtemp(prefix="wc-bench-"))
    os.environ.setdefault("WC_LOG_FORMAT", "json")
    os.environ["WC_PROJECTIONS_METRICS_PORT"] = "0"
    os.environ["WC_STATS_METRICS_PORT"] = "0"
    os.environ["WC_THUMBNAILS_METRICS_PORT"] = "0"
    for service in ("profiles", "posts", "jams", "search"):
        os.environ[f"WC_{service.upper()}_PORT"] = str(_free_port())
        os.environ[f"WC_{service.upper()}_METRICS_PORT"] = "0"


def run_load(name: str, calls: list[Callable[[], object]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0

    def timed(call: Callable[[], object]) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            call()
        except Exception:
            errors += 1
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(timed, calls))
    elapsed = time.perf_counter() - started
    latencies.sort()
    result = {
        "requests": len(calls),
        "concurrency": concurrency,
        "errors": errors,
        "seconds": elapsed,
        "per_second": len(calls) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }
    print(f"{name:<16} {result['requests']:>6} requests, concurrency {concurrency:>3}: {result['per_second']:8.1f}/s  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  errors {errors}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--follows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--feed-following", type=int, default=1000, help="how many people the feed reader follows")
    args = parser.parse_args()
    _prepare_env()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]

    from elasticsearch import Elasticsearch

    from tools import infra
    from tools.runner import Platform
    from watercooler import auth, config
    from watercooler.client import bearer_metadata, channel
    from watercooler.profiles.v1 import graph_pb2, graph_pb2_grpc, profiles_pb2, profiles_pb2_grpc
    from watercooler.search.v1 import search_pb2, search_pb2_grpc

    settings = config.load()
    infra.ensure_up(settings)
    auth.ensure_dev_keys(settings)
    platform = Platform(settings, log_dir=Path(settings.data_dir) / "logs")
    es = Elasticsearch(settings.es_url)
    try:
        platform.start()  # inside try: a failed start still stops what did start, and cleans up
        metadata = bearer_metadata(auth.issue_token(settings, "bench", "service", ttl_seconds=7200))
        profiles_channel, search_channel = channel(settings, "profiles"), channel(settings, "search")
        profiles = profiles_pb2_grpc.ProfileServiceStub(profiles_channel)
        graph = graph_pb2_grpc.GraphServiceStub(profiles_channel)
        search = search_pb2_grpc.SearchServiceStub(search_channel)
        ids = [f"b{i:07d}" for i in range(max(args.profiles, args.feed_following + 1))]

        def create(employee_id: str) -> Callable[[], object]:
            request = profiles_pb2.CreateProfileRequest(profile=profiles_pb2.Profile(employee_id=employee_id, display_name=f"Bench Person {employee_id}", department="Bench", expertise=["kafka"]))
            return lambda: profiles.CreateProfile(request, metadata=metadata, timeout=60)

        created_at = time.perf_counter()
        run_load("CreateProfile", [create(e) for e in ids], args.concurrency)

        # Searchable: the directory count reaches every profile created.
        people = settings.index_alias("people")
        while es.count(index=people, query={"term": {"department": "Bench"}})["count"] < len(ids):
            time.sleep(0.2)
        print(f"all {len(ids)} profiles searchable {time.perf_counter() - created_at:.1f}s after the first CreateProfile was sent")

        rng = __import__("random").Random(7)
        pairs = set()
        while len(pairs) < args.follows:
            a, b = rng.sample(ids[1:], 2)
            pairs.add((a, b))
        run_load("Follow", [lambda a=a, b=b: graph.Follow(graph_pb2.FollowRequest(parent=f"profiles/{a}", target=f"profiles/{b}"), metadata=metadata, timeout=60) for a, b in sorted(pairs)], args.concurrency)

        # Feed: the reader follows feed_following people, a fifth of whom post 5 updates each.
        reader = ids[0]
        followed = ids[1 : args.feed_following + 1]
        run_load("Follow (reader)", [lambda b=b: graph.Follow(graph_pb2.FollowRequest(parent=f"profiles/{reader}", target=f"profiles/{b}"), metadata=metadata, timeout=60) for b in followed], args.concurrency)
        authors = followed[::5]
        posts = [
            lambda a=a, i=i: graph.CreateStatusUpdate(graph_pb2.CreateStatusUpdateRequest(parent=f"profiles/{a}", status_update=graph_pb2.StatusUpdate(text=f"update {i} from {a}", visibility=graph_pb2.StatusUpdate.INTERNAL)), metadata=metadata, timeout=60)
            for a in authors
            for i in range(5)
        ]
        run_load("CreateStatusUpd", posts, args.concurrency)
        statuses = settings.index_alias("statuses")
        while es.count(index=statuses)["count"] < len(posts):
            time.sleep(0.2)
        graph_index = settings.index_alias("graph")
        while es.count(index=graph_index, query={"bool": {"filter": [{"term": {"source": reader}}, {"term": {"state": "ACTIVE"}}]}})["count"] < len(followed):
            time.sleep(0.2)
        feed = search_pb2.GetNetworkFeedRequest(person=f"profiles/{reader}", page_size=20)
        first = search.GetNetworkFeed(feed, metadata=metadata)
        assert len(first.items) == 20, len(first.items)
        run_load(f"Feed ({len(followed)} fol.)", [lambda: search.GetNetworkFeed(feed, metadata=metadata, timeout=30)] * 200, 4)
        profiles_channel.close()
        search_channel.close()
    finally:
        platform.stop()
        mine = list(es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
        if mine:
            es.indices.delete(index=",".join(mine), ignore_unavailable=True)
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        topics = [t for t in admin.list_topics() if t.startswith(f"{settings.namespace}.")]
        if topics:
            admin.delete_topics(topics)
        admin.close()
        es.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

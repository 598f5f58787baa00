"""CreatePost, CreateComment and RatePost throughput and latency through gRPC, and the time
from an acknowledged post to its first search hit at a steady write rate.

Starts its own platform (every service, relay and processor) in a namespace of its own
against running Kafka and Elasticsearch, and removes its topics and indices at the end:

    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 \\
        .venv/bin/python -m benchmarks.posts --writes 1000 --concurrency 16 --rate 200 --probe-seconds 20

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
import threading
import time
import uuid
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def run_load(name: str, calls: list[Callable[[], object]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []

    def timed(call: Callable[[], object]) -> None:
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:  # counted and reported, the run goes on
            errors.append(repr(exc)[:200])
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, calls))
    elapsed = time.perf_counter() - started
    result = {
        "calls": len(calls),
        "errors": len(errors),
        "per_second": round(len(calls) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }
    print(f"{name:>14}: {result}" + (f" first error: {errors[0]}" if errors else ""), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=1000, help="calls per measured RPC")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--authors", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="steady writes/s for the time-to-search probe")
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    args = parser.parse_args()
    _prepare_env()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]

    import grpc

    from tests.conftest import _clean_namespace
    from tools.runner import Platform
    from watercooler import auth, config
    from watercooler.client import bearer_metadata
    from watercooler.posts.v1 import posts_pb2 as pb
    from watercooler.posts.v1 import posts_pb2_grpc as pg
    from watercooler.profiles.v1 import profiles_pb2 as pp
    from watercooler.profiles.v1 import profiles_pb2_grpc as ppg
    from watercooler.search.v1 import search_pb2 as sp
    from watercooler.search.v1 import search_pb2_grpc as sg

    settings = config.load()
    auth.ensure_dev_keys(settings)
    platform = Platform(settings, log_dir=Path(os.environ["WC_DATA_DIR"]) / "logs")
    platform.start()
    try:
        posts = pg.PostServiceStub(grpc.insecure_channel(settings.grpc_address("posts")))
        search = sg.SearchServiceStub(grpc.insecure_channel(settings.grpc_address("search")))
        profiles = ppg.ProfileServiceStub(grpc.insecure_channel(settings.grpc_address("profiles")))
        service = bearer_metadata(auth.issue_token(settings, "bench", "service"))
        authors = [f"a{i:04d}" for i in range(args.authors)]
        md = {a: bearer_metadata(auth.issue_token(settings, a, "employee")) for a in authors}
        for a in authors:
            profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=a, display_name=f"Author {a}")), metadata=service)
            profiles.AcceptGuidelines(pp.AcceptGuidelinesRequest(name=f"profiles/{a}", version=settings.guidelines_version), metadata=service)
            posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=f"blog-{a}", title="Bench", visibility=pb.Audience.INTERNAL)), metadata=md[a])
        seed_post = posts.CreatePost(
            pb.CreatePostRequest(parent=f"blogs/blog-{authors[0]}", post=pb.Post(title="target", visibility=pb.Audience.INTERNAL)), metadata=md[authors[0]]
        )
        posts.PublishPost(pb.PublishPostRequest(name=seed_post.name), metadata=md[authors[0]])
        print(f"platform up in namespace {settings.namespace}; {len(authors)} authors", flush=True)

        def create_post(i: int) -> Callable[[], object]:
            a = authors[i % len(authors)]
            return lambda: posts.CreatePost(
                pb.CreatePostRequest(
                    parent=f"blogs/blog-{a}",
                    post=pb.Post(title=f"post {i}", body="body " * 50, tags=["bench"], visibility=pb.Audience.INTERNAL),
                    request_id=str(uuid.uuid4()),
                ),
                metadata=md[a],
                timeout=30,
            )

        def comment(i: int) -> Callable[[], object]:
            a = authors[i % len(authors)]
            return lambda: posts.CreateComment(
                pb.CreateCommentRequest(comment=pb.Comment(target=seed_post.name, body=f"comment {i}"), request_id=str(uuid.uuid4())),
                metadata=md[a],
                timeout=30,
            )

        def rate(i: int) -> Callable[[], object]:
            a = authors[i % len(authors)]
            return lambda: posts.RatePost(pb.RatePostRequest(post=seed_post.name, value=1 + i % 5, request_id=str(uuid.uuid4())), metadata=md[a], timeout=30)

        run_load("CreatePost", [create_post(i) for i in range(args.writes)], args.concurrency)
        run_load("CreateComment", [comment(i) for i in range(args.writes)], args.concurrency)
        run_load("RatePost", [rate(i) for i in range(args.writes)], args.concurrency)

        # Time from an acknowledged (published) post to its first search hit, at a steady rate.
        acked: dict[str, float] = {}
        seen: dict[str, float] = {}
        stop = threading.Event()

        def writer() -> None:
            interval = 1.0 / args.rate
            next_at = time.perf_counter()
            i = 0
            with ThreadPoolExecutor(args.concurrency) as pool:
                while time.perf_counter() < started + args.probe_seconds:
                    a = authors[i % len(authors)]
                    word = f"w{uuid.uuid4().hex[:12]}"

                    def one(a=a, word=word) -> None:
                        post = posts.CreatePost(
                            pb.CreatePostRequest(parent=f"blogs/blog-{a}", post=pb.Post(title=word, visibility=pb.Audience.INTERNAL)),
                            metadata=md[a],
                            timeout=30,
                        )
                        posts.PublishPost(pb.PublishPostRequest(name=post.name), metadata=md[a], timeout=30)
                        acked[word] = time.perf_counter()

                    pool.submit(one)
                    i += 2  # two writes per probe post
                    next_at += 2 * interval
                    time.sleep(max(0.0, next_at - time.perf_counter()))
            stop.set()

        def prober() -> None:
            # One query per round for the newest posts (3 pages of 100), so probing costs the
            # same whatever the backlog; a post that is never among them counts as not found.
            while not (stop.is_set() and len(seen) >= len(acked)) and time.perf_counter() < started + args.probe_seconds + 30:
                token = ""
                for _ in range(3):
                    page = search.SearchPosts(sp.SearchPostsRequest(kind="blog", page_size=100, page_token=token), metadata=md[authors[0]], timeout=10)
                    now = time.perf_counter()
                    for hit in page.posts:
                        at = acked.get(hit.title)
                        if at is not None and hit.title not in seen:
                            seen[hit.title] = max(0.0, now - at)
                    token = page.next_page_token
                    if not token:
                        break
                time.sleep(0.02)

        started = time.perf_counter()
        threads = [threading.Thread(target=writer), threading.Thread(target=prober)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        delays = list(seen.values())
        print(
            f"time to search at {args.rate:.0f} writes/s target: probes={len(acked)} found={len(seen)} "
            f"p50={percentile(delays, 50) * 1000:.0f}ms p99={percentile(delays, 99) * 1000:.0f}ms",
            flush=True,
        )
    finally:
        platform.stop()
        _clean_namespace(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

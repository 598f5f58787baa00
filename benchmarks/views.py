"""Page views recorded (acknowledged after Kafka acked them) and counted (visible in the
count index) per second, and the delay from a recorded view to its count.

Starts its own platform (every service, relay and processor) in a namespace of its own
against running Kafka and Elasticsearch, and removes its topics and indices at the end:

    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 \\
        .venv/bin/python -m benchmarks.views --views 100000 --pages 50 --batch 500 --concurrency 8 \\
        --rate 2000 --probe-seconds 30

1. Burst: `--views` views over `--pages` pages with BatchRecordPageViews (`--batch` per call,
   `--concurrency` callers): recorded/s = views / time until the last call was answered;
   counted/s = views / time from the first call until the count index sums to `--views`.
2. Delay: a steady `--rate` views/s for `--probe-seconds` on the same pages, plus one probe view
   every 20 ms on probe pages of their own; a poller reads the probe pages' counts every 20 ms,
   delay = when the k-th probe of a page shows up in the count minus when its call was answered.

Never part of `make test`: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.posts import _prepare_env, percentile

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=2000.0, help="steady views/s during the delay probe")
    parser.add_argument("--probe-seconds", type=float, default=30.0)
    parser.add_argument("--probe-pages", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("WC_ES_REFRESH", "200ms")
    _prepare_env()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]

    import grpc
    from elasticsearch import Elasticsearch

    from services.search.readmodels.counters.views import index_alias
    from tests.conftest import _clean_namespace
    from tools.runner import Platform
    from watercooler import auth, config
    from watercooler.client import bearer_metadata
    from watercooler.posts.v1 import wiki_pb2 as wp
    from watercooler.posts.v1 import wiki_pb2_grpc as wg

    settings = config.load()
    auth.ensure_dev_keys(settings)
    platform = Platform(settings, log_dir=Path(os.environ["WC_DATA_DIR"]) / "logs")
    platform.start()
    es = Elasticsearch(settings.es_url, request_timeout=30)
    alias = index_alias(settings)
    try:
        wiki = wg.WikiServiceStub(grpc.insecure_channel(settings.grpc_address("posts")))
        author = bearer_metadata(auth.issue_token(settings, "bench-author", "employee"))
        service = bearer_metadata(auth.issue_token(settings, "bench-frontend", "service"))
        # The author writes what others read: a profile that accepted the participation guidelines.
        from watercooler.guidelines import AcceptForPeople
        from watercooler.profiles.v1 import profiles_pb2 as pp
        from watercooler.profiles.v1 import profiles_pb2_grpc as ppg

        profiles = ppg.ProfileServiceStub(grpc.insecure_channel(settings.grpc_address("profiles")))
        try:
            profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id="bench-author", display_name="Bench Author")), metadata=service)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        AcceptForPeople(settings, service).accept("bench-author")
        space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id="bench-views", display_name="Bench", visibility=wp.INTERNAL)), metadata=author)
        pages = [wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"Page {i}", body="x")), metadata=author).name for i in range(args.pages)]
        probes = [wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"Probe {i}", body="x")), metadata=author).name for i in range(args.probe_pages)]
        viewers = [f"viewer{i}" for i in range(50)]
        print(f"platform up in namespace {settings.namespace}; {len(pages)} pages", flush=True)

        def total_counted(targets: list[str]) -> dict[str, int]:
            result = es.search(index=alias, size=0, query={"terms": {"target": targets}}, aggs={"t": {"terms": {"field": "target", "size": len(targets)}, "aggs": {"n": {"sum": {"field": "count"}}}}})
            return {b["key"]: int(b["n"]["value"]) for b in result["aggregations"]["t"]["buckets"]}

        def batch_call(start: int, size: int) -> None:
            views = [wp.PageView(page=pages[(start + j) % len(pages)], viewer=viewers[(start + j) % len(viewers)], client="bench") for j in range(size)]
            wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=views), metadata=service, timeout=60)

        def edit_latencies(page: str, count: int, pause: float, stop_event: threading.Event | None = None) -> list[float]:
            """Edits of the hottest page, each on the revision the previous one made."""
            current = wiki.GetPage(wp.GetPageRequest(name=page), metadata=author)
            out = []
            for i in range(count):
                if stop_event is not None and stop_event.is_set():
                    break
                began_edit = time.perf_counter()
                current = wiki.EditPage(wp.EditPageRequest(name=page, base_revision=current.revision, body=f"edit {time.time()} {i}\n"), metadata=author, timeout=30)
                out.append(time.perf_counter() - began_edit)
                time.sleep(pause)
            return out

        idle_edits = edit_latencies(pages[0], 30, 0.05)
        print(f"edits of the hot page without views: p50={percentile(idle_edits, 50) * 1000:.1f}ms p99={percentile(idle_edits, 99) * 1000:.1f}ms", flush=True)

        # --- 1. burst ---------------------------------------------------------------------
        began = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda s: batch_call(s, min(args.batch, args.views - s)), range(0, args.views, args.batch)))
        recorded_s = time.perf_counter() - began
        while sum(total_counted(pages).values()) < args.views:
            if time.perf_counter() - began > 600:
                raise SystemExit("not all views counted after 10 minutes")
            time.sleep(0.05)
        counted_s = time.perf_counter() - began
        exact = total_counted(pages)
        print(
            f"burst: {args.views} views, recorded {args.views / recorded_s:.0f}/s ({recorded_s:.1f}s), "
            f"counted {args.views / counted_s:.0f}/s ({counted_s:.1f}s to the last count); exact={sum(exact.values()) == args.views}",
            flush=True,
        )

        # --- 2. delay under a steady load --------------------------------------------------
        acked: dict[tuple[str, int], float] = {}
        delays: list[float] = []
        stop = threading.Event()
        sent_probe = {p: 0 for p in probes}

        steady_sent = [0]

        def steady_call(start: int, size: int) -> None:
            batch_call(start, size)
            steady_sent[0] += size

        def steady() -> None:
            per_call = max(1, int(args.rate / 20))  # 20 calls a second
            next_at = time.perf_counter()
            i = 0
            with ThreadPoolExecutor(4) as pool:
                while not stop.is_set():
                    pool.submit(steady_call, i, per_call)
                    i += per_call
                    next_at += 0.05
                    time.sleep(max(0.0, next_at - time.perf_counter()))

        def prober() -> None:
            i = 0
            while not stop.is_set():
                page = probes[i % len(probes)]
                wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page, viewer="prober", client="probe")), metadata=service, timeout=30)
                sent_probe[page] += 1
                acked[(page, sent_probe[page])] = time.perf_counter()
                i += 1
                time.sleep(0.02)

        def poller() -> None:
            seen = {p: 0 for p in probes}
            while not stop.is_set() or any(seen[p] < sent_probe[p] for p in probes):
                now = time.perf_counter()
                for page, count in total_counted(probes).items():
                    for k in range(seen[page] + 1, count + 1):
                        if (page, k) in acked:
                            delays.append(now - acked[(page, k)])
                    seen[page] = max(seen[page], count)
                time.sleep(0.02)
                if stop.is_set() and time.perf_counter() - stopped_at[0] > 60:
                    break

        stopped_at = [0.0]
        busy_edits: list[float] = []
        threads = [threading.Thread(target=steady), threading.Thread(target=prober), threading.Thread(target=poller), threading.Thread(target=lambda: busy_edits.extend(edit_latencies(pages[0], 10_000, 0.1, stop)))]
        for t in threads:
            t.start()
        probe_began = time.perf_counter()
        time.sleep(args.probe_seconds)
        stopped_at[0] = time.perf_counter()
        achieved = steady_sent[0] / (stopped_at[0] - probe_began)
        stop.set()
        for t in threads:
            t.join()
        print(
            f"delay at {args.rate:.0f} views/s steady (achieved {achieved:.0f}/s): probes={len(acked)} counted={len(delays)} "
            f"p50={percentile(delays, 50) * 1000:.0f}ms p99={percentile(delays, 99) * 1000:.0f}ms",
            flush=True,
        )
        print(f"edits of the hot page during the steady views: n={len(busy_edits)} p50={percentile(busy_edits, 50) * 1000:.1f}ms p99={percentile(busy_edits, 99) * 1000:.1f}ms", flush=True)
    finally:
        platform.stop()
        es.close()
        _clean_namespace(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

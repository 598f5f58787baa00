"""`make bench` (`python -m benchmarks`): the platform next to the raw limits of its parts.

Brings up Kafka and Elasticsearch with tools.infra (local processes on ports and a
data dir of the benchmark's own, unless WC_INFRA=external or WC_*_PORT say otherwise),
starts every service, relay and processor with tools.runner.Platform in a namespace
of its own, runs benchmarks.harness, and writes docs/benchmarks/<name>.json, .md and plots.

    make bench BENCH_ARGS="--people-events 200000 --search-docs 1000000 --rate-seconds 30"
    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 .venv/bin/python -m benchmarks --quick
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "test-artifacts" / "bench"

# Servers of the benchmark's own: other engineers' tests on the shared dev servers would
# disturb the raw limits (and the benchmark theirs).
_DEFAULTS = {
    "WC_KAFKA_PORT": "39092", "WC_KAFKA_CONTROLLER_PORT": "39093", "WC_ES_PORT": "39200", "WC_ES_TRANSPORT_PORT": "39300", "WC_S3_PORT": "39333",
    "WC_DATA_DIR": str(BENCH_DIR / "data"), "WC_LOG_FORMAT": "json",
}


def parse(argv: list[str] | None = None):
    from benchmarks.harness import BenchConfig

    d = BenchConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--employees", type=int, default=d.employees, help="size of the synthetic company")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--burst-profiles", type=int, default=d.burst_profiles)
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--write-warmup-seconds", type=float, default=d.write_warmup_seconds,
                   help="the most CreateProfile runs before the write path is measured (until Kafka's and Elasticsearch's CPU per write settles)")
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in d.rates), help="offered CreateProfile rates, comma separated")
    p.add_argument("--rate-seconds", type=float, default=d.rate_seconds)
    p.add_argument("--people-events", type=int, default=d.people_events, help="profile events produced to the topic: catch-up, rebuild, SearchPeople")
    p.add_argument("--search-docs", type=int, default=d.search_docs, help="content documents bulk-loaded for Search and Suggest (deleted after)")
    p.add_argument("--search-docs-large", type=int, default=d.search_docs_large, help="a second, larger corpus measured the same way after the first (0: skip)")
    p.add_argument("--search-rate", type=float, default=d.search_rate)
    p.add_argument("--search-seconds", type=float, default=d.search_seconds)
    p.add_argument("--search-warmup-seconds", type=float, default=d.search_warmup_seconds,
                   help="the most Search and Suggest each run before being measured (until Elasticsearch's CPU per request settles)")
    p.add_argument("--bulk-docs", type=int, default=d.bulk_docs)
    p.add_argument("--kafka-records", type=int, default=d.kafka_records)
    p.add_argument("--echo-seconds", type=float, default=d.echo_seconds)
    p.add_argument("--partition-events", type=int, default=d.partition_events, help="people per worker step (2 events each)")
    p.add_argument("--partition-workers", default="1,2,3")
    p.add_argument("--profile-seconds", type=float, default=d.profile_seconds)
    p.add_argument("--jam-participants", type=int, default=d.jam_participants, help="jam tally: participants (x --jam-votes-each vote events)")
    p.add_argument("--jam-votes-each", type=int, default=d.jam_votes_each)
    p.add_argument("--search-callers", type=int, default=d.search_callers, help="distinct employees the search load speaks as")
    p.add_argument("--no-relevance", action="store_true", help="skip the judged relevance set (benchmarks/relevance.py, also runnable alone)")
    p.add_argument("--out-dir", type=Path, default=d.out_dir)
    p.add_argument("--name", default=d.name, help="report file name (without extension)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, measures nothing worth reporting")
    p.add_argument("--keep-infra", action="store_true", help="leave Kafka and Elasticsearch running if this run started them")
    args = p.parse_args(argv)
    cfg = BenchConfig(
        employees=args.employees, seed=args.seed, burst_profiles=args.burst_profiles, concurrency=args.concurrency, write_warmup_seconds=args.write_warmup_seconds,
        rates=tuple(float(r) for r in args.rates.split(",")), rate_seconds=args.rate_seconds, people_events=args.people_events, search_docs=args.search_docs, search_docs_large=args.search_docs_large,
        search_rate=args.search_rate, search_seconds=args.search_seconds, search_warmup_seconds=args.search_warmup_seconds, bulk_docs=args.bulk_docs, kafka_records=args.kafka_records,
        echo_seconds=args.echo_seconds, partition_events=args.partition_events,
        partition_workers=tuple(int(w) for w in args.partition_workers.split(",")), profile_seconds=args.profile_seconds,
        jam_participants=args.jam_participants, jam_votes_each=args.jam_votes_each, search_callers=args.search_callers, relevance=not args.no_relevance,
        out_dir=args.out_dir, name=args.name)
    if args.quick:
        cfg = quick(cfg)
    return cfg, args


def quick(cfg):
    """Sizes for the smoke test: every section runs, in well under a minute."""
    from dataclasses import replace

    return replace(cfg, employees=5_000, burst_profiles=40, command_calls=20, batched_profiles=300, batch_size=50, batch_concurrency=2, write_warmup_seconds=2.0, write_warmup_min_seconds=0.0, write_warmup_profiles=200, concurrency=8, rates=(20.0, 50.0), rate_seconds=1.0, people_events=300, search_docs=2_000, search_docs_large=4_000,
                   search_rate=20.0, search_seconds=1.0, search_warmup_seconds=2.0, people_warmup_seconds=1.0, people_warmup_min_seconds=0.0, bulk_docs=500, kafka_records=1_000, echo_seconds=1.0,
                   partition_events=100, partition_workers=(1, 2), profile_seconds=0, idle_settle_seconds=1.0,
                   jam_participants=200, jam_votes_each=10, search_callers=5)


def main(argv: list[str] | None = None) -> int:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ["WC_NAMESPACE"] = os.environ.get("WC_BENCH_NAMESPACE") or f"bench{secrets.token_hex(3)}"
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    cfg, args = parse(argv)

    from benchmarks import capacity, harness, report
    from tools import infra
    from tools.runner import Platform
    from watercooler import auth, config

    # The load generators speak as a few people; per-person rate limits would measure the limiter.
    env = {"WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_SEARCH_HTTP_PORT": str(harness.free_port()), "WC_RATE_LIMIT": "0"}
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(harness.free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    os.environ.update(env)
    settings = config.load()
    print(f"[bench] namespace {settings.namespace}; Kafka {settings.kafka_bootstrap}; Elasticsearch {settings.es_url} ({settings.infra_mode})")
    up = infra.ensure_up(settings, progress=lambda message: print(f"[infra] {message}"))
    auth.ensure_dev_keys(settings)
    running = Platform(settings, log_dir=BENCH_DIR / "logs" / settings.namespace)
    try:
        running.start()
        result = harness.run(cfg, settings, running.procs)
    finally:
        running.stop()
        _clean(settings)
        if up and not args.keep_infra and settings.infra_mode == "local":
            infra.ensure_down(settings)
    paths = report.write(result, cfg.out_dir, cfg.name)
    print(report.table(result))
    print(f"[bench] wrote {', '.join(str(p) for p in paths)}")
    if not args.quick and cfg.out_dir.resolve() == capacity.BENCH_JSON.parent and cfg.name == capacity.BENCH_JSON.stem:
        # The capacity model in deploy/k8s/README.md follows the figures it is computed from.
        capacity.main(["--write"])
    return 0


def _clean(settings) -> None:
    try:
        from elasticsearch import Elasticsearch
        from kafka import KafkaAdminClient

        es = Elasticsearch(settings.es_url)
        mine = list(es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
        if mine:
            es.indices.delete(index=",".join(mine), ignore_unavailable=True)
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(f"{settings.namespace}.")])
        admin.close()
    except Exception as exc:  # cleanup must not hide the results
        print(f"[bench] cleanup failed: {exc}")


if __name__ == "__main__":
    sys.exit(main())

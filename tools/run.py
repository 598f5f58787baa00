"""`make run`: the whole platform on one machine, until Ctrl-C.

Fetches and starts Kafka and Elasticsearch (kept under the data dir between
runs), starts every service, relay and processor, seeds a demo company through
the public APIs (idempotent, so a second start adds nothing), prints where
everything listens, streams readable logs, and on Ctrl-C stops the platform
and then the servers, keeping their data.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import grpc
from rich.console import Console
from rich.table import Table

from tools.runner import Platform
from watercooler import auth, config

console = Console()


def run_platform(demo_size: int) -> None:
    topology = os.environ.get("WC_TOPOLOGY") or "single"
    if topology not in ("single", "cluster"):
        console.print(f"[red]WC_TOPOLOGY={topology!r}: use single (the default) or cluster")
        sys.exit(2)
    if topology == "cluster":
        from tools.cluster import run_cluster

        return run_cluster(demo_size)
    from tools import infra
    from tools.reindex import rebuild_with_progress, stale_projections
    from tools.seed import SEEDERS
    from watercooler.kafka import ensure_topics

    settings = config.load()
    started_at = time.monotonic()
    console.rule("[bold]Watercooler")
    try:
        infra.ensure_up(settings)
    except infra.InfraError as exc:
        console.print(f"[red]{exc}")
        sys.exit(2)
    auth.ensure_dev_keys(settings)
    ensure_topics(settings)
    # Data kept from an older version: a projection whose documents changed shape is rebuilt
    # from the log before the processors resume (as `watercooler reindex` would).
    for projection_class in stale_projections(settings):
        console.print(f"  {projection_class.name}: its index predates schema version {projection_class.schema_version}; rebuilding from the log…")
        rebuild_with_progress(settings, projection_class)
    platform = Platform(settings, log_dir=settings.data_dir / "logs", echo=True)
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        platform.start()
        console.print(f"[green]platform up in {time.monotonic() - started_at:.1f}s; seeding the demo company ({demo_size} people)…")
        seeded_at = time.monotonic()
        for name, seeder in SEEDERS:
            console.print(f"  seeding {name}…")
            try:
                seeder(settings, demo_size)
            except Exception as exc:  # the platform is up and useful without a complete demo
                reason = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.RpcError) else str(exc).splitlines()[0]
                console.print(f"[yellow]  seeding {name} stopped ({reason[:200]}); the platform keeps running")
        console.print(f"[green]demo company seeded in {time.monotonic() - seeded_at:.1f}s; ready {time.monotonic() - started_at:.1f}s after start")
        _print_endpoints(settings)
        # A crashed process is restarted by the platform itself; only one that keeps crashing stops all.
        while not stop.is_set():
            if platform.gave_up.is_set():
                console.print(f"[red]{platform.gave_up_on} crashed {platform.policy.max_crashes} times within {platform.policy.window_seconds:.0f}s; stopping")
                break
            stop.wait(1.0)
    finally:
        console.print("[yellow]stopping the platform…")
        platform.stop()
        infra.ensure_down(settings)
        console.print(f"[green]stopped; data kept in {settings.data_dir}")


def _print_endpoints(settings: config.Settings) -> None:
    table = Table(title="Watercooler is listening")
    table.add_column("what")
    table.add_column("where")
    for service in config.SERVICES:
        table.add_row(f"{service} (gRPC)", settings.grpc_address(service))
        table.add_row(f"{service} metrics", f"http://127.0.0.1:{settings.metrics_port(service)}/metrics")
    table.add_row("dashboard (search HTTP)", f"http://127.0.0.1:{os.environ.get('WC_SEARCH_HTTP_PORT', '8080')}/dashboard/")
    table.add_row("Kafka", settings.kafka_bootstrap)
    table.add_row("Elasticsearch", settings.es_url)
    table.add_row("data", str(settings.data_dir))
    console.print(table)
    token = auth.issue_token(settings, "e000001", "employee", "Demo Employee")
    console.print("A token for employee e000001 (12 h):")
    console.print(token, soft_wrap=True)
    console.print(
        "Try: grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{\"query\": \"garcia\"}' "
        f"{settings.grpc_address('search')} watercooler.search.v1.SearchService/SearchPeople"
    )
    console.print("Ctrl-C stops everything; data is kept for the next `make run`.")

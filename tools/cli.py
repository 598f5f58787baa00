"""`watercooler`: the command line for people who run the platform."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from watercooler import auth, config

app = typer.Typer(help="Watercooler: an event-sourced backend for enterprise social networks.", no_args_is_help=True)
console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


@app.command()
def token(
    subject: Annotated[str, typer.Argument(help="employee id, guest id or service name")],
    kind: Annotated[str, typer.Option(help="employee, alumni, guest or service")] = "employee",
    name: Annotated[str, typer.Option(help="display name")] = "",
    jam: Annotated[list[str], typer.Option(help="for guests: a jam that invited them (repeatable)")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 12 * 3600,
) -> None:
    """Print a development bearer token signed with the dev key."""
    settings = config.load()
    print(auth.issue_token(settings, subject, kind, name, tuple(jam), ttl))


@app.command()
def seed(
    size: Annotated[int, typer.Option(help="number of employees")] = 300,
    random_seed: Annotated[int, typer.Option("--seed")] = 42,
    company: Annotated[bool, typer.Option("--company", help="write the synthetic company (tools.synthetic) instead of the small demo")] = False,
    concurrency: Annotated[int, typer.Option(help="concurrent requests (--company)")] = 16,
    tag: Annotated[str, typer.Option(help="prefix of every id (--company): a second company next to the first")] = "",
) -> None:
    """Seed a deterministic demo company through the public APIs (idempotent)."""
    from tools.seed import SEEDERS

    settings = config.load()
    if company:
        _seed_company(settings, size, random_seed, concurrency, tag)
        return
    with _progress() as progress:
        for name, seeder in SEEDERS:
            task = progress.add_task(name, total=None)
            written = seeder(settings, size, random_seed, progress=lambda n, task=task: progress.advance(task, n))
            progress.update(task, total=progress.tasks[task].completed)
            console.print(f"{name}: {written} items written")


def _seed_company(settings, size: int, random_seed: int, concurrency: int, tag: str) -> None:
    from tools.company import KINDS, write_company

    with _progress() as progress:
        tasks = {kind: progress.add_task(kind, total=None) for kind in KINDS}

        def advance(kind: str, n: int, total: int | None) -> None:
            if total is not None:
                progress.update(tasks[kind], total=total)
            progress.advance(tasks[kind], n)

        written = write_company(settings, size, random_seed, tag=tag, concurrency=concurrency, progress=advance)
    for kind in KINDS:
        console.print(f"{kind}: {written.present[kind]:,}")


@app.command()
def status() -> None:
    """Show the infrastructure, every service's health and every index."""
    from watercooler.client import health_status

    settings = config.load()
    servers = Table(title="servers")
    for column in ("server", "state", "pid", "port", "memory"):
        servers.add_column(column)
    from tools.infra import status as infra_status

    for server in infra_status(settings):
        memory = f"{server.rss_kb / 1024:.0f} MiB" if server.rss_kb else ""
        servers.add_row(server.name, server.state, str(server.pid or ""), str(server.port or ""), memory)
    console.print(servers)
    table = Table(title="services")
    table.add_column("service")
    table.add_column("address")
    table.add_column("health")
    for service in config.SERVICES:
        table.add_row(service, settings.grpc_address(service), health_status(settings.grpc_address(service)))
    console.print(table)

    async def indices() -> None:
        from watercooler.projection import es_client

        es = es_client(settings)
        try:
            rows = await es.cat.aliases(name=settings.index_alias("*"), format="json")
            table = Table(title="projections")
            for column in ("alias", "index", "documents"):
                table.add_column(column)
            for row in rows:
                count = await es.count(index=row["index"])
                table.add_row(row["alias"], row["index"], str(count["count"]))
            console.print(table)
        except Exception as exc:  # ES down: say so, the rest of status is still useful
            console.print(f"[red]Elasticsearch unreachable at {settings.es_url}: {exc}")
        finally:
            await es.close()

    asyncio.run(indices())


@app.command()
def reindex(projections: Annotated[list[str], typer.Argument(help="read model names: projections (e.g. people) or counters (view-counts, jam-stats)")]) -> None:
    """Rebuild projections or counters by replaying their topics, each into a new index, then switch its alias."""
    from tools.reindex import reindex as rebuild

    rebuild(*projections)


@app.command()
def dlq(limit: Annotated[int, typer.Option(help="how many records to show")] = 20) -> None:
    """List the dead-letter topic: events a processor could not handle, and why."""
    from kafka import KafkaConsumer

    from watercooler.events.v1.envelope_pb2 import DeadLetter

    settings = config.load()
    consumer = KafkaConsumer(settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000)
    table = Table(title=f"dead letters in {settings.dead_letter_topic}")
    for column in ("processor", "source", "reason", "failed at"):
        table.add_column(column)
    for shown, record in enumerate(consumer, start=1):
        letter = DeadLetter.FromString(record.value)
        table.add_row(letter.processor, f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}", letter.reason, letter.failed_at.ToJsonString())
        if shown >= limit:
            break
    consumer.close()
    console.print(table)


@app.command("dlq-replay")
def dlq_replay(processor: Annotated[str, typer.Option(help="only this processor's letters, e.g. people")] = "") -> None:
    """Apply the dead-lettered records again once their fault is fixed (the letters stay)."""
    from services.search.readmodels.projections import ALL
    from watercooler.processor import replay_dead_letters

    settings = config.load()
    table = Table(title=f"replayed from {settings.dead_letter_topic}")
    for column in ("processor", "source", "outcome"):
        table.add_column(column)
    for replayed in asyncio.run(replay_dead_letters(settings, [cls(settings) for cls in ALL], processor)):
        table.add_row(replayed.processor, replayed.source, replayed.outcome)
    console.print(table)


@app.command()
def run(demo_size: Annotated[int, typer.Option(help="employees in the demo company")] = 300) -> None:
    """Start Kafka, Elasticsearch, every service, relay and processor; seed a demo; Ctrl-C stops all."""
    from tools.run import run_platform

    run_platform(demo_size)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def infra(ctx: typer.Context) -> None:
    """Manage the local Kafka, Elasticsearch (and PostgreSQL) processes: up|down|status|fetch [--postgres]."""
    from tools.infra.__main__ import app as infra_app

    infra_app(args=ctx.args, standalone_mode=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

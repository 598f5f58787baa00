"""`python -m tools.reindex <name>...`: rebuild projections or counters from the log, each into a new
index, then switch its alias (the reindex Job's command; `watercooler reindex` is the same). Serves
nothing; signs one token, its own, to ask the profiles service for the keys of sealed personal
fields (docs/personal-data.md): a Job runs it as an API client with the signing key."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from watercooler import config, personaldata

console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def reindex(*names: str) -> list[dict]:
    """Rebuild the read models called ``names`` (projections or counters), one after the other in
    one process (a whole-platform rebuild starts Python and its clients once, not once a model).
    Every name is checked before any rebuild starts: an unknown one is a usage error, and nothing
    is rebuilt."""
    import typer

    from services.search.readmodels import rebuild

    unknown = [name for name in names if name not in rebuild.names()] if names else ["(none given)"]
    if unknown:
        raise typer.BadParameter(f"unknown read model {unknown[0]!r}; one of: {', '.join(rebuild.names())}")
    settings = config.load()
    return [rebuild_with_progress(settings, name) for name in dict.fromkeys(names)]


def rebuild_with_progress(settings: config.Settings, read_model: type | str) -> dict:
    """Rebuild one read model (a projection class or any name ``reindex`` takes) from the log
    with a progress bar, and say how it went."""
    from services.search.readmodels import rebuild
    from watercooler.projection import es_client

    name = read_model if isinstance(read_model, str) else read_model.name
    personaldata.shared_key_ring(settings)  # the keys the replay opens sealed fields with

    async def run() -> dict:
        es = es_client(settings)
        try:
            with _progress() as progress:
                task = progress.add_task(f"replaying into {name}", total=None)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await rebuild.rebuild(es, settings, name, progress=advance)
        finally:
            await es.close()

    started = time.monotonic()
    result = asyncio.run(run())
    elapsed = time.monotonic() - started
    rate = result["events_replayed"] / elapsed if elapsed else 0
    console.print(f"rebuilt {result['projection']}: {result['events_replayed']} events in {elapsed:.1f}s ({rate:,.0f}/s) -> {result['index']}")
    return result


def stale_projections(settings: config.Settings) -> list[type]:
    """The projections whose index was built by an older ``schema_version`` than the code's
    (a projection whose documents changed shape: they are rebuilt from the log, never patched)."""
    from services.search.readmodels import rebuild
    from watercooler.projection import es_client

    async def find() -> list[type]:
        es = es_client(settings)
        try:
            return await rebuild.stale_projections(es, settings)
        finally:
            await es.close()

    return asyncio.run(find())


def main() -> None:
    import typer

    def command(projections: list[str] = typer.Argument(help="read model names: projections (e.g. people) or counters (view-counts, jam-stats)")) -> None:
        reindex(*projections)

    typer.run(command)


if __name__ == "__main__":
    main()

"""`python -m tools.reindex <projection>`: rebuild one projection from the log into a new index,
then switch its alias (the reindex Job's command; `watercooler reindex` is the same). Signs no
token and serves nothing: a Job runs it with the search side's settings only."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from watercooler import config

console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def reindex(projection: str) -> dict:
    """Rebuild the projection named ``projection``; an unknown name is a usage error."""
    import typer

    from services.search.projections import ALL
    from watercooler.projection import by_name

    settings = config.load()
    try:
        projection_class = by_name(ALL, projection)
    except KeyError:
        raise typer.BadParameter(f"unknown projection; one of: {', '.join(p.name for p in ALL)}") from None
    return rebuild_with_progress(settings, projection_class)


def rebuild_with_progress(settings: config.Settings, projection_class: type) -> dict:
    """Rebuild one projection from the log with a progress bar, and say how it went."""
    from watercooler.projection import es_client

    async def run() -> dict:
        es = es_client(settings)
        try:
            with _progress() as progress:
                task = progress.add_task(f"replaying into {projection_class.name}", total=None)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await projection_class(settings).rebuild(es, progress=advance)
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
    from services.search.projections import ALL
    from watercooler.projection import es_client

    async def find() -> list[type]:
        es = es_client(settings)
        try:
            return [cls for cls in ALL if (stored := await cls(settings).stored_schema_version(es)) is not None and stored < cls.schema_version]
        finally:
            await es.close()

    return asyncio.run(find())




def main() -> None:
    import typer

    def command(projection: str = typer.Argument(help="projection name, e.g. people")) -> None:
        reindex(projection)

    typer.run(command)


if __name__ == "__main__":
    main()

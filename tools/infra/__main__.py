"""python -m tools.infra up|down|status|fetch [--postgres]"""

from __future__ import annotations

import logging
import time

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tools.infra import common, elasticsearch, servers
from tools.infra.common import InfraError
from watercooler import config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fetch, start and stop Kafka, Elasticsearch and PostgreSQL for Watercooler.")
console = Console()


def _fail(exc: Exception) -> None:
    if isinstance(exc, InfraError):
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code)
    # Anything else is a bug or an environment problem we did not foresee: say what, briefly.
    logging.getLogger("tools.infra").debug("unexpected error", exc_info=exc)
    console.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with -v for the traceback)",
                  highlight=False)
    raise typer.Exit(1)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def fetch(postgres: bool = typer.Option(False, "--postgres", help="Also install PostgreSQL (Debian's packages).")) -> None:
    """Download the Kafka jars and the Elasticsearch distribution into the cache (once), build
    the analysis plugin (infra/es-analysis) for it, and build SeaweedFS."""
    settings = config.load()
    t0 = time.monotonic()
    try:
        versions = common.pom_versions()
        already = common.is_fetched(settings, versions)
        with console.status("Fetching with Maven, building SeaweedFS…") as st:
            jdk = servers.prepare_local(settings, postgres, progress=lambda m: st.update(m))
            plugin = elasticsearch.build_analysis_plugin(settings, jdk)  # built above: its path
    except Exception as exc:  # noqa: BLE001 - reported by _fail
        _fail(exc)
    if already:
        console.print(f"Kafka {versions.kafka} and Elasticsearch {versions.elasticsearch} "
                      f"already in {settings.cache_dir}")
    else:
        console.print(f"[green]Fetched[/] Kafka {versions.kafka} and Elasticsearch {versions.elasticsearch} "
                      f"into {settings.cache_dir} in {time.monotonic() - t0:.1f} s")
    console.print(f"Analysis plugin: {plugin}", soft_wrap=True)


@app.command()
def up(postgres: bool = typer.Option(False, "--postgres", help="Also run PostgreSQL.")) -> None:
    """Start the servers (fetching first if needed) and wait until each one works."""
    settings = config.load()
    t0 = time.monotonic()
    try:
        if settings.infra_mode == "containers":
            _up_containers(settings, postgres)
            return
        with console.status("Starting…") as st:
            if settings.infra_mode == "local":
                results = servers.up_local(settings, postgres, progress=lambda m: st.update(m))
            else:
                servers.check_external(settings, postgres)
                results = []
    except Exception as exc:  # noqa: BLE001 - reported by _fail
        _fail(exc)
    for r in results:
        how = "already up" if r.already_running else f"up in {r.seconds:.1f} s"
        who = f"pid {r.pid}" if r.pid else "not ours"
        console.print(f"[green]✓[/] {r.name:<14} {r.address:<24} {how} ({who})")
    if settings.infra_mode == "external":
        console.print("[green]✓[/] external servers answer")
    console.print(f"Ready in {time.monotonic() - t0:.1f} s. Client environment:")
    for k, v in servers.env_for_clients(settings).items():
        console.print(f"  export {k}={v}", highlight=False)


def _up_containers(settings: config.Settings, postgres: bool) -> None:
    from tools.infra import containers

    with console.status("Starting containers…"):
        stack = containers.ensure_up(settings, postgres=postgres)
    for k, v in stack.env.items():
        console.print(f"  export {k}={v}", highlight=False)
    console.print("Containers live as long as this process: Ctrl-C stops them.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        containers.ensure_down()


@app.command()
def down() -> None:
    """Stop the servers started by `up` (SIGTERM, SIGKILL after 30 s)."""
    settings = config.load()
    if settings.infra_mode != "local":
        console.print(f"WC_INFRA={settings.infra_mode}: nothing to stop here")
        return
    t0 = time.monotonic()
    try:
        with console.status("Stopping…"):
            stopped = servers.ensure_down(settings)
    except Exception as exc:  # noqa: BLE001 - reported by _fail
        _fail(exc)
    if stopped:
        console.print(f"[green]Stopped[/] {', '.join(stopped)} in {time.monotonic() - t0:.1f} s")
    else:
        console.print("Nothing was running")


@app.command()
def status() -> None:
    """Which servers run, their pids, ports, memory and data dirs."""
    settings = config.load()
    table = Table(title=f"watercooler infra ({settings.infra_mode})")
    for col in ("server", "state", "pid", "port", "RSS"):
        table.add_column(col, justify="left" if col in ("server", "state") else "right", no_wrap=True)
    table.add_column("data dir", overflow="fold")
    colours = {"running": "green", "stopped": "dim", "foreign": "yellow"}
    for s in servers.status(settings):
        rss = f"{s.rss_kb / 1024:.0f} MiB" if s.rss_kb else "-"
        state = "port busy (not ours)" if s.state == "foreign" else s.state
        table.add_row(s.name, f"[{colours[s.state]}]{state}[/]", str(s.pid or "-"), str(s.port), rss, str(s.data_dir))
    console.print(table)
    console.print(f"cache: {settings.cache_dir}  (fetched: {'yes' if common.is_fetched(settings) else 'no'})")


if __name__ == "__main__":
    app()

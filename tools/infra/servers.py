"""The servers Watercooler runs against, as one set: what the test suite, `make run` and the
CLI use. ``ensure_up(settings)`` gives a working set according to ``settings.infra_mode`` (local
processes started by the engines' modules, an external cluster, or testcontainers);
``ensure_down`` stops what it started, ``status`` reports on each server.

State lives under ``<data_dir>/{kafka,elasticsearch,seaweedfs,postgres}`` and survives restarts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.infra import seaweedfs
from tools.infra.common import InfraError, Progress, Server, StartResult, _file_lock, _port_open, rss_kb, stop_server
from tools.infra.downloads import Jdk, fetch, find_jdk
from tools.infra.elasticsearch import build_analysis_plugin, es_health, es_server, has_analysis_names, start_elasticsearch
from tools.infra.kafka import kafka_reachable, kafka_server, start_kafka
from tools.infra.postgres import ensure_postgres_bin, postgres_server, start_postgres
from watercooler.config import Settings

log = logging.getLogger("tools.infra")

def all_servers(settings: Settings) -> list[Server]:
    return [kafka_server(settings), es_server(settings), seaweedfs.server(settings), postgres_server(settings)]


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: str  # "running" (ours), "stopped", or "foreign" (the port answers, not our process)
    pid: int | None
    port: int
    rss_kb: int | None
    data_dir: Path


def status(settings: Settings) -> list[ServerStatus]:
    result = []
    for server in all_servers(settings):
        pid = server.pid()
        if pid:
            state = "running"
        elif _port_open(server.port):
            state = "foreign"
        else:
            state = "stopped"
        result.append(ServerStatus(server.name, state, pid, server.port, rss_kb(pid) if pid else None, server.data_dir))
    return result


def stop_all(settings: Settings) -> list[str]:
    """Stop every server we started, in parallel. Returns the names of those stopped."""
    servers = all_servers(settings)
    with ThreadPoolExecutor(len(servers)) as pool:
        stopped = list(pool.map(stop_server, servers))
    return [s.name for s, was in zip(servers, stopped, strict=True) if was]


def env_for_clients(settings: Settings) -> dict[str, str]:
    """The WC_* variables that point a client process at this settings' servers.

    In local mode the addresses are those of the processes we run (from the ports);
    otherwise the configured addresses are passed through.
    """
    if settings.infra_mode == "local":
        kafka, es = f"127.0.0.1:{settings.kafka_port}", f"http://127.0.0.1:{settings.es_port}"
        pg_host = "127.0.0.1"
    else:
        kafka, es, pg_host = settings.kafka_bootstrap, settings.es_url, settings.postgres_host
    return {
        "WC_INFRA": settings.infra_mode,
        "WC_KAFKA_BOOTSTRAP": kafka,
        "WC_ES_URL": es,
        "WC_POSTGRES_HOST": pg_host,
        "WC_POSTGRES_PORT": str(settings.postgres_port),
        "WC_POSTGRES_USER": settings.postgres_user,
        "WC_POSTGRES_PASSWORD": settings.postgres_password,
        "WC_POSTGRES_DB": settings.postgres_db,
        "WC_S3_ENDPOINT": f"http://127.0.0.1:{settings.s3_port}" if settings.infra_mode == "local" else settings.s3_endpoint,
        "WC_S3_ACCESS_KEY": settings.s3_access_key,
        "WC_S3_SECRET_KEY": settings.s3_secret_key,
        "WC_S3_BUCKET": settings.s3_bucket,
    }


def prepare_local(settings: Settings, postgres: bool = False, progress: Progress | None = None) -> Jdk:
    """Everything the local servers run from, fetched or built into the cache once: Kafka's jars
    and Elasticsearch's distribution (Maven), the analysis plugin, SeaweedFS (built from the Go
    module proxy) and, with ``postgres``, Debian's PostgreSQL. Quick when all is there. On a new
    machine it takes minutes (SeaweedFS's build alone about ten on 2 cores), which is why the test
    suite calls it before its first test's timeout starts (tests/conftest.py)."""
    jdk = find_jdk()  # first: a missing JDK must stop us before any download
    log.info("using JDK %s at %s", jdk.version, jdk.home)
    # SeaweedFS builds from source for minutes: under way while Maven fetches.
    building = seaweedfs.build_in_background(settings, progress)
    fetch(settings, progress, jdk)
    build_analysis_plugin(settings, jdk, progress)  # one Maven at a time
    if postgres:
        ensure_postgres_bin(progress)
    if building is not None:
        building.join()
    seaweedfs.build(settings, progress)  # at once when built; else builds again and raises what failed
    return jdk


def up_local(settings: Settings, postgres: bool = False, progress: Progress | None = None) -> list[StartResult]:
    """Fetch if needed, then start Kafka, Elasticsearch, SeaweedFS (and PostgreSQL) in parallel."""
    jdk = prepare_local(settings, postgres, progress)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(settings.data_dir / ".infra.lock"):
        tasks: list[Callable[[], StartResult]] = [
            lambda: start_kafka(settings, jdk, progress),
            lambda: start_elasticsearch(settings, jdk, progress),
            lambda: seaweedfs.start(settings, progress),
        ]
        if postgres:
            tasks.append(lambda: start_postgres(settings, progress))
        with ThreadPoolExecutor(len(tasks)) as pool:
            futures = [pool.submit(t) for t in tasks]
            results, errors = [], []
            try:
                for f in futures:
                    try:
                        results.append(f.result())
                    except InfraError as exc:
                        errors.append(str(exc))
            except BaseException:
                # Interrupted while waiting (Ctrl-C, a test's time limit): the starts run on to
                # their end in the pool, and what they start is stopped as after a failed start.
                pool.shutdown(wait=True)
                _stop_started(settings, [f.result() for f in futures if f.exception() is None])
                raise
        if errors:
            _stop_started(settings, results)
            raise InfraError("\n\n".join(errors))
        return results


def _stop_started(settings: Settings, results: list[StartResult]) -> None:
    """Leave nothing half up: a server this call started would keep its port (and hold its data
    dir) after we gave up, and the next start would find a stranger there."""
    started = {r.name for r in results if not r.already_running}
    for server in all_servers(settings):
        if server.name in started:
            stop_server(server)


def check_external(settings: Settings, postgres: bool = False) -> None:
    """For WC_INFRA=external: raise unless every configured address answers."""
    problems = []
    if not kafka_reachable(settings.kafka_bootstrap):
        problems.append(f"Kafka at WC_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} does not answer")
    if es_health(settings.es_url) not in ("yellow", "green"):
        problems.append(f"Elasticsearch at WC_ES_URL={settings.es_url} is not healthy (yellow/green)")
    elif not has_analysis_names(settings.es_url):
        # Index creation would fail on the first analyzer it names; say why up front.
        log.warning("Elasticsearch at WC_ES_URL=%s lacks the full distribution's analysis names (spanish, "
                    "asciifolding...): run a full distribution, or an integ-test-zip with infra/es-analysis "
                    "installed (see its README)", settings.es_url)
    if (problem := seaweedfs.check_external(settings)) is not None:
        problems.append(problem)
    if postgres:
        import psycopg

        try:
            with psycopg.connect(host=settings.postgres_host, port=settings.postgres_port,
                                 user=settings.postgres_user, password=settings.postgres_password,
                                 dbname=settings.postgres_db, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            problems.append(f"PostgreSQL at {settings.postgres_host}:{settings.postgres_port} "
                            f"(db {settings.postgres_db}): {exc}".strip())
    if problems:
        raise InfraError("WC_INFRA=external but:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class UpResult:
    """What ensure_up did. Truthy when this call started something (so the caller owns stopping it)."""

    env: dict[str, str]  # the WC_* variables that point client processes at the servers
    started: list[str]  # servers started by this call; empty when everything was already up
    results: list[StartResult]

    def __bool__(self) -> bool:
        return bool(self.started)


def ensure_up(settings: Settings, postgres: bool = False, progress: Progress | None = None) -> UpResult:
    """Make sure Kafka and Elasticsearch (and PostgreSQL if asked) answer.

    local:      fetch and start local processes as needed (idempotent, fast when already up)
    external:   only check that the configured addresses answer
    containers: start testcontainers (they live as long as this Python process); their
                addresses are in ``.env`` only: export them and reload the Settings
    """
    mode = settings.infra_mode
    if mode == "local":
        results = up_local(settings, postgres, progress)
        started = [r.name for r in results if not r.already_running]
        return UpResult(env_for_clients(settings), started, results)
    if mode == "external":
        check_external(settings, postgres)
        return UpResult(env_for_clients(settings), [], [])
    if mode == "containers":
        from tools.infra import containers

        before = containers.current()
        stack = containers.ensure_up(settings, postgres=postgres)
        started = stack.names() if stack is not before else []
        return UpResult(dict(stack.env), started, [])
    raise InfraError(f"unknown WC_INFRA={mode!r}: use local, external or containers")


def ensure_down(settings: Settings) -> list[str]:
    """Stop what ensure_up started (nothing for external). Returns the names of those stopped."""
    mode = settings.infra_mode
    if mode == "local":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(settings.data_dir / ".infra.lock"):
            return stop_all(settings)
    if mode == "containers":
        from tools.infra import containers

        return containers.ensure_down()
    return []


"""PostgreSQL as a local process, from the Debian server install (apt-installed when we are
root): its configuration, its start, and the platform's database."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tools.infra.common import (
    InfraError,
    Progress,
    Server,
    StartResult,
    _apt_install,
    _as_service_user,
    _failure,
    _is_root,
    _log_size,
    _port_open,
    _prepare_service_dir,
    _say,
    _tail_text,
    _wait,
)
from watercooler.config import Settings

log = logging.getLogger("tools.infra")

POSTGRES_START_TIMEOUT = 60.0


def postgres_server(settings: Settings) -> Server:
    d = settings.data_dir / "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client to leave.
    return Server("postgres", settings.postgres_port, d, d / "data" / "postmaster.pid", "postgres",
                  stop_signal=signal.SIGINT)


def find_postgres_bin() -> Path | None:
    """The newest Debian server install, /usr/lib/postgresql/<ver>/bin."""
    base = Path("/usr/lib/postgresql")
    bins = [p / "bin" for p in base.glob("*") if (p / "bin" / "initdb").exists()] if base.is_dir() else []
    bins.sort(key=lambda b: [int(x) for x in re.findall(r"\d+", b.parent.name)] or [0])
    return bins[-1] if bins else None


def ensure_postgres_bin(progress: Progress | None = None) -> Path:
    found = find_postgres_bin()
    if found:
        return found
    if not _is_root():
        raise InfraError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin. "
                         "Run: sudo apt-get update && sudo apt-get install -y postgresql")
    # Debian's package also creates (and tries to start) a 'main' cluster on 5432; we
    # leave it alone and run our own cluster on settings.postgres_port.
    _apt_install(["postgresql"], progress)
    found = find_postgres_bin()
    if not found:
        raise InfraError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb appeared")
    return found


def render_postgres_conf(settings: Settings, socket_dir: Path) -> str:
    def q(value: object) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    lines = {
        "listen_addresses": q("127.0.0.1"),
        "port": str(settings.postgres_port),
        "unix_socket_directories": q(socket_dir),
        # Several replicas of each service, each with a pool.
        "max_connections": "200",
        "log_destination": q("stderr"),
        "logging_collector": "off",
    }
    header = "# Written by tools.infra on every start; edits are overwritten.\n"
    return header + "".join(f"{k} = {v}\n" for k, v in lines.items())


def _postgres_connect(settings: Settings, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=settings.postgres_port, user=settings.postgres_user,
                           password=settings.postgres_password, dbname=dbname, connect_timeout=3,
                           autocommit=True)


def postgres_works(settings: Settings, dbname: str = "postgres") -> bool:
    import psycopg

    try:
        with _postgres_connect(settings, dbname) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error as exc:
        log.debug("postgres probe: %r", exc)
        return False


def _ensure_database(settings: Settings) -> None:
    from psycopg import sql

    with _postgres_connect(settings) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.postgres_db,)).fetchone()
        if not exists:
            log.info("creating database %s", settings.postgres_db)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.postgres_db)))


def start_postgres(settings: Settings, progress: Progress | None = None) -> StartResult:
    server = postgres_server(settings)
    address = f"127.0.0.1:{settings.postgres_port}"
    t0 = time.monotonic()
    base = server.data_dir
    pgdata, run, log_file = base / "data", base / "run", base / "postgres.log"
    log_offsets = {log_file: _log_size(log_file)}

    pid = server.pid()
    was_running = pid is not None
    if pid is None and _port_open(settings.postgres_port):
        if postgres_works(settings):
            _say(progress, f"postgres: a server already answers on {address} (not started by us); using it")
            _ensure_database(settings)
            return StartResult("postgres", address, None, time.monotonic() - t0, True)
        raise InfraError(f"port {settings.postgres_port} is in use by something that does not accept "
                         f"{settings.postgres_user}'s password; set WC_POSTGRES_PORT to a free port")
    if pid is None:
        bin_dir = ensure_postgres_bin(progress)
        run.mkdir(parents=True, exist_ok=True)
        _prepare_service_dir(base)
        if not (pgdata / "PG_VERSION").exists():
            _say(progress, f"postgres: initdb {pgdata}")
            shutil.rmtree(pgdata, ignore_errors=True)
            pwfile = base / ".pwfile"
            pwfile.write_text(settings.postgres_password + "\n")
            os.chmod(pwfile, 0o600)
            _prepare_service_dir(base)
            try:
                out = subprocess.run(_as_service_user([
                    str(bin_dir / "initdb"), "-D", str(pgdata), "-U", settings.postgres_user,
                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
                ]), capture_output=True, text=True, cwd=base)
            finally:
                pwfile.unlink(missing_ok=True)
            if out.returncode != 0:
                raise InfraError(f"initdb failed:\n{_tail_text(out.stdout + out.stderr)}")
            with open(pgdata / "postgresql.conf", "a") as fh:
                fh.write("\ninclude_if_exists = 'watercooler.conf'\n")
        (pgdata / "watercooler.conf").write_text(render_postgres_conf(settings, run))
        _prepare_service_dir(base)
        _say(progress, f"postgres: starting on {address}")
        out = subprocess.run(_as_service_user([
            str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(log_file), "-w",
            "-t", str(int(POSTGRES_START_TIMEOUT)), "start",
        ]), capture_output=True, text=True, cwd=base, start_new_session=True)
        if out.returncode != 0:
            raise _failure(f"PostgreSQL failed to start: {_tail_text(out.stdout + out.stderr, 5)}", log_offsets)
        pid = server.pid()
    else:
        _say(progress, f"postgres: already running (pid {pid})")

    _wait("PostgreSQL", lambda: postgres_works(settings), lambda: server.pid() is not None,
          POSTGRES_START_TIMEOUT, log_offsets)
    _ensure_database(settings)
    return StartResult("postgres", address, server.pid(), time.monotonic() - t0, was_running)


"""SeaweedFS (Apache-2.0) as the local S3 object store: built from source into the cache, run as
one `weed server -s3` process (master, volume server, filer and S3 gateway in one).

Why built here: the Go module proxy serves the source, but `go install` refuses the module
(its go.mod has a `replace` directive), so the module is downloaded with `go mod download`,
copied out of the read-only module cache into ``<cache>/seaweedfs-<version>/src`` and built
there as the main module (`go build ./weed`, minutes on 2 cores). The binary
(``<cache>/seaweedfs-<version>/weed``) is reused by every checkout; nothing is committed.

Why `weed server -s3` and not `weed mini`: mini also runs the admin UI, WebDAV and
maintenance workers; the server runs only what S3 needs. Its S3 identities come from a
config file under the data dir, so presigned URLs are checked against real credentials
(anonymous access would accept any URL). Data lives in ``<data_dir>/seaweedfs`` and
survives restarts (volumes, the master's metadata and the filer's LevelDB).

Ports: S3 on WC_S3_PORT, the master, volume server and filer on the three ports after it, and
their four gRPC ports on the four after those (WC_S3_PORT + 4 to + 7).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

from tools.infra.common import (
    InfraError,
    Progress,
    Server,
    StartResult,
    _file_lock,
    _log_size,
    _pid_alive,
    _port_open,
    _say,
    _tail_text,
    _wait,
)
from watercooler import objectstore
from watercooler.config import Settings

MODULE = "github.com/seaweedfs/seaweedfs"
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
START_TIMEOUT = 120.0
BUILD_TIMEOUT = 3600.0


def home(settings: Settings) -> Path:
    return settings.cache_dir / f"seaweedfs-{VERSION}"


def binary(settings: Settings) -> Path:
    return home(settings) / "weed"


def ports(settings: Settings) -> dict[str, int]:
    base = settings.s3_port
    # The gRPC ports too: with SeaweedFS's default (HTTP port + 10000) a store on 19333 (a
    # bench's) took 29333-29336, the test servers' own, and make test could not start beside it.
    return {"s3": base, "master": base + 1, "volume": base + 2, "filer": base + 3,
            "s3_grpc": base + 4, "master_grpc": base + 5, "volume_grpc": base + 6, "filer_grpc": base + 7}


def server(settings: Settings) -> Server:
    d = settings.data_dir / "seaweedfs"
    return Server("seaweedfs", settings.s3_port, d, d / "weed.pid", f"-s3.port={settings.s3_port}")


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise InfraError("Go is needed once to build SeaweedFS (the local object store): install Go 1.24 or newer "
                         "(https://go.dev/dl/ or `apt-get install -y golang`), or point WC_S3_ENDPOINT at an S3 store "
                         "with WC_INFRA=external")
    return go


def build(settings: Settings, progress: Progress | None = None) -> Path:
    """The weed binary in the cache, built once (skipped when it is there)."""
    weed = binary(settings)
    if weed.exists():
        return weed
    base = home(settings)
    base.mkdir(parents=True, exist_ok=True)
    with _file_lock(base / ".build.lock"):
        if weed.exists():  # another process built it while we waited
            return weed
        go = _go()
        log_file = base / "build.log"
        _say(progress, f"seaweedfs: building {MODULE}@{VERSION} into {base} (a few minutes, once)")
        t0 = time.monotonic()
        with open(log_file, "w") as out:
            # Run outside any module so the download is not added to a go.mod.
            got = subprocess.run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"], cwd=base,
                                 stdout=subprocess.PIPE, stderr=out, text=True, timeout=BUILD_TIMEOUT)
            if got.returncode != 0:
                raise InfraError(f"`go mod download {MODULE}@{VERSION}` failed; see {log_file}:\n{_tail_text(log_file.read_text())}")
            module_dir = Path(json.loads(got.stdout)["Dir"])
            # The module cache is read-only; the build writes nothing there but needs a main module of its own.
            src, staging = base / "src", base / "src.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(module_dir, staging, symlinks=True)
            subprocess.run(["chmod", "-R", "u+w", str(staging)], check=True)
            shutil.rmtree(src, ignore_errors=True)
            staging.rename(src)
            partial = base / "weed.partial"
            built = subprocess.run([go, "build", "-o", str(partial), "./weed"], cwd=src, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "GOFLAGS": os.environ.get("GOFLAGS", "") + " -buildvcs=false"}, timeout=BUILD_TIMEOUT)
        if built.returncode != 0:
            raise InfraError(f"building SeaweedFS failed; see {log_file}:\n{_tail_text(log_file.read_text())}")
        partial.rename(weed)  # last: a binary in place is a complete one
        _say(progress, f"seaweedfs: built {weed} in {time.monotonic() - t0:.0f} s")
    return weed


def build_in_background(settings: Settings, progress: Progress | None = None) -> threading.Thread | None:
    """Start the (slow) build at once, so it overlaps fetching and starting Kafka and Elasticsearch."""
    if binary(settings).exists():
        return None
    errors: list[BaseException] = []

    def run() -> None:
        try:
            build(settings, progress)
        except BaseException as exc:  # reported by start(), which builds again and raises
            errors.append(exc)

    thread = threading.Thread(target=run, name="seaweedfs-build", daemon=True)
    thread.start()
    return thread


def s3_config(settings: Settings) -> str:
    """The one identity the platform uses; every request (presigned ones too) is signed with it."""
    identity = {
        "name": "watercooler",
        "credentials": [{"accessKey": settings.s3_access_key, "secretKey": settings.s3_secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2)


def command(settings: Settings, weed: Path, data: Path, config: Path) -> list[str]:
    p = ports(settings)
    return [
        str(weed), "server", "-s3",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
        f"-s3.port={p['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port.grpc={p['master_grpc']}", f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port.grpc={p['filer_grpc']}", f"-s3.port.grpc={p['s3_grpc']}",
        f"-s3.config={config}",
        "-master.telemetry=false",
        # Small volumes: a dev store grows 1 GB at a time instead of 30 GB.
        "-master.volumeSizeLimitMB=1024", "-volume.max=0",
        # One volume server and no other master to re-route to: its default 10 s between leaving
        # the cluster and stopping (for a multi-node store's clients to move) only delays a stop.
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={data.parent / 'filer.sock'}", f"-s3.localSocket={data.parent / 's3.sock'}",
    ]


def _local_settings(settings: Settings) -> Settings:
    return replace(settings, s3_endpoint=f"http://127.0.0.1:{settings.s3_port}")


def start(settings: Settings, progress: Progress | None = None) -> StartResult:
    srv = server(settings)
    local = _local_settings(settings)
    address = local.s3_endpoint
    t0 = time.monotonic()
    data, out_log = srv.data_dir / "data", srv.data_dir / "weed.log"
    logs = {out_log: _log_size(out_log)}

    pid = srv.pid()
    was_running = pid is not None
    if pid is None and _port_open(settings.s3_port):
        if objectstore.works(local):
            _say(progress, f"seaweedfs: an S3 store already answers on {address} (not started by us); using it")
            return StartResult("seaweedfs", address, None, time.monotonic() - t0, True)
        raise InfraError(f"port {settings.s3_port} is in use by something that is not an S3 store accepting "
                         f"WC_S3_ACCESS_KEY; set WC_S3_PORT to a free port")
    if pid is None:
        weed = build(settings, progress)
        data.mkdir(parents=True, exist_ok=True)
        config = srv.data_dir / "s3.json"
        config.write_text(s3_config(settings))
        os.chmod(config, 0o600)
        _say(progress, f"seaweedfs: starting S3 on {address}")
        with open(out_log, "ab") as out_fh:
            proc = subprocess.Popen(command(settings, weed, data, config), cwd=srv.data_dir, stdin=subprocess.DEVNULL,
                                    stdout=out_fh, stderr=subprocess.STDOUT, start_new_session=True)
        srv.pid_file.write_text(f"{proc.pid}\n")
        pid = proc.pid
        alive = lambda: proc.poll() is None  # noqa: E731
    else:
        _say(progress, f"seaweedfs: already running (pid {pid}), waiting until S3 answers")
        alive = lambda: _pid_alive(pid, srv.cmdline_marker)  # noqa: E731

    # Ready = the bucket can be created/seen with our credentials (the filer and volume
    # server register with the master a few seconds after the S3 port opens).
    _wait("SeaweedFS", lambda: _port_open(settings.s3_port) and objectstore.works(local, timeout=3.0), alive,
          START_TIMEOUT, logs, interval=0.5)
    return StartResult("seaweedfs", address, pid, time.monotonic() - t0, was_running)


def check_external(settings: Settings) -> str | None:
    """A problem with the configured store (WC_S3_ENDPOINT), or None."""
    if objectstore.works(settings):
        return None
    return (f"the object store at WC_S3_ENDPOINT={settings.s3_endpoint} does not answer, or refuses "
            f"WC_S3_ACCESS_KEY, or bucket {settings.s3_bucket} cannot be created")


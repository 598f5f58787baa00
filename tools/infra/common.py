"""What the engines' modules share: errors meant for a person, the versions of infra/pom.xml
and the cache layout, small process helpers, the service user Elasticsearch and PostgreSQL run
as when we are root, pid-file servers (stop, status) and waiting for a server to work.
Standard library only."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watercooler.config import Settings

log = logging.getLogger("tools.infra")

Progress = Callable[[str], None]

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
POM_FILE = INFRA_DIR / "pom.xml"
MIN_JAVA = 17
# The system user Elasticsearch and PostgreSQL run as when we are root (both refuse root).
SERVICE_USER = "watercooler"
# Pinned so a fetch does the same thing next year (the bare `dependency:` prefix
# resolves to whatever plugin release is newest).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
FETCHED_MARKER = ".watercooler-fetched"
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 30


class InfraError(RuntimeError):
    """A failure to fetch, start or reach a server, with a message meant for a person."""

    exit_code = 1


class JdkNotFound(InfraError):
    exit_code = 2


def _say(progress: Progress | None, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress(message)


@dataclass(frozen=True)
class Versions:
    kafka: str
    elasticsearch: str


def parse_pom_versions(pom_text: str) -> Versions:
    """The server versions from the ``<properties>`` of infra/pom.xml."""
    root = ET.fromstring(pom_text)
    props: dict[str, str] = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "properties":
            for child in el:
                props[child.tag.rsplit("}", 1)[-1]] = (child.text or "").strip()
    try:
        return Versions(kafka=props["kafka.version"], elasticsearch=props["elasticsearch.version"])
    except KeyError as missing:
        raise InfraError(f"infra/pom.xml has no <{missing.args[0]}> property") from None


def pom_versions(pom: Path = POM_FILE) -> Versions:
    try:
        return parse_pom_versions(pom.read_text())
    except FileNotFoundError:
        raise InfraError(f"{pom} not found: tools.infra expects to run from a source checkout") from None


def kafka_home(settings: Settings, versions: Versions | None = None) -> Path:
    return settings.cache_dir / f"kafka-{(versions or pom_versions()).kafka}"


def kafka_libs_dir(settings: Settings) -> Path:
    """The broker's classpath: every Kafka jar, kafka-tools (perf tests) and the log4j2 binding."""
    return kafka_home(settings) / "libs"


def es_distribution_dir(settings: Settings, versions: Versions | None = None) -> Path:
    return settings.cache_dir / f"elasticsearch-{(versions or pom_versions()).elasticsearch}"


def is_fetched(settings: Settings, versions: Versions | None = None) -> bool:
    v = versions or pom_versions()
    return all((d / FETCHED_MARKER).exists() for d in (kafka_home(settings, v), es_distribution_dir(settings, v)))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise fetch/up/down between processes (parallel test workers, `make run`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_install(packages: list[str], progress: Progress | None) -> None:
    _say(progress, f"Installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise InfraError(f"`{' '.join(cmd)}` failed:\n{_tail_text(out.stdout + out.stderr)}")


def _tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            return _tail_text(fh.read().decode("utf-8", "replace"), lines)
    except OSError:
        return f"({path} not readable)"


def _port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def parse_vmrss_kb(proc_status: str) -> int | None:
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", proc_status, re.MULTILINE)
    return int(m.group(1)) if m else None


def rss_kb(pid: int) -> int | None:
    try:
        return parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def _pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line contains ``marker`` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and marker in cmdline


def parse_heap(heap: str) -> str:
    """Validate a heap size such as "512m" or "1g" (the JVM's -Xmx syntax)."""
    heap = heap.strip()
    if not re.fullmatch(r"\d+[kKmMgG]?", heap):
        raise InfraError(f"invalid heap size {heap!r}: use the JVM's syntax, e.g. 512m or 1g")
    return heap


def jvm_heap_options(heap: str) -> list[str]:
    heap = parse_heap(heap)
    return [f"-Xms{heap}", f"-Xmx{heap}"]


def _service_ids() -> tuple[int, int]:
    """uid/gid of the service user, created once (root only)."""
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        log.info("creating system user %s", SERVICE_USER)
        out = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, text=True,
        )
        if out.returncode != 0 and "already exists" not in out.stderr:
            raise InfraError(f"could not create the system user {SERVICE_USER}: {out.stderr.strip()}") from None
        pw = pwd.getpwnam(SERVICE_USER)
    return pw.pw_uid, pw.pw_gid


def _as_service_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *cmd] if _is_root() else cmd


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it to uid:gid (only what isn't theirs already)."""
    def fix(p: str) -> None:
        st = os.lstat(p)
        if st.st_uid != uid or st.st_gid != gid:
            os.lchown(p, uid, gid)

    fix(str(path))
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            fix(os.path.join(dirpath, name))


def _user_can_reach(path: Path) -> bool:
    return subprocess.run(_as_service_user(["test", "-x", str(path)]), capture_output=True).returncode == 0


def _grant_traverse(path: Path) -> None:
    """Let the service user traverse every ancestor of ``path``.

    With the default data dir under /root (mode 700) the user can't reach its own data.
    Only the search bit is granted, never read: through an ACL entry for that one user
    when setfacl is installed, otherwise as o+x.  Each change is logged.
    """
    if _user_can_reach(path):
        return
    setfacl = shutil.which("setfacl")
    for ancestor in reversed(path.parents):
        if _user_can_reach(ancestor):
            continue
        if setfacl and subprocess.run([setfacl, "-m", f"u:{SERVICE_USER}:x", str(ancestor)],
                                      capture_output=True).returncode == 0:
            log.warning("granted %s search (x) permission on %s (ACL)", SERVICE_USER, ancestor)
        else:
            os.chmod(ancestor, os.stat(ancestor).st_mode | stat.S_IXOTH)
            log.warning("added o+x (search only) to %s so %s can reach %s", ancestor, SERVICE_USER, path)
    if not _user_can_reach(path):
        raise InfraError(
            f"the {SERVICE_USER} user cannot reach {path}; set WC_DATA_DIR to a directory it can reach"
        )


def _prepare_service_dir(path: Path) -> None:
    """Create ``path`` and, as root, hand it to the service user and make it reachable."""
    path.mkdir(parents=True, exist_ok=True)
    if _is_root():
        uid, gid = _service_ids()
        _chown_tree(path, uid, gid)
        _grant_traverse(path)


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    data_dir: Path
    pid_file: Path
    cmdline_marker: str
    stop_signal: int = signal.SIGTERM

    def pid(self) -> int | None:
        """The pid of our running server, from its pid file (None if not running)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid, self.cmdline_marker) else None


def stop_server(server: Server, timeout: float = STOP_TIMEOUT) -> bool:
    """Signal, wait up to ``timeout`` s, then SIGKILL. True if something was running."""
    pid = server.pid()
    if pid is None:
        return False
    log.info("stopping %s (pid %d)", server.name, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, server.stop_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid, server.cmdline_marker):
        time.sleep(0.2)
    if _pid_alive(pid, server.cmdline_marker):
        log.warning("%s (pid %d) still running after %.0f s: SIGKILL", server.name, pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid, server.cmdline_marker):
            time.sleep(0.1)
    if server.name != "postgres":  # postgres removes postmaster.pid itself (and must, after SIGKILL, on restart)
        server.pid_file.unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class StartResult:
    name: str
    address: str
    pid: int | None  # None when someone else's server already answered on the port
    seconds: float
    already_running: bool


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hush a client library's connection-refused noise while a server boots."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def first_error(path: Path, offset: int = 0, max_lines: int = 4) -> str | None:
    """The first ERROR/FATAL record written to ``path`` after ``offset``, with its exception and
    "Caused by" lines but without the stack frames: what went wrong, in a few lines."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = fh.read(4 * 1024 * 1024).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines):
        if not re.search(r"\b(ERROR|FATAL)\b", line):
            continue
        summary = [line.strip()]
        for follow in lines[i + 1:i + 400]:
            if re.match(r"^\[?\d{4}-\d\d-\d\d", follow):  # the next log record
                break
            text = follow.strip()
            if text and not text.startswith(("at ", "...")):
                summary.append(text)
                if len(summary) >= max_lines:
                    break
        return "\n  ".join(part[:300] for part in summary)
    return None


def _failure(what: str, logs: dict[Path, int]) -> InfraError:
    """An error quoting the first ERROR line and the tail of each log that grew since ``logs[path]``."""
    parts = [what]
    for path, offset in logs.items():
        if _log_size(path) <= offset:
            continue
        error = first_error(path, offset)
        if error:
            parts.append(f"First error in {path.name}: {error}")
        parts.append(f"Last lines of {path}:\n{tail_file(path)}")
    if len(parts) == 1:
        parts.append("(no log output; see " + ", ".join(str(p) for p in logs) + ")")
    return InfraError("\n".join(parts))


def _wait(name: str, ready: Callable[[], bool], alive: Callable[[], bool], timeout: float,
          logs: dict[Path, int], interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if not alive():
            raise _failure(f"{name} exited during start-up.", logs)
        if time.monotonic() > deadline:
            raise _failure(f"{name} did not become ready within {timeout:.0f} s.", logs)
        time.sleep(interval)


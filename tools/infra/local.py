"""Kafka, Elasticsearch, SeaweedFS (S3) and PostgreSQL as local processes, without Docker.

* ``fetch``      resolves the Kafka jars and the Elasticsearch integ-test-zip listed in
  ``infra/pom.xml`` with Maven into ``<cache_dir>`` (skipped once complete).
* the analysis plugin in ``infra/es-analysis`` is built with Maven into ``<cache_dir>`` (once
  per source hash) and installed with the distribution's ``bin/elasticsearch-plugin`` into
  the Elasticsearch we run, before it starts (again whenever its source changed).
* ``ensure_up``  starts whatever is not already answering, waits until each server
  really works, and returns the ``WC_*`` variables that point clients at them.
* ``ensure_down`` stops what we started (pid files), ``status`` reports on it.

State lives under ``<data_dir>/{kafka,elasticsearch,postgres}`` and survives restarts.
Everything here is synchronous and uses only the standard library at import time;
kafka-python and psycopg are imported when a server is probed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from watercooler.config import Settings

log = logging.getLogger("tools.infra")

Progress = Callable[[str], None]

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
POM_FILE = INFRA_DIR / "pom.xml"
# Lucene's analysis components under the full distribution's names (asciifolding, stemmer,
# the language analyzers...), which the integ-test-zip lacks; see infra/es-analysis/README.md.
ANALYSIS_PLUGIN_DIR = INFRA_DIR / "es-analysis"
ANALYSIS_PLUGIN_NAME = "watercooler-analysis"
# In an Elasticsearch home: the source hash of the analysis plugin installed there.
ANALYSIS_PLUGIN_MARKER = ".watercooler-analysis-plugin"
KAFKA_LOG4J2_FILE = INFRA_DIR / "log4j2.properties"

MIN_JAVA = 17
# The system user Elasticsearch and PostgreSQL run as when we are root (both refuse root).
SERVICE_USER = "watercooler"
# Pinned so a fetch does the same thing next year (the bare `dependency:` prefix
# resolves to whatever plugin release is newest).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
FETCHED_MARKER = ".watercooler-fetched"
PROBE_TOPIC = "tools.infra.probe"

KAFKA_START_TIMEOUT = 90.0
# A node that rejoins a cluster on a busy machine can take longer (WC_ES_START_TIMEOUT).
ES_START_TIMEOUT = float(os.environ.get("WC_ES_START_TIMEOUT") or 120.0)
POSTGRES_START_TIMEOUT = 60.0
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


# --------------------------------------------------------------------------------------
# Versions and cache layout
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# JDK
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Jdk:
    home: Path
    version: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


_JAVA_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def parse_java_version(output: str) -> int | None:
    """The feature version from ``java -version`` output: "1.8.0_392" -> 8, "17.0.15" -> 17, "25" -> 25."""
    m = _JAVA_VERSION_RE.search(output)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):  # the pre-9 scheme, 1.<feature>.x
        return int(m.group(2))
    return major


def java_version(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_java_version(out.stderr + out.stdout)


def jdk_candidates() -> list[Path]:
    """JDK homes to consider, in order: $JAVA_HOME, /usr/lib/jvm/*, then `java` on PATH."""
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        homes.extend(sorted(p for p in jvm.iterdir() if p.is_dir()))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(os.path.realpath(on_path)).parent.parent)
    unique: list[Path] = []
    seen: set[Path] = set()
    for home in homes:
        real = Path(os.path.realpath(home))
        if real not in seen and (real / "bin" / "java").exists():
            seen.add(real)
            unique.append(real)
    return unique


def find_jdk(min_version: int = MIN_JAVA) -> Jdk:
    """A JDK (or JRE) new enough for Kafka 4.1 and Elasticsearch 8.19.

    $JAVA_HOME wins when it is new enough.  Among /usr/lib/jvm/* the *oldest* release
    >= ``min_version`` is taken: 17 is what both servers are verified on here, and a
    newer one installed for some other purpose should not change how they run.
    """
    candidates = jdk_candidates()
    env_home = os.environ.get("JAVA_HOME")
    found: list[Jdk] = []
    for home in candidates:
        version = java_version(home / "bin" / "java")
        if version is None or version < min_version:
            log.debug("JDK %s (version %s) is not usable", home, version)
            continue
        jdk = Jdk(home=home, version=version)
        if env_home and Path(os.path.realpath(env_home)) == home:
            return jdk
        found.append(jdk)
    if not found:
        raise JdkNotFound(
            f"No JDK {min_version} or newer found (looked at $JAVA_HOME, /usr/lib/jvm/*, java on PATH). "
            f"Install a JDK 17 or newer, e.g. `apt-get install -y openjdk-17-jdk-headless`"
        )
    return min(found, key=lambda j: j.version)


def compiler_jdk(jdk: Jdk, progress: Progress | None = None) -> Jdk:
    """A JDK with ``javac`` for building infra/es-analysis: ``jdk`` when it has one, else another
    one new enough; as root, openjdk-17-jdk-headless is installed when there is none (a JRE runs
    Kafka and Elasticsearch but compiles nothing)."""
    def with_compiler() -> Jdk | None:
        if (jdk.home / "bin" / "javac").exists():
            return jdk
        for home in jdk_candidates():
            version = java_version(home / "bin" / "java") if (home / "bin" / "javac").exists() else None
            if version is not None and version >= MIN_JAVA:
                return Jdk(home=home, version=version)
        return None

    found = with_compiler()
    if found is None and _is_root():
        _apt_install([f"openjdk-{MIN_JAVA}-jdk-headless"], progress)
        found = with_compiler()
    if found is None:
        raise JdkNotFound(f"Building the Elasticsearch analysis plugin (infra/es-analysis) needs a JDK {MIN_JAVA}+ "
                          f"with javac, and only a JRE was found at {jdk.home}: "
                          f"`apt-get install -y openjdk-{MIN_JAVA}-jdk-headless`")
    return found


# --------------------------------------------------------------------------------------
# Small process helpers
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# The service user (Elasticsearch and PostgreSQL refuse to run as root)
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------
def ensure_maven(progress: Progress | None = None) -> str:
    mvn = shutil.which("mvn")
    if mvn:
        return mvn
    if not _is_root():
        raise InfraError("Maven (mvn) is not installed. Run: sudo apt-get update && sudo apt-get install -y maven")
    _apt_install(["maven"], progress)
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError("apt-get installed maven but `mvn` is still not on PATH")
    return mvn


def _dir_size_mb(path: Path) -> float:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total / 1e6


def _run_maven(settings: Settings, jdk: Jdk, args: list[str], what: str, progress: Progress | None,
               pom: Path = POM_FILE, log_name: str = "fetch.log") -> None:
    mvn = ensure_maven(progress)
    repo = settings.cache_dir / "m2"
    repo.mkdir(parents=True, exist_ok=True)
    log_file = settings.cache_dir / log_name
    cmd = [mvn, "-q", "-B", "-f", str(pom), f"-Dmaven.repo.local={repo}", *args]
    log.debug("running %s", " ".join(cmd))
    start = time.monotonic()
    with open(log_file, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "JAVA_HOME": str(jdk.home)})
        try:
            while proc.poll() is None:
                if progress:
                    progress(f"{what}: {_dir_size_mb(repo):.0f} MB in the Maven cache, {time.monotonic() - start:.0f} s")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
        finally:
            if proc.poll() is None:  # interrupted: don't leave Maven writing into the staging dir
                proc.terminate()
                proc.wait()
    if proc.returncode != 0:
        raise InfraError(f"Maven failed ({what}); see {log_file}:\n{tail_file(log_file)}")


def _unzip(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the Unix modes (bin/ scripts must stay executable) and symlinks, plus read for all."""
    dest_real = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if dest_real not in target.parents and target != dest_real:
                raise InfraError(f"refusing to unpack {info.filename!r} outside {dest}")
            mode = info.external_attr >> 16
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode(), target)
                continue
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            # Readable by all: the zip has config/ at 0660, and the cache is shared read-only.
            os.chmod(target, ((mode & 0o777) or 0o644) | 0o444)


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def fetch(settings: Settings, progress: Progress | None = None, jdk: Jdk | None = None) -> Versions:
    """Download the Kafka jars and the Elasticsearch distribution into the cache, once.

    Each lands in a staging dir that is renamed into place, and the marker file is
    written last, so an interrupted download is simply redone.
    """
    versions = pom_versions()
    kafka_dir, es_dir = kafka_home(settings, versions), es_distribution_dir(settings, versions)
    if is_fetched(settings, versions):
        return versions
    jdk = jdk or find_jdk()
    with _file_lock(settings.cache_dir / ".fetch.lock"):
        if not (kafka_dir / FETCHED_MARKER).exists():
            stage = _fresh_dir(settings.cache_dir / f".staging-kafka-{versions.kafka}")
            _run_maven(settings, jdk, [f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DexcludeTypes=zip",
                                       f"-DoutputDirectory={stage / 'libs'}"],
                       f"Kafka {versions.kafka} jars", progress)
            shutil.rmtree(kafka_dir, ignore_errors=True)
            stage.rename(kafka_dir)
            (kafka_dir / FETCHED_MARKER).write_text(versions.kafka + "\n")
            _say(progress, f"Kafka {versions.kafka}: {len(list((kafka_dir / 'libs').glob('*.jar')))} jars in {kafka_dir / 'libs'}")
        if not (es_dir / FETCHED_MARKER).exists():
            stage = _fresh_dir(settings.cache_dir / f".staging-elasticsearch-{versions.elasticsearch}")
            _run_maven(settings, jdk, [f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeTypes=zip",
                                       f"-DoutputDirectory={stage / 'zip'}"],
                       f"Elasticsearch {versions.elasticsearch}", progress)
            zips = list((stage / "zip").glob("elasticsearch-*.zip"))
            if len(zips) != 1:
                raise InfraError(f"expected one Elasticsearch zip from Maven, found {zips}")
            _say(progress, f"Unpacking {zips[0].name}")
            _unzip(zips[0], _fresh_dir(stage / "unpacked"))
            tops = list((stage / "unpacked").iterdir())
            root = tops[0] if len(tops) == 1 and tops[0].is_dir() else stage / "unpacked"
            shutil.rmtree(es_dir, ignore_errors=True)
            root.rename(es_dir)
            shutil.rmtree(stage, ignore_errors=True)
            (es_dir / FETCHED_MARKER).write_text(versions.elasticsearch + "\n")
            _say(progress, f"Elasticsearch {versions.elasticsearch} in {es_dir}")
    return versions


# --------------------------------------------------------------------------------------
# The analysis plugin (infra/es-analysis)
# --------------------------------------------------------------------------------------
def analysis_plugin_source_hash(versions: Versions | None = None, source: Path = ANALYSIS_PLUGIN_DIR) -> str:
    """A hash of what the plugin is built from (pom.xml and src/, not its README) and the
    Elasticsearch version it is built for: a change to either means a new build and a reinstall."""
    digest = hashlib.sha256((versions or pom_versions()).elasticsearch.encode() + b"\0")
    files = sorted([source / "pom.xml", *(p for p in (source / "src").rglob("*") if p.is_file())])
    if not all(p.is_file() for p in files):
        raise InfraError(f"{source} has no files: tools.infra expects to run from a source checkout")
    for path in files:
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def analysis_plugin_version(source_hash: str) -> str:
    """The version the plugin's descriptor carries (pom version, then the source hash): what
    ``GET _nodes/plugins`` shows, so a running node can be told to be current or stale."""
    return f"1-{source_hash}"


def build_analysis_plugin(settings: Settings, jdk: Jdk, progress: Progress | None = None,
                          versions: Versions | None = None) -> Path:
    """The installable plugin zip for the current sources, built with Maven into the cache once per hash."""
    versions = versions or pom_versions()
    source_hash = analysis_plugin_source_hash(versions)
    out_dir = settings.cache_dir / "es-analysis" / source_hash
    zip_path = out_dir / f"{ANALYSIS_PLUGIN_NAME}.zip"
    if zip_path.exists():
        return zip_path
    with _file_lock(settings.cache_dir / ".es-analysis.lock"):
        if zip_path.exists():
            return zip_path
        stage = _fresh_dir(settings.cache_dir / "es-analysis" / f".staging-{source_hash}")
        # Built for the version infra/pom.xml fetches, out of tree, its version stamped with the hash.
        args = ["package", f"-Dwc.build.dir={stage}", f"-Dwc.source.hash={source_hash}",
                f"-Delasticsearch.version={versions.elasticsearch}"]
        _run_maven(settings, compiler_jdk(jdk, progress), args, "building the Elasticsearch analysis plugin", progress,
                   pom=ANALYSIS_PLUGIN_DIR / "pom.xml", log_name="es-analysis-build.log")
        zips = list(stage.glob("*.zip"))
        if len(zips) != 1:
            raise InfraError(f"expected one plugin zip from Maven in {stage}, found {zips}")
        out_dir.mkdir(parents=True, exist_ok=True)
        zips[0].rename(zip_path)
        shutil.rmtree(stage, ignore_errors=True)
        _say(progress, f"analysis plugin built: {zip_path}")
    return zip_path


def installed_analysis_plugin(home: Path) -> str | None:
    """The source hash of the analysis plugin installed in this Elasticsearch home, if any."""
    try:
        installed = (home / ANALYSIS_PLUGIN_MARKER).read_text().strip()
    except OSError:
        return None
    return installed if (home / "plugins" / ANALYSIS_PLUGIN_NAME).is_dir() else None


def install_analysis_plugin(settings: Settings, jdk: Jdk, home: Path, progress: Progress | None = None) -> bool:
    """Install the analysis plugin into ``home`` with its own ``bin/elasticsearch-plugin``, replacing
    an older build; nothing when the current one is there. Takes effect at the node's next start.
    True if it installed."""
    versions = pom_versions()
    source_hash = analysis_plugin_source_hash(versions)
    if installed_analysis_plugin(home) == source_hash:
        return False
    zip_path = build_analysis_plugin(settings, jdk, progress, versions)
    cli = home / "bin" / "elasticsearch-plugin"
    env = {**os.environ, "ES_JAVA_HOME": str(jdk.home), "LANG": "C.UTF-8"}
    env.pop("ES_PATH_CONF", None)  # the home's own config/: the plugin keeps no config of its own
    env.pop("JAVA_HOME", None)  # the CLI warns when both are set
    with _file_lock(settings.cache_dir / ".es-analysis.lock"):
        if installed_analysis_plugin(home) == source_hash:
            return False
        (home / ANALYSIS_PLUGIN_MARKER).unlink(missing_ok=True)
        if (home / "plugins" / ANALYSIS_PLUGIN_NAME).exists():
            _say(progress, f"elasticsearch: removing the previous analysis plugin from {home}")
            out = subprocess.run([str(cli), "remove", "--purge", ANALYSIS_PLUGIN_NAME], capture_output=True,
                                 text=True, env=env, stdin=subprocess.DEVNULL)
            if out.returncode != 0:
                raise InfraError(f"`elasticsearch-plugin remove {ANALYSIS_PLUGIN_NAME}` failed:\n"
                                 f"{_tail_text(out.stdout + out.stderr)}")
        _say(progress, f"elasticsearch: installing the analysis plugin into {home}")
        out = subprocess.run([str(cli), "install", "--batch", zip_path.as_uri()], capture_output=True, text=True,
                             env=env, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise InfraError(f"`elasticsearch-plugin install {zip_path.as_uri()}` failed:\n"
                             f"{_tail_text(out.stdout + out.stderr)}")
        (home / ANALYSIS_PLUGIN_MARKER).write_text(source_hash + "\n")
    return True


def has_analysis_names(url: str, timeout: float = 5.0) -> bool:
    """True if the node at ``url`` knows the full distribution's analysis names (a full
    distribution, or the integ-test-zip with infra/es-analysis)."""
    body = json.dumps({"analyzer": "spanish", "text": "canciones"}).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/_analyze", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def loaded_analysis_plugin(url: str, timeout: float = 5.0) -> str | None:
    """The version of the analysis plugin the node at ``url`` loaded: "" when it has none,
    None when the node does not answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_nodes/plugins?filter_path=nodes.*.plugins", timeout=timeout) as resp:
            nodes = json.loads(resp.read()).get("nodes", {})
    except (OSError, urllib.error.URLError, ValueError):
        return None
    versions = {p.get("version", "") for node in nodes.values() for p in node.get("plugins", [])
                if p.get("name") == ANALYSIS_PLUGIN_NAME}
    return versions.pop() if len(versions) == 1 else ""


# --------------------------------------------------------------------------------------
# Servers: layout, pid files, stop, status
# --------------------------------------------------------------------------------------
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


def kafka_server(settings: Settings) -> Server:
    d = settings.data_dir / "kafka"
    return Server("kafka", settings.kafka_port, d, d / "kafka.pid", "kafka.Kafka")


def es_server(settings: Settings) -> Server:
    d = settings.data_dir / "elasticsearch"
    return Server("elasticsearch", settings.es_port, d, d / "run" / "elasticsearch.pid",
                  "org.elasticsearch.bootstrap.Elasticsearch")


def postgres_server(settings: Settings) -> Server:
    d = settings.data_dir / "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client to leave.
    return Server("postgres", settings.postgres_port, d, d / "data" / "postmaster.pid", "postgres",
                  stop_signal=signal.SIGINT)


def all_servers(settings: Settings) -> list[Server]:
    from tools.infra import seaweedfs

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


def stop_all(settings: Settings) -> list[str]:
    """Stop every server we started, in parallel. Returns the names of those stopped."""
    servers = all_servers(settings)
    with ThreadPoolExecutor(len(servers)) as pool:
        stopped = list(pool.map(stop_server, servers))
    return [s.name for s, was in zip(servers, stopped, strict=True) if was]


@dataclass(frozen=True)
class StartResult:
    name: str
    address: str
    pid: int | None  # None when someone else's server already answered on the port
    seconds: float
    already_running: bool


# --------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------
def new_kafka_cluster_id() -> str:
    """A random cluster id in Kafka's format (Uuid.randomUuid: url-safe base64, no padding, no leading '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class KafkaQuorum:
    """This broker's place in a KRaft quorum of several combined broker+controller nodes
    (the cluster topology; None is the single node): its node id, the static voter list
    ("id@host:port,..."), and the replication the cluster can hold."""

    node_id: int
    voters: str
    cluster_id: str
    replication: int
    min_insync: int


def render_kafka_properties(settings: Settings, log_dir: Path, quorum: KafkaQuorum | None = None) -> str:
    """server.properties for a KRaft node (broker + controller in one process), alone by default.

    The quorum is static (controller.quorum.voters), not --standalone's dynamic one:
    a dynamic quorum writes the controller's endpoint into the metadata log at format
    time, so changing WC_KAFKA_CONTROLLER_PORT later would strand the data; a static
    voter list is read from this file on every start.
    """
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    # One broker: replication above 1 could never be satisfied.
    replication, min_insync = (str(quorum.replication), str(quorum.min_insync)) if quorum else ("1", "1")
    props = {
        "process.roles": "broker,controller",
        "node.id": str(quorum.node_id) if quorum else "1",
        "controller.quorum.voters": quorum.voters if quorum else f"1@127.0.0.1:{ctrl}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(settings.topic_partitions),
        "default.replication.factor": replication,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_insync,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_insync,
        "auto.create.topics.enable": "false",
        # Event topics are the source of truth for projections: keep everything.
        "log.retention.ms": "-1",
        "group.initial.rebalance.delay.ms": "0",
    }
    header = "# Written by tools.infra on every start; edits are overwritten.\n"
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def kafka_java_command(jdk: Jdk, libs: Path, heap: str, logs_dir: Path, main: list[str]) -> list[str]:
    return [
        str(jdk.java), *jvm_heap_options(heap),
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J2_FILE}", f"-Dkafka.logs.dir={logs_dir}",
        "-cp", f"{libs}/*", *main,
    ]


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


def kafka_works(bootstrap: str, timeout: float = 10.0) -> bool:
    """True once a producer with acks=all gets a write acknowledged (the probe topic is created if need be)."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    ms = int(timeout * 1000)
    # Short reconnect back-off: the default doubles up to 30 s+ while a broker boots.
    fast = {"client_id": "wc-infra-probe", "reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 300}
    with _quiet("kafka"):
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms, **fast)
            try:
                if PROBE_TOPIC not in admin.list_topics():
                    with contextlib.suppress(TopicAlreadyExistsError):
                        admin.create_topics(
                            {PROBE_TOPIC: {"num_partitions": 1, "replication_factor": 1,
                                           "configs": {"retention.ms": "3600000"}}},
                            timeout_ms=ms,
                        )
            finally:
                admin.close()
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=ms,
                                     request_timeout_ms=ms, retry_backoff_ms=50, **fast)
            try:
                producer.send(PROBE_TOPIC, b"probe").get(timeout=timeout)
            finally:
                producer.close(timeout=2)
            return True
        except (KafkaError, OSError, ValueError) as exc:
            log.debug("kafka probe on %s: %r", bootstrap, exc)
            return False


def kafka_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if ``host:port`` answers a Kafka ApiVersions request (v0), within ``timeout``.

    A hard-bounded "is this Kafka?" check: a client library pointed at a port held by
    something else can hang for its whole request timeout.
    """
    client_id = b"wc-infra"
    body = struct.pack(">hhih", 18, 0, 0x5743, len(client_id)) + client_id  # api_key 18 = ApiVersions
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 8:
                chunk = sock.recv(8 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    size, correlation_id = struct.unpack(">ii", header)
    return correlation_id == 0x5743 and 0 < size < 1 << 20


def _bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        if host and port.isdigit():
            hosts.append((host.strip("[]"), int(port)))
    return hosts


def kafka_reachable(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if the cluster answers metadata requests (read-only: for external clusters)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not any(kafka_answers(host, port) for host, port in _bootstrap_hosts(bootstrap)):
        return False
    with _quiet("kafka"):
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True
        except (KafkaError, OSError, ValueError) as exc:
            log.debug("kafka %s: %r", bootstrap, exc)
            return False


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


def start_kafka(settings: Settings, jdk: Jdk, progress: Progress | None = None, quorum: KafkaQuorum | None = None) -> StartResult:
    server = kafka_server(settings)
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    t0 = time.monotonic()
    logs_dir, data = server.data_dir / "logs", server.data_dir / "data"
    server_log, out_log = logs_dir / "server.log", logs_dir / "kafka.out"
    logs = {server_log: _log_size(server_log), out_log: _log_size(out_log)}

    pid = server.pid()
    was_running = pid is not None
    if pid is None and _port_open(settings.kafka_port):
        # Someone else's broker: only read from it (no probe topic written there).
        if kafka_reachable(bootstrap):
            _say(progress, f"kafka: a broker already answers on {bootstrap} (not started by us); using it")
            return StartResult("kafka", bootstrap, None, time.monotonic() - t0, True)
        raise InfraError(f"port {settings.kafka_port} is in use by something that is not a working Kafka broker; "
                         f"set WC_KAFKA_PORT to a free port")
    if pid is None:
        libs = kafka_libs_dir(settings)
        if not (kafka_home(settings) / FETCHED_MARKER).exists():
            raise InfraError(f"Kafka is not fetched into {libs}: run `python -m tools.infra fetch`")
        for d in (logs_dir, data):
            d.mkdir(parents=True, exist_ok=True)
        props = server.data_dir / "server.properties"
        props.write_text(render_kafka_properties(settings, data, quorum))
        if not (data / "meta.properties").exists():
            cluster_id = quorum.cluster_id if quorum else new_kafka_cluster_id()
            _say(progress, f"kafka: formatting storage in {data} (cluster id {cluster_id})")
            cmd = kafka_java_command(jdk, libs, "256m", logs_dir,
                                     ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise InfraError(f"formatting Kafka storage failed:\n{_tail_text(out.stdout + out.stderr)}")
            logs[server_log] = _log_size(server_log)  # the tool logs there too
        _say(progress, f"kafka: starting on {bootstrap}")
        with open(out_log, "ab") as out_fh:
            proc = subprocess.Popen(
                kafka_java_command(jdk, libs, settings.kafka_heap, logs_dir, ["kafka.Kafka", str(props)]),
                cwd=server.data_dir, stdin=subprocess.DEVNULL, stdout=out_fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server.pid_file.write_text(f"{proc.pid}\n")
        pid = proc.pid
        alive = lambda: proc.poll() is None  # noqa: E731 (also reaps the child if it dies)
    else:
        _say(progress, f"kafka: already running (pid {pid}), waiting until it answers")
        alive = lambda: _pid_alive(pid, server.cmdline_marker)  # noqa: E731

    # The cheap check first: a client made before the listener is up only backs off.
    _wait("Kafka", lambda: kafka_answers("127.0.0.1", settings.kafka_port) and kafka_works(bootstrap, timeout=5.0),
          alive, KAFKA_START_TIMEOUT, logs, interval=0.3)
    return StartResult("kafka", bootstrap, pid, time.monotonic() - t0, was_running)


# --------------------------------------------------------------------------------------
# Elasticsearch
# --------------------------------------------------------------------------------------
# ES pre-touches its whole heap at start (-XX:+AlwaysPreTouch, a production setting): a
# dev node would sit at heap + ~250 MB RSS from the first second; without it, the
# memory is committed as it is used.
ES_DEV_JVM_OPTIONS = "# Written by tools.infra\n-XX:-AlwaysPreTouch\n"


@dataclass(frozen=True)
class EsNode:
    """This node's place in a cluster of several (the cluster topology; None is the single
    node): its name, and every master-eligible node's name and transport address."""

    name: str
    peers: dict[str, str]  # node name -> "127.0.0.1:<transport port>"


def render_es_yml(settings: Settings, data_path: Path, logs_path: Path, node: EsNode | None = None) -> str:
    def q(value: object) -> str:  # JSON strings are valid YAML scalars
        return json.dumps(str(value))

    lines = {
        "cluster.name": "watercooler",
        "node.name": node.name if node else "local",
        "path.data": q(data_path),
        "path.logs": q(logs_path),
        "network.host": "127.0.0.1",
        "http.port": str(settings.es_port),
        "transport.port": str(settings.es_transport_port),
        # single-node discovery on loopback = development mode: the bootstrap checks
        # (vm.max_map_count >= 262144, file descriptors, ...) only log warnings.
        "discovery.type": "single-node",
        "xpack.security.enabled": "false",
        "action.destructive_requires_name": "false",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if node:
        # Still loopback only, so still development mode; the nodes find each other by their
        # transport ports and elect a master among the listed names on first start.
        del lines["discovery.type"]
        lines["discovery.seed_hosts"] = json.dumps(sorted(node.peers.values()))
        if not (data_path / "_state").exists():  # only to form the cluster the first time
            lines["cluster.initial_master_nodes"] = json.dumps(sorted(node.peers))
    header = "# Written by tools.infra on every start; edits are overwritten.\n"
    return header + "".join(f"{k}: {v}\n" for k, v in lines.items())


def es_health(url: str, timeout: float = 5.0) -> str | None:
    """The cluster's health status ("green", "yellow", "red"), or None if it doesn't answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_cluster/health?timeout=1s", timeout=timeout) as resp:
            return json.loads(resp.read()).get("status")
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _es_ready(url: str) -> bool:
    return es_health(url) in ("yellow", "green")


def _es_home(settings: Settings, versions: Versions, progress: Progress | None) -> Path:
    """The Elasticsearch installation to run.

    As a normal user: the unpacked distribution in the cache, read-only.
    As root, ES must run as the service user, who can neither read the cache when it
    sits under /root (mode 700) nor should own it (the cache is shared by every
    checkout).  Rather than opening up the cache's parents too, the distribution
    (~120 MB, about a second) is copied once per version into
    <data_dir>/elasticsearch/home-<version>, owned by the service user: then the data
    dir is the only tree that user needs, and re-fetching or wiping the cache can't
    break a running node.
    """
    dist = es_distribution_dir(settings, versions)
    if not (dist / FETCHED_MARKER).exists():
        raise InfraError(f"Elasticsearch is not fetched into {dist}: run `python -m tools.infra fetch`")
    if not _is_root():
        return dist
    home = es_server(settings).data_dir / f"home-{versions.elasticsearch}"
    if not (home / FETCHED_MARKER).exists():
        _say(progress, f"elasticsearch: copying the distribution to {home} for the {SERVICE_USER} user")
        staging = home.with_name(home.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(dist, staging, symlinks=True)
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    return home


def start_elasticsearch(settings: Settings, jdk: Jdk, progress: Progress | None = None, node: EsNode | None = None) -> StartResult:
    server = es_server(settings)
    url = f"http://127.0.0.1:{settings.es_port}"
    t0 = time.monotonic()
    base = server.data_dir
    conf, data, logs, tmp, run = (base / n for n in ("config", "data", "logs", "tmp", "run"))
    server_log = logs / "watercooler.log"  # <cluster.name>.log
    launcher_log = logs / "launcher.out"
    log_offsets = {server_log: _log_size(server_log), launcher_log: 0}

    pid = server.pid()
    wanted_plugin = analysis_plugin_version(analysis_plugin_source_hash())
    if pid is not None and loaded_analysis_plugin(url) not in (None, wanted_plugin):
        # Ours, but started before the analysis plugin changed: it loads plugins only at start.
        _say(progress, "elasticsearch: restarting to load the changed analysis plugin")
        stop_server(server)
        pid = None
    was_running = pid is not None
    if pid is None and _port_open(settings.es_port):
        if _es_ready(url):
            _say(progress, f"elasticsearch: a node already answers on {url} (not started by us); using it")
            if loaded_analysis_plugin(url) != wanted_plugin:
                log.warning("the Elasticsearch node on %s lacks the current %s plugin (a full distribution "
                            "has its analysis names built in)", url, ANALYSIS_PLUGIN_NAME)
            return StartResult("elasticsearch", url, None, time.monotonic() - t0, True)
        raise InfraError(f"port {settings.es_port} is in use by something that is not a healthy Elasticsearch; "
                         f"set WC_ES_PORT to a free port")
    if pid is None:
        versions = pom_versions()
        home = _es_home(settings, versions, progress)
        install_analysis_plugin(settings, jdk, home, progress)
        for d in (data, logs, tmp, run):
            d.mkdir(parents=True, exist_ok=True)
        if not (conf / "jvm.options").exists():
            # ES_PATH_CONF must be writable (the keystore is created there) and per data dir.
            shutil.rmtree(conf, ignore_errors=True)
            shutil.copytree(home / "config", conf)
        (conf / "elasticsearch.yml").write_text(render_es_yml(settings, data, logs, node))
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "jvm.options.d" / "watercooler.options").write_text(ES_DEV_JVM_OPTIONS)
        if home != es_distribution_dir(settings, versions):
            (home / FETCHED_MARKER).write_text(versions.elasticsearch + "\n")
        _prepare_service_dir(base)  # as root: chown to the service user (incl. the home copy), reachable
        env = {
            "ES_JAVA_HOME": str(jdk.home),
            "ES_PATH_CONF": str(conf),
            "ES_JAVA_OPTS": " ".join(jvm_heap_options(settings.es_heap)),
            "ES_TMPDIR": str(tmp),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }
        _say(progress, f"elasticsearch: starting on {url}")
        server.pid_file.unlink(missing_ok=True)
        # -d: the launcher JVM waits until the node has started, then exits, leaving only
        # the server JVM (no second resident launcher JVM, as without -d).
        cmd = _as_service_user(["env", *(f"{k}={v}" for k, v in env.items()),
                                str(home / "bin" / "elasticsearch"), "-d", "-p", str(server.pid_file)])
        with open(launcher_log, "wb") as out_fh:  # the launcher echoes the server log until detached
            try:
                proc = subprocess.run(cmd, cwd=base, stdin=subprocess.DEVNULL, stdout=out_fh,
                                      stderr=subprocess.STDOUT, start_new_session=True, timeout=ES_START_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise _failure(f"Elasticsearch did not start within {ES_START_TIMEOUT:.0f} s.", log_offsets) from None
        if proc.returncode != 0:
            raise _failure(f"Elasticsearch failed to start (exit {proc.returncode}).", log_offsets)
        pid = server.pid()
    else:
        _say(progress, f"elasticsearch: already running (pid {pid}), waiting for health")

    remaining = max(5.0, ES_START_TIMEOUT - (time.monotonic() - t0))
    _wait("Elasticsearch", lambda: _es_ready(url), lambda: server.pid() is not None, remaining,
          {server_log: log_offsets[server_log]})
    return StartResult("elasticsearch", url, server.pid(), time.monotonic() - t0, was_running)


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# The API the test suite, `make run` and the CLI use
# --------------------------------------------------------------------------------------
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


def up_local(settings: Settings, postgres: bool = False, progress: Progress | None = None) -> list[StartResult]:
    """Fetch if needed, then start Kafka, Elasticsearch, SeaweedFS (and PostgreSQL) in parallel."""
    from tools.infra import seaweedfs

    jdk = find_jdk()  # first: a missing JDK must stop us before any download
    log.info("using JDK %s at %s", jdk.version, jdk.home)
    # SeaweedFS builds from source for minutes: under way while Maven fetches and the JVMs boot.
    seaweedfs.build_in_background(settings, progress)
    fetch(settings, progress, jdk)
    build_analysis_plugin(settings, jdk, progress)  # before the parallel starts: one Maven at a time
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
            for f in futures:
                try:
                    results.append(f.result())
                except InfraError as exc:
                    errors.append(str(exc))
        if errors:
            raise InfraError("\n\n".join(errors))
        return results


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
    from tools.infra import seaweedfs

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

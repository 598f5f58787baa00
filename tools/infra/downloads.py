"""What the JVM engines are run with and from: a JDK found on this machine, Maven (installed
with apt when we are root), and ``fetch``, which resolves the Kafka jars and the Elasticsearch
integ-test-zip listed in ``infra/pom.xml`` with Maven into the cache (skipped once complete)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.infra.common import (
    DEPENDENCY_PLUGIN,
    FETCHED_MARKER,
    MIN_JAVA,
    POM_FILE,
    InfraError,
    JdkNotFound,
    Progress,
    Versions,
    _apt_install,
    _file_lock,
    _is_root,
    _say,
    es_distribution_dir,
    is_fetched,
    kafka_home,
    pom_versions,
    tail_file,
)
from watercooler.config import Settings

log = logging.getLogger("tools.infra")

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


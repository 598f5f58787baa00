"""Elasticsearch as a local process (one node or one of a cluster): its configuration, its
start, its health, and the analysis plugin of ``infra/es-analysis``, built with Maven into the
cache (once per source hash) and installed into the Elasticsearch we run before it starts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.infra.common import (
    FETCHED_MARKER,
    INFRA_DIR,
    SERVICE_USER,
    InfraError,
    Progress,
    Server,
    StartResult,
    Versions,
    _as_service_user,
    _failure,
    _file_lock,
    _is_root,
    _log_size,
    _port_open,
    _prepare_service_dir,
    _say,
    _tail_text,
    _wait,
    es_distribution_dir,
    jvm_heap_options,
    pom_versions,
    stop_server,
)
from tools.infra.downloads import Jdk, _fresh_dir, _run_maven, compiler_jdk
from watercooler.config import Settings

log = logging.getLogger("tools.infra")

# Lucene's analysis components under the full distribution's names (asciifolding, stemmer,
# the language analyzers...), which the integ-test-zip lacks; see infra/es-analysis/README.md.
ANALYSIS_PLUGIN_DIR = INFRA_DIR / "es-analysis"
ANALYSIS_PLUGIN_NAME = "watercooler-analysis"
# In an Elasticsearch home: the source hash of the analysis plugin installed there.
ANALYSIS_PLUGIN_MARKER = ".watercooler-analysis-plugin"
# A node that rejoins a cluster on a busy machine can take longer (WC_ES_START_TIMEOUT).
ES_START_TIMEOUT = float(os.environ.get("WC_ES_START_TIMEOUT") or 120.0)
# --------------------------------------------------------------------------------------
# Elasticsearch
# --------------------------------------------------------------------------------------
# ES pre-touches its whole heap at start (-XX:+AlwaysPreTouch, a production setting): a
# dev node would sit at heap + ~250 MB RSS from the first second; without it, the
# memory is committed as it is used.
ES_DEV_JVM_OPTIONS = "# Written by tools.infra\n-XX:-AlwaysPreTouch\n"


def es_server(settings: Settings) -> Server:
    d = settings.data_dir / "elasticsearch"
    return Server("elasticsearch", settings.es_port, d, d / "run" / "elasticsearch.pid",
                  "org.elasticsearch.bootstrap.Elasticsearch")


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


"""Fast tests of tools.infra's pure parts: no server is started, nothing is downloaded."""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import stat
import struct
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.infra import common, downloads, elasticsearch, kafka, postgres, servers
from tools.infra.common import InfraError, JdkNotFound
from tools.infra.downloads import Jdk
from watercooler import config


def _settings(**overrides) -> config.Settings:
    return dataclasses.replace(config.Settings(), **overrides)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


# --- JDK -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)', 17),
        ('openjdk version "25.0.3" 2026-04-21 LTS', 25),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "11.0.21" 2023-10-17', 11),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss2m\nopenjdk version "17.0.9" 2023-10-17', 17),
        ("bash: java: command not found", None),
    ],
)
def test_parse_java_version(output: str, expected: int | None) -> None:
    assert downloads.parse_java_version(output) == expected


def test_find_jdk_prefers_java_home_then_oldest_usable(monkeypatch, tmp_path: Path) -> None:
    homes = {tmp_path / "jdk11": 11, tmp_path / "jdk25": 25, tmp_path / "jdk17": 17, tmp_path / "jdk21": 21}
    monkeypatch.setattr(downloads, "jdk_candidates", lambda: list(homes))
    monkeypatch.setattr(downloads, "java_version", lambda java: homes[java.parent.parent])

    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert downloads.find_jdk() == Jdk(tmp_path / "jdk17", 17)

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk21"))
    assert downloads.find_jdk() == Jdk(tmp_path / "jdk21", 21)

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk11"))  # too old: ignored
    assert downloads.find_jdk().version == 17


def test_no_jdk_is_exit_code_2_with_the_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(downloads, "jdk_candidates", lambda: [])
    with pytest.raises(JdkNotFound) as err:
        downloads.find_jdk()
    assert err.value.exit_code == 2
    assert "Install a JDK 17 or newer, e.g. `apt-get install -y openjdk-17-jdk-headless`" in str(err.value)


def test_cli_up_without_jdk_exits_2(monkeypatch) -> None:
    from typer.testing import CliRunner

    from tools.infra.__main__ import app

    monkeypatch.setenv("WC_INFRA", "local")
    monkeypatch.setattr(downloads, "jdk_candidates", lambda: [])
    result = CliRunner().invoke(app, ["up"])
    assert result.exit_code == 2
    assert "Install a JDK 17 or newer" in " ".join(result.output.split())


# --- pom ------------------------------------------------------------------------------------
def test_versions_come_from_the_pom() -> None:
    versions = common.pom_versions()
    assert versions.kafka.startswith("4.")
    assert versions.elasticsearch.startswith("8.19.")


def test_parse_pom_versions_without_namespace_and_missing_property() -> None:
    pom = "<project><properties><kafka.version>4.1.1</kafka.version><elasticsearch.version>8.19.21</elasticsearch.version></properties></project>"
    assert common.parse_pom_versions(pom) == common.Versions("4.1.1", "8.19.21")
    with pytest.raises(InfraError, match="elasticsearch.version"):
        common.parse_pom_versions("<project><properties><kafka.version>4.1.1</kafka.version></properties></project>")


def test_cache_layout(tmp_path: Path) -> None:
    s = _settings(cache_dir=tmp_path)
    v = common.pom_versions()
    assert common.kafka_libs_dir(s) == tmp_path / f"kafka-{v.kafka}" / "libs"
    assert common.es_distribution_dir(s) == tmp_path / f"elasticsearch-{v.elasticsearch}"
    assert not common.is_fetched(s)


# --- Kafka ----------------------------------------------------------------------------------
def test_render_kafka_properties(tmp_path: Path) -> None:
    s = _settings(kafka_port=39092, kafka_controller_port=39093, topic_partitions=7)
    props = _props(kafka.render_kafka_properties(s, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39092"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:39093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "7"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.retention.ms"] == "-1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "default.replication.factor"):
        assert props[key] == "1"


def test_kafka_cluster_id_has_kafkas_uuid_format() -> None:
    ids = {kafka.new_kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_java_command(tmp_path: Path) -> None:
    jdk = Jdk(Path("/jdk"), 17)
    cmd = kafka.kafka_java_command(jdk, tmp_path / "libs", "512m", tmp_path / "logs", ["kafka.Kafka", "server.properties"])
    assert cmd[0] == "/jdk/bin/java"
    assert "-Xms512m" in cmd and "-Xmx512m" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"
    assert f"-Dlog4j2.configurationFile={kafka.KAFKA_LOG4J2_FILE}" in cmd
    assert kafka.KAFKA_LOG4J2_FILE.exists()
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]


def _serve_once(reply: Callable[[bytes], bytes]) -> int:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.sendall(reply(conn.recv(1024)))

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def test_kafka_answers_checks_the_correlation_id() -> None:
    def kafka_like(request: bytes) -> bytes:
        api_key, version, correlation_id = struct.unpack(">hhi", request[4:12])
        assert (api_key, version) == (18, 0)
        body = struct.pack(">ih", correlation_id, 0) + b"\0" * 10
        return struct.pack(">i", len(body)) + body

    assert kafka.kafka_answers("127.0.0.1", _serve_once(kafka_like))
    assert not kafka.kafka_answers("127.0.0.1", _serve_once(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not kafka.kafka_answers("127.0.0.1", port, timeout=0.5)


def test_bootstrap_hosts() -> None:
    assert kafka._bootstrap_hosts("a:9092, b:19092,[::1]:9093") == [("a", 9092), ("b", 19092), ("::1", 9093)]


# --- Elasticsearch --------------------------------------------------------------------------
def test_render_es_yml(tmp_path: Path) -> None:
    s = _settings(es_port=39200, es_transport_port=39300)
    data = tmp_path / "it's data"
    text = elasticsearch.render_es_yml(s, data, tmp_path / "logs")
    conf = dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert json.loads(conf["path.data"]) == str(data)
    assert json.loads(conf["path.logs"]) == str(tmp_path / "logs")
    assert conf["http.port"] == "39200" and conf["transport.port"] == "39300"
    assert conf["network.host"] == "127.0.0.1"
    assert conf["discovery.type"] == "single-node"
    assert conf["cluster.name"] == "watercooler" and conf["node.name"] == "local"
    assert conf["xpack.security.enabled"] == "false"
    assert conf["action.destructive_requires_name"] == "false"
    assert conf["cluster.routing.allocation.disk.threshold_enabled"] == "false"


@pytest.mark.parametrize(("heap", "ok"), [("1g", True), ("512m", True), ("2048M", True), ("1 g", False), ("-1g", False), ("lots", False)])
def test_heap_options(heap: str, ok: bool) -> None:
    if ok:
        assert common.jvm_heap_options(heap) == [f"-Xms{heap}", f"-Xmx{heap}"]
    else:
        with pytest.raises(InfraError):
            common.jvm_heap_options(heap)


# --- PostgreSQL -----------------------------------------------------------------------------
def test_render_postgres_conf(tmp_path: Path) -> None:
    s = _settings(postgres_port=35432)
    text = postgres.render_postgres_conf(s, tmp_path / "o'run")
    conf = dict(line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert conf["port"] == "35432"
    assert conf["listen_addresses"] == "'127.0.0.1'"
    assert conf["unix_socket_directories"] == "'" + str(tmp_path / "o''run") + "'"


# --- process helpers ------------------------------------------------------------------------
def test_parse_vmrss() -> None:
    status = "Name:\tjava\nVmPeak:\t 9000 kB\nVmRSS:\t  363492 kB\nRssAnon:\t 1 kB\n"
    assert common.parse_vmrss_kb(status) == 363492
    assert common.parse_vmrss_kb("Name:\tkthreadd\n") is None


def test_first_error_skips_stack_frames(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    old = "[2026-01-01 10:00:00,000] ERROR an old failure (x)\n"
    log.write_text(
        old
        + "[2026-01-01 10:00:01,000] INFO starting (kafka.Kafka)\n"
        "[2026-01-01 10:00:02,000] ERROR Unable to start acceptor for CONTROLLER (kafka.network.DataPlaneAcceptor)\n"
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:39093\n"
        "\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:738)\n"
        "\t... 6 more\n"
        "Caused by: java.net.BindException: Address already in use\n"
        "\tat sun.nio.ch.Net.bind0(Native Method)\n"
        "[2026-01-01 10:00:03,000] INFO shutting down (kafka.Kafka)\n"
    )
    summary = common.first_error(log, offset=len(old))
    assert summary is not None
    lines = summary.splitlines()
    assert "Unable to start acceptor" in lines[0]
    assert lines[1].strip().startswith("org.apache.kafka.common.KafkaException")
    assert lines[2].strip() == "Caused by: java.net.BindException: Address already in use"
    assert len(lines) == 3
    assert common.first_error(log, offset=log.stat().st_size) is None


def test_unzip_keeps_modes_and_refuses_escapes(tmp_path: Path) -> None:
    archive = tmp_path / "dist.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        script = zipfile.ZipInfo("es-1/bin/elasticsearch")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(script, "#!/bin/sh\n")
        conf = zipfile.ZipInfo("es-1/config/jvm.options")
        conf.external_attr = (stat.S_IFREG | 0o660) << 16  # as in the ES zip
        zf.writestr(conf, "-Xms1g\n")
    out = tmp_path / "out"
    out.mkdir()
    downloads._unzip(archive, out)
    assert (out / "es-1/bin/elasticsearch").stat().st_mode & 0o777 == 0o755
    assert (out / "es-1/config/jvm.options").read_text() == "-Xms1g\n"
    assert (out / "es-1/config/jvm.options").stat().st_mode & 0o777 == 0o664  # the cache is shared

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside", "x")
    with pytest.raises(InfraError):
        downloads._unzip(evil, out)


# --- the API --------------------------------------------------------------------------------
def test_env_for_clients_local_uses_the_ports() -> None:
    s = _settings(infra_mode="local", kafka_port=39092, es_port=39200, postgres_port=35432,
                  kafka_bootstrap="elsewhere:9092", es_url="http://elsewhere:9200")
    env = servers.env_for_clients(s)
    assert env["WC_KAFKA_BOOTSTRAP"] == "127.0.0.1:39092"
    assert env["WC_ES_URL"] == "http://127.0.0.1:39200"
    assert env["WC_POSTGRES_PORT"] == "35432"
    assert env["WC_POSTGRES_HOST"] == "127.0.0.1"


def test_env_for_clients_external_passes_addresses_through() -> None:
    s = _settings(infra_mode="external", kafka_bootstrap="k1:9092,k2:9092", es_url="http://es:9200", postgres_host="pg")
    env = servers.env_for_clients(s)
    assert env["WC_KAFKA_BOOTSTRAP"] == "k1:9092,k2:9092"
    assert env["WC_ES_URL"] == "http://es:9200"
    assert env["WC_POSTGRES_HOST"] == "pg"


def test_up_result_is_truthy_only_when_something_started() -> None:
    assert not servers.UpResult({}, [], [])
    assert servers.UpResult({}, ["kafka"], [])


def test_unknown_infra_mode() -> None:
    with pytest.raises(InfraError, match="WC_INFRA"):
        servers.ensure_up(_settings(infra_mode="cloud"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_servers_layout_and_status_when_nothing_runs(tmp_path: Path) -> None:
    s = _settings(data_dir=tmp_path, kafka_port=_free_port(), es_port=_free_port(), postgres_port=_free_port(), s3_port=_free_port())
    names = {srv.name: srv for srv in servers.all_servers(s)}
    assert set(names) == {"kafka", "elasticsearch", "seaweedfs", "postgres"}
    assert names["seaweedfs"].pid_file.is_relative_to(tmp_path / "seaweedfs")
    assert names["kafka"].pid_file.is_relative_to(tmp_path / "kafka")
    assert names["postgres"].pid_file == tmp_path / "postgres" / "data" / "postmaster.pid"
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka.pid").write_text("1\n")  # a live pid that is not a broker
    assert all(srv.pid() is None for srv in names.values())
    statuses = servers.status(s)
    assert [st.state for st in statuses] == ["stopped"] * 4
    assert all(st.pid is None and st.rss_kb is None for st in statuses)


def test_containers_mode_without_docker_is_a_clear_error(monkeypatch) -> None:
    from tools.infra import containers

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(InfraError, match="no Docker engine is reachable"):
        containers.docker_available()


def test_missing_maven_or_postgres_as_a_user_names_the_apt_command(monkeypatch) -> None:
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    monkeypatch.setattr(downloads, "_is_root", lambda: False)
    monkeypatch.setattr(postgres, "_is_root", lambda: False)
    monkeypatch.setattr(postgres, "find_postgres_bin", lambda: None)
    with pytest.raises(InfraError, match=r"apt-get install -y maven"):
        downloads.ensure_maven()
    with pytest.raises(InfraError, match=r"apt-get install -y postgresql"):
        postgres.ensure_postgres_bin()


def _copy_plugin_source(tmp_path: Path) -> Path:
    import shutil

    source = tmp_path / "es-analysis"
    shutil.copytree(elasticsearch.ANALYSIS_PLUGIN_DIR, source, ignore=shutil.ignore_patterns("target"))
    return source


def test_the_analysis_plugin_is_rebuilt_when_its_sources_or_the_es_version_change(tmp_path: Path) -> None:
    source = _copy_plugin_source(tmp_path)
    versions = common.pom_versions()
    before = elasticsearch.analysis_plugin_source_hash(versions, source)
    (source / "README.md").write_text("docs only\n")
    assert elasticsearch.analysis_plugin_source_hash(versions, source) == before  # docs are not built
    assert elasticsearch.analysis_plugin_source_hash(dataclasses.replace(versions, elasticsearch="8.19.99"), source) != before
    java = next((source / "src").rglob("WatercoolerAnalysisPlugin.java"))
    java.write_text(java.read_text() + "\n// changed\n")
    assert elasticsearch.analysis_plugin_source_hash(versions, source) != before


def test_the_plugin_version_a_node_reports_is_the_one_the_build_stamps() -> None:
    """The restart of a stale node compares ``GET _nodes/plugins`` with analysis_plugin_version."""
    import xml.etree.ElementTree as ET

    pom = ET.parse(elasticsearch.ANALYSIS_PLUGIN_DIR / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    project_version = pom.find("m:version", ns).text
    built_for = pom.find("m:properties/m:elasticsearch.version", ns).text
    descriptor = _props((elasticsearch.ANALYSIS_PLUGIN_DIR / "src" / "main" / "plugin" / "plugin-descriptor.properties").read_text())
    stamped = descriptor["version"].replace("${project.version}", project_version).replace("${wc.source.hash}", "abc")
    assert stamped == elasticsearch.analysis_plugin_version("abc")
    assert descriptor["name"] == elasticsearch.ANALYSIS_PLUGIN_NAME
    assert built_for == common.pom_versions().elasticsearch  # a classic plugin loads only into its own version


def test_an_installed_plugin_counts_only_with_its_directory(tmp_path: Path) -> None:
    assert elasticsearch.installed_analysis_plugin(tmp_path) is None
    (tmp_path / elasticsearch.ANALYSIS_PLUGIN_MARKER).write_text("abc\n")
    assert elasticsearch.installed_analysis_plugin(tmp_path) is None  # removed by hand: install again
    (tmp_path / "plugins" / elasticsearch.ANALYSIS_PLUGIN_NAME).mkdir(parents=True)
    assert elasticsearch.installed_analysis_plugin(tmp_path) == "abc"


def _fake_java(home: Path, version: str, javac: bool) -> Path:
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f'#!/bin/sh\necho \'openjdk version "{version}"\' >&2\n')
    java.chmod(0o755)
    if javac:
        (home / "bin" / "javac").write_text("#!/bin/sh\n")
    return home


def test_the_plugin_is_compiled_by_a_jdk_with_javac_not_by_a_jre(monkeypatch, tmp_path: Path) -> None:
    jre = Jdk(home=_fake_java(tmp_path / "jre17", "17.0.15", javac=False), version=17)
    jdk21 = _fake_java(tmp_path / "jdk21", "21.0.2", javac=True)
    monkeypatch.setattr(downloads, "jdk_candidates", lambda: [jre.home, jdk21])
    assert downloads.compiler_jdk(jre).home == jdk21
    monkeypatch.setattr(downloads, "jdk_candidates", lambda: [jre.home])
    monkeypatch.setattr(downloads, "_is_root", lambda: False)
    with pytest.raises(JdkNotFound, match="apt-get install -y openjdk-17-jdk-headless"):
        downloads.compiler_jdk(jre)


# --- a start that fails half-way ------------------------------------------------------------
def test_a_failed_start_stops_the_servers_it_started_and_only_those(monkeypatch, tmp_path):
    """SeaweedFS failing must not leave Kafka holding its port; an Elasticsearch that was
    already running (someone else's, or from before) is left alone."""
    settings = _settings(data_dir=tmp_path)
    monkeypatch.setattr(servers, "find_jdk", lambda: Jdk(Path("/jdk"), 17))
    monkeypatch.setattr(servers, "fetch", lambda *a, **k: None)
    monkeypatch.setattr(servers, "build_analysis_plugin", lambda *a, **k: None)
    monkeypatch.setattr(servers.seaweedfs, "build_in_background", lambda *a, **k: None)
    monkeypatch.setattr(servers, "start_kafka", lambda *a, **k: common.StartResult("kafka", "127.0.0.1:1", 101, 0.1, False))
    monkeypatch.setattr(servers, "start_elasticsearch", lambda *a, **k: common.StartResult("elasticsearch", "http://127.0.0.1:2", 102, 0.1, True))

    def seaweedfs_fails(*a, **k):
        raise InfraError("SeaweedFS exited during start-up.")

    monkeypatch.setattr(servers.seaweedfs, "start", seaweedfs_fails)
    stopped: list[str] = []
    monkeypatch.setattr(servers, "stop_server", lambda server, *a, **k: stopped.append(server.name) or True)
    with pytest.raises(InfraError, match="SeaweedFS exited"):
        servers.up_local(settings)
    assert stopped == ["kafka"]


def test_a_start_interrupted_while_waiting_stops_what_it_started_once_the_starts_end(monkeypatch, tmp_path):
    """A test's time limit (pytest-timeout) or Ctrl-C lands while up_local waits for the servers:
    the ones still starting came up after and kept their ports for the next session."""
    import threading
    import time

    settings = _settings(data_dir=tmp_path)
    monkeypatch.setattr(servers, "find_jdk", lambda: Jdk(Path("/jdk"), 17))
    monkeypatch.setattr(servers, "fetch", lambda *a, **k: None)
    monkeypatch.setattr(servers, "build_analysis_plugin", lambda *a, **k: None)
    monkeypatch.setattr(servers.seaweedfs, "build_in_background", lambda *a, **k: None)
    interrupted = threading.Event()

    def kafka_interrupted(*a, **k):
        interrupted.set()
        raise KeyboardInterrupt

    def slow(name: str, already_running: bool):
        def start(*a, **k):
            interrupted.wait(5)
            time.sleep(0.2)  # still starting when the wait is interrupted
            return common.StartResult(name, "127.0.0.1:2", 102, 0.1, already_running)
        return start

    monkeypatch.setattr(servers, "start_kafka", kafka_interrupted)
    monkeypatch.setattr(servers, "start_elasticsearch", slow("elasticsearch", False))
    monkeypatch.setattr(servers.seaweedfs, "start", slow("seaweedfs", True))
    stopped: list[str] = []
    monkeypatch.setattr(servers, "stop_server", lambda server, *a, **k: stopped.append(server.name) or True)
    with pytest.raises(KeyboardInterrupt):
        servers.up_local(settings)
    assert stopped == ["elasticsearch"]  # SeaweedFS was someone else's: left alone

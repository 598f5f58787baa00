"""Kafka as a local process (KRaft, one broker or one of a quorum): its configuration, its start,
and the probes that say a broker answers and really takes acknowledged writes."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tools.infra.common import (
    FETCHED_MARKER,
    INFRA_DIR,
    InfraError,
    Progress,
    Server,
    StartResult,
    _log_size,
    _pid_alive,
    _port_open,
    _quiet,
    _say,
    _tail_text,
    _wait,
    jvm_heap_options,
    kafka_home,
    kafka_libs_dir,
)
from tools.infra.downloads import Jdk
from watercooler.config import Settings

log = logging.getLogger("tools.infra")

KAFKA_LOG4J2_FILE = INFRA_DIR / "log4j2.properties"
PROBE_TOPIC = "watercooler.infra.probe"
KAFKA_START_TIMEOUT = 90.0


def kafka_server(settings: Settings) -> Server:
    d = settings.data_dir / "kafka"
    return Server("kafka", settings.kafka_port, d, d / "kafka.pid", "kafka.Kafka")


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


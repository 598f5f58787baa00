"""Faults under a steady write load, with nothing lost.

One fault at a time: SIGKILL of the profiles service, its relay, the projections
worker, the stats worker and the search service; a Kafka restart; Elasticsearch
stopped for 60 seconds (WC_FAULT_ES_DOWN_SECONDS); and, on a three-broker Kafka
cluster of its own (replication 3, min in-sync 2), one broker killed while the
relay publishes.  After recovery every acknowledged write is in the store, in
Kafka exactly once and in Elasticsearch exactly once.  Figures per fault are
printed (run with -s to see them) and written to test-artifacts/faults.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from services.profiles.application import ProfilesApplication
from tests.conftest import ARTIFACTS, eventually, free_port
from tests.integration.helpers import read_events
from watercooler.auth import Principal
from watercooler.eventstore import CommandContext
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.relay import Relay

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FIGURES: dict[str, dict] = {}


class SteadyWrites:
    """CreateProfile at a steady rate; each write is retried with its request id until acknowledged."""

    def __init__(self, platform, prefix: str, rate: float = 40.0, workers: int = 4):
        self.platform, self.prefix, self.rate, self.workers = platform, prefix, rate, workers
        self.acknowledged: list[tuple[str, float]] = []
        self.retries = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_index = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> SteadyWrites:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def _run(self) -> None:
        stub = pg.ProfileServiceStub(grpc.insecure_channel(self.platform.settings.grpc_address("profiles")))
        metadata = self.platform.metadata()
        interval = self.workers / self.rate
        while not self.stop.is_set():
            with self.lock:
                index = self.next_index
                self.next_index += 1
            employee = f"{self.prefix}-{index:05d}"
            request = pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Fault Test {index}"), request_id=employee)
            while True:
                try:
                    stub.CreateProfile(request, metadata=metadata, timeout=5)
                    break
                except grpc.RpcError as error:
                    if error.code() not in RETRYABLE:
                        raise
                    with self.lock:
                        self.retries += 1
                    time.sleep(0.3)
            with self.lock:
                self.acknowledged.append((employee, time.monotonic()))
            self.stop.wait(interval)

    def acked_before(self, moment: float) -> list[str]:
        with self.lock:
            return [e for e, t in self.acknowledged if t <= moment]


def indexed(platform, prefix: str) -> set[str]:
    platform.es.indices.refresh(index=platform.alias("people"))
    hits = platform.es.search(index=platform.alias("people"), query={"prefix": {"employee_id": prefix}}, size=10000, source=["employee_id"])
    return {h["_source"]["employee_id"] for h in hits["hits"]["hits"]}


def assert_exactly_once(platform, prefix: str, acknowledged: list[str]) -> dict:
    events = eventually(
        lambda: (lambda evs: evs if len(evs) >= len(acknowledged) else None)(
            [e for e in read_events(platform.settings, "profiles") if e.type_name == "ProfileCreated" and e.payload.employee_id.startswith(prefix)]
        ),
        timeout=180,
        message="every acknowledged write in Kafka",
    )
    per_employee = Counter(e.payload.employee_id for e in events)
    lost_in_kafka = set(acknowledged) - set(per_employee)
    duplicates = sum(n - 1 for n in per_employee.values())
    assert not lost_in_kafka, f"{len(lost_in_kafka)} acknowledged writes missing from Kafka"
    assert duplicates == 0, f"{duplicates} duplicates in Kafka"
    eventually(lambda: set(acknowledged) <= indexed(platform, prefix), timeout=180, message="every acknowledged write indexed")
    docs = platform.es.count(index=platform.alias("people"), query={"prefix": {"employee_id": prefix}})["count"]
    assert docs == len(per_employee), "a profile indexed twice"
    return {"acknowledged": len(acknowledged), "lost": 0, "duplicates_in_kafka": duplicates, "documents": docs}


def recovery_seconds(platform, prefix: str, writes: SteadyWrites, fault_at: float) -> float:
    """From the fault until everything acknowledged before it is searchable."""
    before = set(writes.acked_before(fault_at))
    eventually(lambda: before <= indexed(platform, prefix), timeout=240, interval=0.5, message="caught up after the fault")
    return round(time.monotonic() - fault_at, 1)


def _record(name: str, figures: dict) -> None:
    FIGURES[name] = figures
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(FIGURES, indent=2))
    print(f"\nfault {name}: {figures}")


@pytest.mark.parametrize("process", ["profiles", "relay-profiles", "projections", "stats", "search"])
def test_sigkill_of_a_process_under_load_loses_nothing(platform, process):
    if process not in platform.platform.specs:
        pytest.skip(f"{process} is not part of this platform")
    prefix = f"fk{uuid.uuid4().hex[:5]}-{process}"
    with SteadyWrites(platform, prefix) as writes:
        time.sleep(2)
        fault_at = time.monotonic()
        platform.platform.kill(process, signal.SIGKILL)
        time.sleep(1)
        platform.platform.restart(process)
        recovery = recovery_seconds(platform, prefix, writes, fault_at)
        time.sleep(1)
    figures = assert_exactly_once(platform, prefix, [e for e, _ in writes.acknowledged])
    _record(f"sigkill {process}", {**figures, "client_retries": writes.retries, "recovery_seconds": recovery})


def _local_infra(platform):
    if platform.settings.infra_mode != "local":
        pytest.skip("restarting servers needs WC_INFRA=local")
    from watercooler.infra import local

    return local


def test_kafka_restart_under_load_loses_nothing(platform):
    local = _local_infra(platform)
    prefix = f"fk{uuid.uuid4().hex[:5]}-kafka"
    with SteadyWrites(platform, prefix) as writes:
        time.sleep(2)
        fault_at = time.monotonic()
        assert local.stop_server(local.kafka_server(platform.settings))
        time.sleep(5)
        local.start_kafka(platform.settings, local.find_jdk())
        recovery = recovery_seconds(platform, prefix, writes, fault_at)
        time.sleep(1)
    figures = assert_exactly_once(platform, prefix, [e for e, _ in writes.acknowledged])
    assert not platform.platform.exited(), f"a process died with Kafka: {platform.platform.exited()}"
    _record("kafka restart", {**figures, "client_retries": writes.retries, "recovery_seconds": recovery})


def test_elasticsearch_outage_under_load_loses_nothing(platform):
    local = _local_infra(platform)
    down_for = float(os.environ.get("WC_FAULT_ES_DOWN_SECONDS", "60"))
    prefix = f"fk{uuid.uuid4().hex[:5]}-es"
    with SteadyWrites(platform, prefix) as writes:
        time.sleep(2)
        fault_at = time.monotonic()
        assert local.stop_server(local.es_server(platform.settings))
        time.sleep(down_for)
        local.start_elasticsearch(platform.settings, local.find_jdk())
        recovery = recovery_seconds(platform, prefix, writes, fault_at)
        time.sleep(1)
    figures = assert_exactly_once(platform, prefix, [e for e, _ in writes.acknowledged])
    assert not platform.platform.exited(), f"a process died with Elasticsearch: {platform.platform.exited()}"
    _record("elasticsearch down", {**figures, "down_seconds": down_for, "recovery_seconds": round(recovery - down_for, 1)})


# --- three brokers ----------------------------------------------------------------------------
class ThreeBrokers:
    """A KRaft cluster of three combined broker+controller nodes on free ports."""

    def __init__(self, settings):
        from watercooler.infra import local

        self.local = local
        self.jdk = local.find_jdk()
        self.libs = local.kafka_libs_dir(settings)
        self.dir = Path(tempfile.mkdtemp(prefix="wc-3brokers-"))
        self.ports = [(free_port(), free_port()) for _ in range(3)]
        self.procs: list[subprocess.Popen | None] = [None, None, None]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p, _ in self.ports)
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(self.ports))
        cluster_id = local.new_kafka_cluster_id()
        for i, (port, ctrl) in enumerate(self.ports):
            node = self.dir / f"node{i + 1}"
            (node / "data").mkdir(parents=True)
            props = {
                "process.roles": "broker,controller", "node.id": str(i + 1), "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}", "inter.broker.listener.name": "PLAINTEXT",
                "controller.listener.names": "CONTROLLER", "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": str(node / "data"), "default.replication.factor": "3", "min.insync.replicas": "2",
                "offsets.topic.replication.factor": "3", "transaction.state.log.replication.factor": "3",
                "transaction.state.log.min.isr": "2", "auto.create.topics.enable": "false", "group.initial.rebalance.delay.ms": "0",
            }
            (node / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            fmt = local.kafka_java_command(self.jdk, self.libs, "256m", node, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(node / "server.properties")])
            subprocess.run(fmt, check=True, capture_output=True)

    def start(self, i: int) -> None:
        node = self.dir / f"node{i + 1}"
        cmd = self.local.kafka_java_command(self.jdk, self.libs, "384m", node, ["kafka.Kafka", str(node / "server.properties")])
        self.procs[i] = subprocess.Popen(cmd, stdout=open(node / "out.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    def __enter__(self) -> ThreeBrokers:
        for i in range(3):
            self.start(i)
        deadline = time.monotonic() + 120
        while not self.local.kafka_works(self.bootstrap, timeout=5):
            assert time.monotonic() < deadline, "three-broker cluster did not come up"
            time.sleep(1)
        return self

    def __exit__(self, *exc) -> None:
        for i in range(3):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_three_broker_cluster_loses_a_broker_under_load(platform, tmp_path):
    _local_infra(platform)
    with ThreeBrokers(platform.settings) as cluster:
        settings = dataclasses.replace(
            platform.settings, kafka_bootstrap=cluster.bootstrap, topic_replication=3, namespace=f"{platform.settings.namespace}3b", data_dir=tmp_path
        )
        app = ProfilesApplication(settings)
        relay = Relay(app, settings)
        relay_thread = threading.Thread(target=relay.run, daemon=True)
        relay_thread.start()
        ctx = CommandContext(Principal("fault-test", "service"))
        total, killed_at = 1500, None
        started = time.monotonic()
        for i in range(total):
            app.create_profile(ctx, f"b3-{i:05d}", {"display_name": f"Broker Test {i}"}, "fp")
            if i == total // 3:
                killed_at = time.monotonic()
                cluster.kill(1)  # one of three: min in-sync 2 still holds
            if i % 100 == 0:
                time.sleep(0.05)
        caught_up = eventually(lambda: relay.position >= (app.recorder.max_notification_id() or 0), timeout=180, message="relay caught up")
        publish_seconds = time.monotonic() - started
        relay.stop()
        relay_thread.join(30)
        events = [e for e in read_events(settings, "profiles") if e.type_name == "ProfileCreated"]
        per_employee = Counter(e.payload.employee_id for e in events)
        assert caught_up
        assert len(per_employee) == total, f"{total - len(per_employee)} events lost"
        assert max(per_employee.values()) == 1, "an event was published twice"
        _record(
            "one of three brokers killed",
            {"acknowledged": total, "lost": 0, "duplicates_in_kafka": 0, "seconds_to_publish_all": round(publish_seconds, 1), "killed_after_seconds": round(killed_at - started, 1)},
        )

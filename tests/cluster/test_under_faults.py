"""Faults in the cluster topology under a steady write load, with the fault suite's figures
(tests/integration/test_faults.py): acknowledged, lost, duplicated, recovery time.

SIGKILL of one replica of every service at once (clients fail over to the other replica,
nothing acknowledged is lost); one Elasticsearch node killed (searches keep answering from the
replicas of its shards, the node rejoins); a PostgreSQL restart (writes fail cleanly with
UNAVAILABLE while it is down, and resume). A broker killed is test_faults.py's three-broker case.
Figures are printed (-s) and written to test-artifacts/cluster-faults.json.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter

import grpc
import pytest

from tests.conftest import ARTIFACTS, eventually
from tests.integration.helpers import read_events
from tools.infra import cluster as engines
from tools.infra import common
from watercooler.client import service_config
from watercooler.config import SERVICES
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = [pytest.mark.cluster, pytest.mark.faults]  # after the functional tests here (tests/conftest.py)

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FIGURES: dict[str, dict] = {}


class SteadyLoad:
    """CreateProfile at a steady rate through the round-robin channel (each write retried with
    its request id until acknowledged), and a search now and then; every failed call's code is
    kept, so a test can say which codes a fault produced."""

    def __init__(self, cluster, prefix: str, rate: float = 20.0, workers: int = 4, timeout: float = 5.0, channel_retries: bool = True):
        self.cluster, self.prefix, self.rate, self.workers, self.timeout = cluster, prefix, rate, workers, timeout
        self.channel_retries = channel_retries
        self.acknowledged: list[tuple[str, float]] = []
        self.failures: Counter = Counter()
        self.search_failures: Counter = Counter()
        self.searches = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_index = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> SteadyLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def _run(self) -> None:
        try:
            self._write()
        except grpc.RpcError as error:
            with self.lock:
                self.errors.append(f"{error.code().name}: {error.details()}")

    def _write(self) -> None:
        if self.channel_retries:
            profiles = self.cluster.stub(pg.ProfileServiceStub, "profiles")
        else:  # every UNAVAILABLE reaches this loop, rather than being retried by the channel
            target = self.cluster.cluster.service_target("profiles")
            options = [("grpc.service_config", service_config(target)), ("grpc.enable_retries", 0)]
            profiles = pg.ProfileServiceStub(grpc.insecure_channel(target, options=options))
        search = self.cluster.stub(sg.SearchServiceStub, "search")
        service, person = self.cluster.metadata(), self.cluster.metadata(f"{self.prefix}-reader", "employee")
        interval = self.workers / self.rate
        while not self.stop.is_set():
            with self.lock:
                index = self.next_index
                self.next_index += 1
            employee = f"{self.prefix}-{index:05d}"
            request = pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Cluster Fault {index}", department=self.prefix), request_id=employee)
            while True:
                try:
                    profiles.CreateProfile(request, metadata=service, timeout=self.timeout)
                    break
                except grpc.RpcError as error:
                    if error.code() not in RETRYABLE:
                        raise
                    with self.lock:
                        self.failures[error.code().name] += 1
                    time.sleep(0.3)
            with self.lock:
                self.acknowledged.append((employee, time.monotonic()))
            if index % 4 == 0:
                try:
                    search.SearchPeople(sp.SearchPeopleRequest(query="Cluster Fault", page_size=5), metadata=person, timeout=5)
                    with self.lock:
                        self.searches += 1
                except grpc.RpcError as error:
                    with self.lock:
                        self.search_failures[error.code().name] += 1
            self.stop.wait(interval)

    def acked(self) -> list[str]:
        with self.lock:
            return [e for e, _ in self.acknowledged]

    def acked_before(self, moment: float) -> list[str]:
        with self.lock:
            return [e for e, t in self.acknowledged if t <= moment]

    def longest_gap_after(self, moment: float) -> float:
        """The longest time without an acknowledgement from the fault on."""
        with self.lock:
            times = [moment] + sorted(t for _, t in self.acknowledged if t > moment)
        return round(max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else 0.0, 1)


def es_request(cluster, path: str, method: str = "GET", body: dict | None = None) -> dict:
    """A request to whichever node answers (the cluster's HTTP addresses, in order)."""
    last: Exception | None = None
    for url in cluster.settings.es_url.split(","):
        try:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except OSError as error:
            last = error
    raise AssertionError(f"no Elasticsearch node answers: {last}")


def indexed(cluster, prefix: str) -> set[str]:
    alias = cluster.settings.index_alias("people")
    es_request(cluster, f"/{alias}/_refresh", "POST")
    hits = es_request(cluster, f"/{alias}/_search", "POST", {"query": {"prefix": {"employee_id": prefix}}, "size": 10000, "_source": ["employee_id"]})
    return {h["_source"]["employee_id"] for h in hits["hits"]["hits"]}


def recovered(cluster, load: SteadyLoad, fault_at: float) -> float:
    """From the fault until everything acknowledged before it is searchable."""
    before = set(load.acked_before(fault_at))
    eventually(lambda: before <= indexed(cluster, load.prefix), timeout=240, interval=0.5, message="caught up after the fault")
    return round(time.monotonic() - fault_at, 1)


def exactly_once(cluster, load: SteadyLoad) -> dict:
    acknowledged = load.acked()
    events = eventually(
        lambda: (lambda evs: evs if len({e.payload.employee_id for e in evs}) >= len(acknowledged) else None)(
            [e for e in read_events(cluster.settings, "profiles", opened=False) if e.type_name == "ProfileCreated" and e.payload.employee_id.startswith(load.prefix)]
        ),
        timeout=180,
        message="every acknowledged write in Kafka",
    )
    per_employee = Counter(e.payload.employee_id for e in events)
    lost = set(acknowledged) - set(per_employee)
    duplicates = sum(n - 1 for n in per_employee.values())
    eventually(lambda: set(acknowledged) <= indexed(cluster, load.prefix), timeout=180, message="every acknowledged write indexed")
    documents = len(indexed(cluster, load.prefix))
    assert not lost and duplicates == 0 and documents == len(per_employee), (len(lost), duplicates, documents)
    return {"acknowledged": len(acknowledged), "lost": len(lost), "duplicated": duplicates, "documents": documents}


def record(name: str, figures: dict) -> None:
    FIGURES[name] = figures
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cluster-faults.json").write_text(json.dumps(FIGURES, indent=2))
    print(f"\ncluster fault {name}: {figures}")


def test_sigkill_of_one_replica_of_every_service_under_load_loses_nothing(cluster):
    platform = cluster.cluster.platform
    prefix = f"ck{uuid.uuid4().hex[:5]}"
    killed = [f"{service}-a" for service in SERVICES]
    with SteadyLoad(cluster, prefix) as load:
        time.sleep(3)
        fault_at = time.monotonic()
        for name in killed:
            platform.kill(name, signal.SIGKILL)  # held down: the clients must do with the other replica
        time.sleep(8)
        acked_while_down = len(load.acked()) - len(load.acked_before(fault_at))
        for name in killed:
            platform.restart(name)
        recovery = recovered(cluster, load, fault_at)
        time.sleep(2)
    assert not load.errors, load.errors
    assert acked_while_down > 0, "no write was acknowledged by the remaining replicas"
    figures = exactly_once(cluster, load)
    record("sigkill one replica of each service", {
        **figures, "acknowledged_while_down": acked_while_down, "client_retries": dict(load.failures),
        "searches": load.searches, "search_failures": dict(load.search_failures),
        "longest_ack_gap_seconds": load.longest_gap_after(fault_at), "recovery_seconds": recovery,
    })


def test_an_elasticsearch_node_killed_under_load_searches_keep_answering(cluster):
    master = es_request(cluster, "/_nodes/_master")["nodes"]
    master_name = next(iter(master.values()))["name"]
    # Two master-eligible nodes elect with one vote: the cluster keeps a master only while
    # that node lives, so the other one is killed (the data on it is what is at stake).
    victim = next(f"es-{n}" for n in range(1, engines.ES_NODES + 1) if f"es-{n}" != master_name)
    node = int(victim.split("-")[1])
    server = engines.servers(cluster.cluster.settings, cluster.cluster.layout)[victim]
    prefix = f"ce{uuid.uuid4().hex[:5]}"
    with SteadyLoad(cluster, prefix) as load:
        time.sleep(3)
        fault_at = time.monotonic()
        pid = server.pid()
        assert pid, f"{victim} is not running"
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: server.pid() is None, timeout=30, message=f"{victim} gone")
        time.sleep(10)
        searches_while_down = load.searches
        started = engines.start_es_node(cluster.cluster.settings, cluster.cluster.layout, node)
        eventually(lambda: es_request(cluster, "/_cluster/health")["status"] == "green", timeout=180, interval=1, message="green again")
        rejoined = round(time.monotonic() - fault_at, 1)
        recovery = recovered(cluster, load, fault_at)
        time.sleep(2)
    assert not load.errors, load.errors
    assert not load.search_failures, f"searches failed while a node was down: {dict(load.search_failures)}"
    assert searches_while_down > 0
    figures = exactly_once(cluster, load)
    record("elasticsearch node killed", {
        **figures, "node": victim, "searches": load.searches, "search_failures": dict(load.search_failures), "client_retries": dict(load.failures),
        "node_restart_seconds": round(started.seconds, 1), "green_again_seconds": rejoined, "recovery_seconds": recovery,
    })


def test_a_postgresql_restart_under_load_fails_writes_cleanly_and_they_resume(cluster):
    settings, layout = cluster.cluster.settings, cluster.cluster.layout
    server = engines.servers(settings, layout)["postgres"]
    prefix = f"cp{uuid.uuid4().hex[:5]}"
    # Deadlines longer than the store's own give-up time (about 12 s: a pooled connection
    # waited for 1 s, ten times), and an outage longer than that, so the services answer.
    with SteadyLoad(cluster, prefix, timeout=30, channel_retries=False) as load:
        time.sleep(3)
        fault_at = time.monotonic()
        assert common.stop_server(server), "PostgreSQL was not running"
        time.sleep(20)
        down_for = round(time.monotonic() - fault_at, 1)
        engines.start_postgres(settings, layout)
        restarted_at = time.monotonic()
        eventually(lambda: len(load.acked()) > len(load.acked_before(restarted_at)), timeout=120, message="writes resumed")
        resumed = round(time.monotonic() - restarted_at, 1)
        recovery = recovered(cluster, load, fault_at)
        time.sleep(2)
    # Only retryable codes reached the clients (anything else stops a worker: load.errors).
    assert not load.errors, load.errors
    assert set(load.failures) == {"UNAVAILABLE"}, dict(load.failures)
    figures = exactly_once(cluster, load)
    record("postgresql restart", {
        **figures, "down_seconds": down_for, "failed_attempts": dict(load.failures), "writes_resumed_seconds_after_restart": resumed, "recovery_seconds": recovery,
    })

"""Faults under a steady write load, with nothing lost.

One fault at a time: SIGKILL of each service (profiles, posts, jams, search), the
profiles relay, the projections worker and the stats worker; a Kafka restart; Elasticsearch
stopped for 60 seconds (WC_FAULT_ES_DOWN_SECONDS); and, on a three-broker Kafka
cluster of its own (replication 3, min in-sync 2), one broker killed while the
relay publishes.  After recovery every acknowledged write is in the store, in
Kafka exactly once and in Elasticsearch exactly once; every consumer group of the
platform has consumed every record (no consumer stuck); and the counts that
SearchService.GetStats answers equal what was acknowledged: the people created (kept
by the projections worker) and the wiki page views recorded alongside them (kept by
the stats worker, whose counts must stay exact under SIGKILL and redelivery).
Figures per fault are printed (run with -s to see them) and written to
test-artifacts/faults.json. Run by `make test-faults` (and `.ci/run`), not `make test`: about
four minutes of the 20 one target may take. The faults of the cluster topology (one replica of every service
killed, an Elasticsearch node killed, a PostgreSQL restart) are in
tests/cluster/test_under_faults.py, with the same figures (test-artifacts/cluster-faults.json).
"""

from __future__ import annotations

import dataclasses
import http.client
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from benchmarks import harness
from services.profiles.application import ProfilesApplication
from tests.conftest import ARTIFACTS, eventually, free_port
from tests.integration.helpers import read_events, read_topic
from tools.infra import common, downloads, elasticsearch, kafka
from watercooler.auth import Principal
from watercooler.eventstore import CommandContext
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.relay import Relay
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FIGURES: dict[str, dict] = {}


class SteadyWrites:
    """CreateProfile at a steady rate (each person in a department named after the fault, so
    GetStats can count them), and after each one a view of the fault's wiki page; each write
    is retried with its request id until acknowledged."""

    def __init__(self, platform, prefix: str, rate: float = 40.0, workers: int = 4):
        self.platform, self.prefix, self.rate, self.workers = platform, prefix, rate, workers
        self.acknowledged: list[tuple[str, float]] = []
        self.views_acknowledged = 0
        self.retries = 0
        self.errors: list[str] = []  # a write refused for good stops its worker: the test must say so
        self.page, self.viewer = create_viewed_page(platform, prefix)
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
        try:
            self._write()
        except grpc.RpcError as error:
            with self.lock:
                self.errors.append(f"{error.code().name}: {error.details()}")

    def _write(self) -> None:
        stub = pg.ProfileServiceStub(grpc.insecure_channel(self.platform.settings.grpc_address("profiles")))
        wiki = wg.WikiServiceStub(grpc.insecure_channel(self.platform.settings.grpc_address("posts")))
        metadata = self.platform.metadata()
        viewer = self.platform.metadata(self.viewer, "employee")
        interval = self.workers / self.rate
        while not self.stop.is_set():
            with self.lock:
                index = self.next_index
                self.next_index += 1
            employee = f"{self.prefix}-{index:05d}"
            request = pp.CreateProfileRequest(
                profile=pp.Profile(employee_id=employee, display_name=f"Fault Test {index}", department=self.prefix), request_id=employee
            )
            self._until_acknowledged(stub.CreateProfile, request, metadata)
            with self.lock:
                self.acknowledged.append((employee, time.monotonic()))
            # A page view: a fact on posts.views.v1 that only the stats worker counts.
            view = wp.RecordPageViewRequest(view=wp.PageView(page=self.page, client="fault-test"), request_id=f"{employee}.view")
            self._until_acknowledged(wiki.RecordPageView, view, viewer)
            with self.lock:
                self.views_acknowledged += 1
            self.stop.wait(interval)

    def _until_acknowledged(self, call, request, metadata) -> None:
        while True:
            try:
                call(request, metadata=metadata, timeout=5)
                return
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                with self.lock:
                    self.retries += 1
                time.sleep(0.3)

    def acked_before(self, moment: float) -> list[str]:
        with self.lock:
            return [e for e, t in self.acknowledged if t <= moment]


def indexed(platform, prefix: str) -> set[str]:
    platform.es.indices.refresh(index=platform.alias("people"))
    hits = platform.es.search(index=platform.alias("people"), query={"prefix": {"employee_id": prefix}}, size=10000, source=["employee_id"])
    return {h["_source"]["employee_id"] for h in hits["hits"]["hits"]}


def assert_exactly_once(platform, prefix: str, acknowledged: list[str]) -> dict:
    # Wait for every acknowledged write itself, not for as many events: a write whose caller
    # gave up (deadline) may still have been stored and relayed, and would make up the count.
    events = eventually(
        lambda: (lambda evs: evs if set(acknowledged) <= {e.payload.employee_id for e in evs} else None)(
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


def create_viewed_page(platform, prefix: str) -> tuple[str, str]:
    """An INTERNAL wiki page of this fault's own (its views are counted apart from every
    other test's) and the employee who views it."""
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    author = platform.author(f"{prefix}-author")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=f"{prefix}-space", display_name="Fault load", visibility=wp.INTERNAL)), metadata=author)
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"Viewed under {prefix}", body="x")), metadata=author)
    return page.name, f"{prefix}-viewer"


# --- no consumer stuck ----------------------------------------------------------------------
# The platform's consumer groups: the projections worker (faust), the stats worker (faust)
# and its view counter (aiokafka).  The jam stats replay their topic without a group.
PLATFORM_GROUPS = ("search-projections", "search-stats", "search-stats.view-counts")


def unconsumed_records(settings) -> dict[str, dict[str, int]]:
    """Per platform consumer group, the records it has not committed yet on every partition of
    the topics it reads ({group: {"topic[partition]": records}}, non-zero entries only).

    Committed offsets against end offsets, except that the gap is counted in *records*, read
    with read_committed: the relay publishes in transactions, and a consumer commits the
    offset after the last record it handled, one short of the end when the transaction's
    commit marker follows."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="fault-test-lag")
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    try:
        existing = {_group_id(g) for g in admin.list_groups()}
        groups = [g for g in (settings.consumer_group(name) for name in PLATFORM_GROUPS) if g in existing]
        assert settings.consumer_group("search-projections") in groups, f"the projections group is missing: {sorted(existing)}"
        committed = admin.list_group_offsets({g: None for g in groups})
        described = admin.describe_groups(groups)
        lagging: dict[str, dict[str, int]] = {}
        for group in groups:
            offsets = {tp: meta.offset for tp, meta in (committed.get(group) or {}).items() if meta.offset is not None and meta.offset >= 0}
            topics = {tp.topic for tp in offsets} | _assigned_topics(described.get(group) or {})
            partitions = [TopicPartition(t, p) for t in sorted(topics) for p in sorted(consumer.partitions_for_topic(t) or ())]
            if not partitions:
                continue
            ends = consumer.end_offsets(partitions, timeout_ms=10_000)
            starts = consumer.beginning_offsets(partitions, timeout_ms=10_000)
            behind = {tp: offsets.get(tp, starts[tp]) for tp in partitions if offsets.get(tp, starts[tp]) < ends[tp]}
            for tp, records in _records_between(consumer, behind, ends).items():
                if records:
                    lagging.setdefault(group, {})[f"{tp.topic}[{tp.partition}]"] = records
        return lagging
    finally:
        consumer.close()
        admin.close()


def _group_id(group) -> str:
    return group["group_id"] if isinstance(group, dict) else group[0]


def _assigned_topics(description: dict) -> set[str]:
    """Topics in the members' assignments (describe_groups decodes the ConsumerAssignment)."""
    topics: set[str] = set()
    for member in description.get("members") or []:
        assignment = member.get("member_assignment")
        if not isinstance(assignment, dict):  # not decodable: the committed offsets still name the topics
            continue
        for entry in assignment.get("assigned_partitions") or assignment.get("assignment") or []:
            topic = entry.get("topic") if isinstance(entry, dict) else entry[0]
            if topic:
                topics.add(topic)
    return topics


def _records_between(consumer, starts: dict, ends: dict) -> dict:
    """How many committed records lie in [start, end) of each partition."""
    if not starts:
        return {}
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    counts = dict.fromkeys(starts, 0)
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < ends[tp] for tp in starts) and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=500).items():
            counts[tp] += sum(1 for r in batch if r.offset < ends[tp])
    consumer.unsubscribe()
    return counts


def assert_no_consumer_stuck(platform, timeout: float = 120) -> float:
    """Within ``timeout`` every platform consumer group has consumed every record; returns how long that took."""
    started = time.monotonic()

    def caught_up() -> bool:
        lagging = unconsumed_records(platform.settings)
        assert not lagging, f"records not consumed: {lagging}"
        return True

    eventually(caught_up, timeout=timeout, interval=1.0, message="every consumer group at the end of every partition")
    return round(time.monotonic() - started, 1)


# --- counts in stats --------------------------------------------------------------------------
def stats_total(platform, **request) -> int:
    search = platform.stub(sg.SearchServiceStub, "search")
    return int(search.GetStats(sp.GetStatsRequest(**request), metadata=platform.metadata(), timeout=30).total)


def assert_stats_exact(platform, prefix: str, writes: SteadyWrites) -> dict:
    """With nothing left unconsumed, GetStats counts exactly what was acknowledged: not one
    person or view fewer (lost) nor one more (counted twice after a redelivery)."""
    for projection in ("people", "view-counts"):
        platform.es.indices.refresh(index=platform.alias(projection))
    people = stats_total(platform, metric="people", department=prefix)
    views = stats_total(platform, metric="wiki_views", target=writes.page)
    acknowledged = len(writes.acknowledged)
    assert (people, views) == (acknowledged, writes.views_acknowledged), (
        f"GetStats counts {people} people and {views} views; {acknowledged} and {writes.views_acknowledged} were acknowledged"
    )
    return {"views_acknowledged": writes.views_acknowledged, "stats_people": people, "stats_wiki_views": views}


def assert_recovered(platform, prefix: str, writes: SteadyWrites) -> dict:
    """Everything the issue asks after a fault: every acknowledged write exactly once in Kafka
    and Elasticsearch, no consumer stuck, and the counts in stats equal to the writes."""
    assert not writes.errors, f"writes refused under the fault: {writes.errors}"
    figures = assert_exactly_once(platform, prefix, [e for e, _ in writes.acknowledged])
    figures["seconds_to_zero_lag"] = assert_no_consumer_stuck(platform)
    figures.update(assert_stats_exact(platform, prefix, writes))
    return figures


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


@pytest.mark.parametrize("process", ["profiles", "posts", "jams", "search", "relay-profiles", "projections", "stats"])
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
    figures = assert_recovered(platform, prefix, writes)
    _record(f"sigkill {process}", {**figures, "client_retries": writes.retries, "recovery_seconds": recovery})


def _local_infra(platform) -> None:
    if platform.settings.infra_mode != "local":
        pytest.skip("restarting servers needs WC_INFRA=local")


def crashes(platform) -> int:
    """Crashes of the platform's processes so far (the supervisor restarts them, so a process
    that died of a fault may well be running again)."""
    return sum(len(times) for times in platform.platform.crashes.values())


def test_kafka_restart_under_load_loses_nothing(platform):
    _local_infra(platform)
    crashed_before = crashes(platform)
    prefix = f"fk{uuid.uuid4().hex[:5]}-kafka"
    posts_log = platform.platform.log_dir / "posts.log"
    with SteadyWrites(platform, prefix) as writes:
        time.sleep(2)
        fault_at = time.monotonic()
        logged_before = posts_log.stat().st_size
        pids = {name: proc.pid for name, proc in platform.platform.procs.items()}
        cpu_before = harness.cpu_of(pids)
        assert common.stop_server(kafka.kafka_server(platform.settings))
        time.sleep(5)
        cpu_away = {name: round(seconds - cpu_before.get(name, 0.0), 2) for name, seconds in harness.cpu_of(pids).items()}
        kafka.start_kafka(platform.settings, downloads.find_jdk())
        outage = time.monotonic() - fault_at
        recovery = recovery_seconds(platform, prefix, writes, fault_at)
        time.sleep(1)
    figures = assert_recovered(platform, prefix, writes)
    assert not platform.platform.exited() and crashes(platform) == crashed_before, f"a process died with Kafka: {platform.platform.crashes}"
    # The views' producer in posts, with a view pending, waits between its asks for metadata
    # (100 ms) rather than asking flat out: about 2,500 a second and a whole core before.
    with open(posts_log, "rb") as log:
        log.seek(logged_before)
        failed_updates = log.read().count(b"Unable to update metadata")
    assert failed_updates <= 20 * outage, f"posts asked for metadata {failed_updates} times in a {outage:.1f} s outage"
    _record("kafka restart", {**figures, "client_retries": writes.retries, "recovery_seconds": recovery,
                              "posts_failed_metadata_updates_per_second": round(failed_updates / outage, 1), "cpu_seconds_in_5_s_without_kafka": cpu_away})


def test_elasticsearch_outage_under_load_loses_nothing(platform):
    _local_infra(platform)
    crashed_before = crashes(platform)
    down_for = float(os.environ.get("WC_FAULT_ES_DOWN_SECONDS", "60"))
    prefix = f"fk{uuid.uuid4().hex[:5]}-es"
    with SteadyWrites(platform, prefix) as writes:
        time.sleep(2)
        fault_at = time.monotonic()
        assert common.stop_server(elasticsearch.es_server(platform.settings))
        time.sleep(down_for)
        elasticsearch.start_elasticsearch(platform.settings, downloads.find_jdk())
        recovery = recovery_seconds(platform, prefix, writes, fault_at)
        time.sleep(1)
    figures = assert_recovered(platform, prefix, writes)
    assert not platform.platform.exited() and crashes(platform) == crashed_before, f"a process died with Elasticsearch: {platform.platform.crashes}"
    _record("elasticsearch down", {**figures, "down_seconds": down_for, "recovery_seconds": round(recovery - down_for, 1)})


# --- backpressure: Elasticsearch refusing writes ---------------------------------------------------
class RejectingElasticsearch:
    """An HTTP proxy in front of the real Elasticsearch that refuses the first ``whole`` _bulk
    calls with 429 es_rejected_execution_exception (what ES answers when indexing pressure is
    too high), then answers the next ``per_item`` _bulk calls with every item refused with 429
    (a full write queue), and forwards everything else, and every later call, to the server."""

    REJECTION = {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation [fault test]"}

    def __init__(self, upstream: str, whole: int, per_item: int):
        from urllib.parse import urlsplit

        self.upstream = urlsplit(upstream)
        self.whole, self.per_item = whole, per_item
        self.rejected_whole = self.rejected_items = self.forwarded_bulks = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _decide(self) -> str:
        with self.lock:
            if self.rejected_whole < self.whole:
                self.rejected_whole += 1
                return "whole"
            if self.rejected_items < self.per_item:
                self.rejected_items += 1
                return "items"
            self.forwarded_bulks += 1
            return "forward"

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.split("?")[0].endswith("/_bulk"):
                    verdict = proxy._decide()
                    es_headers = [("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8"), ("X-Elastic-Product", "Elasticsearch")]
                    if verdict == "whole":
                        refused = {"error": {"root_cause": [proxy.REJECTION], **proxy.REJECTION}, "status": 429}
                        return self._answer(429, json.dumps(refused).encode(), es_headers)
                    if verdict == "items":
                        return self._answer(200, json.dumps(proxy._refused_items(body)).encode(), es_headers)
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    self._answer(response.status, response.read(), response.getheaders())
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        return Handler

    @staticmethod
    def _refused_items(body: bytes) -> dict:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items, i = [], 0
        while i < len(lines):
            op, meta = next(iter(lines[i].items()))
            items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429, "error": RejectingElasticsearch.REJECTION}})
            i += 1 if op == "delete" else 2
        return {"took": 1, "errors": True, "items": items}

    def __enter__(self) -> RejectingElasticsearch:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_processor_holds_its_batch_while_elasticsearch_answers_429_and_loses_nothing(platform, tmp_path):
    """A projections worker of its own (namespace, store, topics) writes through the proxy:
    each refused bulk is retried with back-off (the consumer holds its offsets meanwhile),
    nothing is dead-lettered, and every event ends up indexed once."""
    from tools.runner import Platform

    settings = dataclasses.replace(platform.settings, namespace=f"{platform.settings.namespace}bp", data_dir=tmp_path)
    # The elasticsearch client retries a 429 itself up to 5 times: 8 refusals outlast one call,
    # and the two item-level refusals reach the processor's own retry.
    with RejectingElasticsearch(platform.settings.es_url, whole=8, per_item=2) as proxy:
        # The worker opens the sealed personal fields with keys it asks the profiles service for:
        # a profiles process of the namespace's own, over the store the writer below keeps.
        profiles_port = free_port()
        worker = Platform(settings, env={"WC_NAMESPACE": settings.namespace, "WC_ES_URL": proxy.url, "WC_DATA_DIR": str(tmp_path),
                                         "WC_PROJECTIONS_METRICS_PORT": "0", "WC_PROFILES_PORT": str(profiles_port),
                                         "WC_PROFILES_METRICS_PORT": "0"}, log_dir=ARTIFACTS / "logs" / settings.namespace)
        worker.specs = {"profiles": worker.specs["profiles"], "projections": worker.specs["projections"]}
        app = ProfilesApplication(settings)
        relay = Relay(app, settings)
        relay_thread = threading.Thread(target=relay.run, daemon=True)
        try:
            worker.start_process("profiles")
            worker.start_process("projections")
            relay_thread.start()
            ctx = CommandContext(Principal("fault-test", "service"))
            total = 60
            for i in range(total):
                app.create_profile(ctx, f"bp-{i:03d}", {"display_name": f"Backpressure {i}"}, "fp")
            alias = settings.index_alias("people")

            def all_indexed() -> bool:
                if not platform.es.indices.exists_alias(name=alias):  # the worker is still starting
                    return False
                platform.es.indices.refresh(index=alias)
                return platform.es.count(index=alias, query={"prefix": {"employee_id": "bp-"}})["count"] == total

            started = time.monotonic()
            eventually(all_indexed, timeout=120, interval=0.5, message="every profile indexed after the refusals")
            caught_up = round(time.monotonic() - started, 1)
            assert (proxy.rejected_whole, proxy.rejected_items) == (8, 2) and proxy.forwarded_bulks > 0
            assert not worker.exited() and not worker.crashes, "the worker died of the refusals"  # (the supervisor would restart it)
            dead_letter_topic = settings.dead_letter_topic
            assert read_topic(settings, dead_letter_topic) == [], "a refused batch was dead-lettered"
            assert_no_consumer_stuck(_Handle(settings), timeout=60)
            log = (ARTIFACTS / "logs" / settings.namespace / "projections.log").read_text()
            assert "projection batch failed; retrying" in log and "es_rejected_execution_exception" in log, "the processor itself never held a batch"
            _record("elasticsearch answers 429", {"events": total, "indexed": total, "dead_lettered": 0, "bulk_calls_refused": 8 + 2,
                                                  "seconds_to_index_all": caught_up})
        finally:
            relay.stop()
            relay_thread.join(30)
            worker.stop()
            _drop_namespace(platform, settings.namespace)


class _Handle:
    """The part of the platform fixture ``assert_no_consumer_stuck`` needs."""

    def __init__(self, settings):
        self.settings = settings


def _drop_namespace(platform, namespace: str) -> None:
    from kafka import KafkaAdminClient

    mine = list(platform.es.indices.get(index=f"{namespace}-*", allow_no_indices=True))
    if mine:
        platform.es.indices.delete(index=",".join(mine), ignore_unavailable=True)
    admin = KafkaAdminClient(bootstrap_servers=platform.settings.kafka_bootstrap)
    try:
        topics = [t for t in admin.list_topics() if t.startswith(f"{namespace}.")]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()


# --- three brokers ----------------------------------------------------------------------------
class ThreeBrokers:
    """A KRaft cluster of three combined broker+controller nodes on free ports."""

    def __init__(self, settings):
        self.jdk = downloads.find_jdk()
        self.libs = common.kafka_libs_dir(settings)
        self.dir = Path(tempfile.mkdtemp(prefix="wc-3brokers-"))
        self.ports = [(free_port(), free_port()) for _ in range(3)]
        self.procs: list[subprocess.Popen | None] = [None, None, None]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p, _ in self.ports)
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(self.ports))
        cluster_id = kafka.new_kafka_cluster_id()
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
        # The three formats at once: each is a JVM start of a few seconds.
        nodes = [self.dir / f"node{i + 1}" for i in range(3)]
        formats = [subprocess.Popen(kafka.kafka_java_command(self.jdk, self.libs, "256m", node, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(node / "server.properties")]),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for node in nodes]
        for proc in formats:
            output = proc.communicate()[0]
            assert proc.returncode == 0, output.decode(errors="replace")[-2000:]

    def start(self, i: int) -> None:
        node = self.dir / f"node{i + 1}"
        cmd = kafka.kafka_java_command(self.jdk, self.libs, "384m", node, ["kafka.Kafka", str(node / "server.properties")])
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
        while not kafka.kafka_works(self.bootstrap, timeout=5):
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
        events = [e for e in read_events(settings, "profiles", opened=False) if e.type_name == "ProfileCreated"]  # ids only: no keys needed
        per_employee = Counter(e.payload.employee_id for e in events)
        assert caught_up
        assert len(per_employee) == total, f"{total - len(per_employee)} events lost"
        assert max(per_employee.values()) == 1, "an event was published twice"
        _record(
            "one of three brokers killed",
            {"acknowledged": total, "lost": 0, "duplicates_in_kafka": 0, "seconds_to_publish_all": round(publish_seconds, 1), "killed_after_seconds": round(killed_at - started, 1)},
        )

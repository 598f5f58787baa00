"""Delivery guarantees of the pipeline: a relay killed mid-stream loses and
duplicates nothing, a poison record is dead-lettered without stopping the
stream, and a projection rebuild never leaves searches empty."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaProducer

from services.search.readmodels.projections.people import PeopleProjection
from tests.conftest import ARTIFACTS, eventually, free_port
from tests.integration.helpers import read_events, read_topic
from watercooler.events.v1.envelope_pb2 import Actor, DeadLetter, EventEnvelope
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.projection import es_client
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def people_count(platform, prefix: str) -> int:
    platform.es.indices.refresh(index=platform.alias("people"))
    return platform.es.count(index=platform.alias("people"), query={"prefix": {"employee_id": prefix}})["count"]


def test_relay_killed_mid_stream_loses_and_duplicates_nothing(platform):
    """1,000 commands; the relay gets SIGKILL a third of the way through and comes back.
    Every acknowledged event is in Kafka exactly once, and indexed exactly once."""
    stub = platform.stub(pg.ProfileServiceStub, "profiles")
    metadata = platform.metadata()
    run = uuid.uuid4().hex[:6]
    total = 1000
    acknowledged: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def create(i: int) -> None:
        employee = f"k{run}-{i:04d}"
        request = pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Relay Test {i}"), request_id=f"{run}-{i}")
        for attempt in range(5):
            try:
                stub.CreateProfile(request, metadata=metadata, timeout=30)
                break
            except grpc.RpcError as error:  # retry with the same request id: idempotent
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                    raise
                time.sleep(0.2)
        with lock:
            acknowledged.append(employee)
            if len(acknowledged) == total // 3 and not killed.is_set():
                killed.set()
                platform.platform.kill("relay-profiles", signal.SIGKILL)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(total)))
    assert killed.is_set()
    platform.platform.restart("relay-profiles")
    assert len(acknowledged) == total

    def all_published():
        events = [e for e in read_events(platform.settings, "profiles") if e.type_name == "ProfileCreated" and e.payload.employee_id.startswith(f"k{run}-")]
        return events if len(events) >= total else None

    events = eventually(all_published, timeout=120, message="all 1,000 events in Kafka")
    per_employee = Counter(e.payload.employee_id for e in events)
    assert set(per_employee) == set(acknowledged)
    assert max(per_employee.values()) == 1, "an event was published twice"
    assert len({e.envelope.event_id for e in events}) == total
    eventually(lambda: people_count(platform, f"k{run}-") == total, timeout=120, message="all 1,000 profiles indexed")
    print(f"\n1,000 commands with a relay SIGKILL: all published and indexed in {time.monotonic() - started:.1f}s")


def test_poison_record_is_dead_lettered_and_the_stream_goes_on(platform):
    topic = platform.topic("profiles")
    producer = KafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap, acks="all")
    poison_key = f"poison-{uuid.uuid4().hex[:6]}".encode()
    metadata = producer.send(topic, key=poison_key, value=b"\x08\x96\x01 this is not an envelope").get(30)
    producer.close()

    # An event published after the poison, in the same partition, still gets indexed.
    stub = platform.stub(pg.ProfileServiceStub, "profiles")
    employee = f"after-poison-{uuid.uuid4().hex[:6]}"
    stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name="Still Indexed")), metadata=platform.metadata())
    eventually(lambda: people_count(platform, employee) == 1, message="profile after the poison record indexed")

    def dead_lettered():
        letters = [DeadLetter.FromString(r.value) for r in read_topic(platform.settings, platform.settings.dead_letter_topic)]
        return [d for d in letters if d.original_key == poison_key]

    # Every projection reading the topic dead-letters it on its own; the people one among them.
    letters = eventually(lambda: [d for d in dead_lettered() if d.processor == "people"], message="poison record dead-lettered by the people projection")
    assert len(letters) == 1
    letter = letters[0]
    assert letter.source_topic == topic
    assert letter.source_partition == metadata.partition and letter.source_offset == metadata.offset
    assert "not an EventEnvelope" in letter.reason
    assert letter.original_value.startswith(b"\x08\x96\x01")


def test_a_record_whose_batch_keeps_failing_is_parked_and_its_partition_goes_on(platform, tmp_path):
    """A real event Elasticsearch refuses on every attempt (a department longer than a keyword
    may be: an "immense term") fails its whole batch, which used to be retried forever. A
    projections worker of its own (namespace, one partition so that everything after the poison
    is behind it) tries WC_PROCESSOR_MAX_ATTEMPTS times, parks the record in the dead-letter
    topic, counts and logs it, and projects the profiles after it. After a fix (here: a
    projection that shortens the field) ``replay_dead_letters`` applies it; the letter stays."""
    from tests.integration.test_faults import _drop_namespace
    from tools.runner import Platform
    from watercooler.kafka import ensure_topics
    from watercooler.processor import replay_dead_letters
    from watercooler.profiles.v1 import events_pb2 as pe

    settings = dataclasses.replace(platform.settings, namespace=f"{platform.settings.namespace}dl", data_dir=tmp_path, topic_partitions=1)
    metrics_port = free_port()
    worker = Platform(settings, env={"WC_NAMESPACE": settings.namespace, "WC_DATA_DIR": str(tmp_path), "WC_TOPIC_PARTITIONS": "1",
                                     "WC_PROCESSOR_MAX_ATTEMPTS": "2", "WC_PROJECTIONS_METRICS_PORT": str(metrics_port)},
                      log_dir=ARTIFACTS / "logs" / settings.namespace)
    worker.specs = {"projections": worker.specs["projections"]}
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

    def publish(employee_id: str, department: str = "") -> tuple[str, bytes, object]:
        """A ProfileCreated as a relay publishes it (its fields unsealed: no key to fetch)."""
        aggregate_id = str(uuid.uuid4())
        payload = any_pb2.Any()
        payload.Pack(pe.ProfileCreated(employee_id=employee_id, display_name=employee_id.title(), department=department))
        value = EventEnvelope(event_id=str(uuid.uuid4()), event_type="watercooler.profiles.v1.ProfileCreated", aggregate_type="Profile", aggregate_id=aggregate_id,
                              aggregate_version=1, occurred_at=Timestamp(seconds=int(time.time())), actor=Actor(subject="test", kind="service"),
                              payload=payload).SerializeToString()
        return aggregate_id, value, producer.send(settings.topic("profiles"), key=aggregate_id.encode(), value=value).get(30)

    _, poison, sent = publish("dl-poison", department="d" * 40_000)
    alias = settings.index_alias("people")

    def indexed(query: dict) -> int:
        if not platform.es.indices.exists_alias(name=alias):  # the worker is still starting
            return -1
        platform.es.indices.refresh(index=alias)
        return platform.es.count(index=alias, query=query)["count"]

    try:
        worker.start_process("projections")
        # Written with the poison's batch (a bulk request writes the items it can), then once the
        # batch has failed: these stayed behind the poison for good before.
        for i in range(2):
            publish(f"dl-with-{i}")
        eventually(lambda: indexed({"prefix": {"employee_id": "dl-with-"}}) == 2, timeout=180, message="the profiles of the poison's batch projected")
        for i in range(3):
            publish(f"dl-after-{i}")
        eventually(lambda: indexed({"prefix": {"employee_id": "dl-after-"}}) == 3, timeout=120, message="the profiles after the poison projected")
        assert indexed({"term": {"employee_id": "dl-poison"}}) == 0

        def parked() -> list:
            letters = [DeadLetter.FromString(r.value) for r in read_topic(settings, settings.dead_letter_topic)]
            return [d for d in letters if d.processor == "people"]

        (letter,) = eventually(parked, timeout=60, message="the poison parked by the people projection")
        assert (letter.source_partition, letter.source_offset) == (sent.partition, sent.offset)
        assert letter.original_value == poison
        assert letter.reason.startswith("failed 2 times") and "immense term" in letter.reason

        def counted() -> str:
            body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
            return next((line for line in body.splitlines() if line.startswith("wc_processor_dead_lettered_total{") and 'processor="people"' in line), "")

        assert eventually(counted, message="the parked record counted").endswith(" 1.0") and 'cause="kept_failing"' in counted()
        log = (ARTIFACTS / "logs" / settings.namespace / "projections.log").read_text()
        assert "projection batch kept failing" in log and '"cause": "kept_failing"' in log

        class ShortDepartments(PeopleProjection):  # the fix: what the index refused is cut to size
            def apply(self, doc, event):
                doc = super().apply(doc, event)
                doc["department"] = doc.get("department", "")[:100]
                return doc

        replayed = asyncio.run(replay_dead_letters(settings, [ShortDepartments(settings)], "people"))
        assert [(r.processor, r.outcome) for r in replayed] == [("people", "applied")]
        assert indexed({"term": {"employee_id": "dl-poison"}}) == 1
        assert len(parked()) == 1, "the letter stays in the topic"
    finally:
        producer.close()
        worker.stop()
        _drop_namespace(platform, settings.namespace)


def test_rebuild_switches_indices_while_searches_keep_answering(platform):
    stub = platform.stub(pg.ProfileServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    metadata = platform.metadata()
    marker = f"Rebuildtest{uuid.uuid4().hex[:6]}"
    for i in range(20):
        stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=f"{marker.lower()}-{i}", display_name=f"{marker} Person{i}")), metadata=metadata)
    eventually(lambda: people_count(platform, marker.lower()) == 20, message="20 profiles indexed")
    before = platform.es.indices.get_alias(name=platform.alias("people")).body

    results: list[int] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            response = search.SearchPeople(sp.SearchPeopleRequest(query=marker, page_size=50), metadata=metadata)
            results.append(len([p for p in response.people if p.display_name.startswith(marker)]))

    searchers = [threading.Thread(target=keep_searching) for _ in range(3)]
    for thread in searchers:
        thread.start()

    async def rebuild():
        es = es_client(platform.settings)
        try:
            return await PeopleProjection(platform.settings).rebuild(es)
        finally:
            await es.close()

    try:
        outcome = asyncio.run(rebuild())
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in searchers:
            thread.join()

    after = platform.es.indices.get_alias(name=platform.alias("people")).body
    assert list(after) == [outcome["index"]] and outcome["index"] not in before
    assert outcome["events_replayed"] >= 20
    assert len(results) > 10, "searches did not run during the rebuild"
    assert min(results) == 20, f"a search during the rebuild saw {min(results)} of 20"
    assert people_count(platform, marker.lower()) == 20


def test_clients_speak_the_servers_we_fetch(platform):
    """kafka-python, aiokafka (under faust) and elasticsearch-py against the real servers."""
    import aiokafka
    import elasticsearch
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import NewTopic

    topic = f"{platform.settings.namespace}.compat"
    admin = KafkaAdminClient(bootstrap_servers=platform.settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    sent = producer.send(topic, key=b"compat", value=b"kafka-python").get(30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=platform.settings.kafka_bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, sent.partition)
    consumer.assign([tp])
    consumer.seek(tp, sent.offset)
    records = consumer.poll(timeout_ms=10000).get(tp, [])
    consumer.close()
    assert records and records[0].value == b"kafka-python"

    async def with_aiokafka() -> bytes:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        meta = await producer.send_and_wait(topic, b"aiokafka", key=b"compat")
        await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=platform.settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        tp = aiokafka.TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await consumer.getone()
        await consumer.stop()
        return record.value

    assert asyncio.run(with_aiokafka()) == b"aiokafka"
    # The integ-test-zip answers 405 to GET /, so ask the node itself for its version.
    server = next(iter(platform.es.nodes.info(node_id="_local")["nodes"].values()))["version"]
    assert server.split(".")[0] == str(elasticsearch.__versionstr__).split(".")[0]

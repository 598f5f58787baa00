"""Events over time: StatusUpdatePosted v1 -> v2 (``photo`` renamed ``photo_uri``,
``text_format`` added) -> v3 (a photo is the media item's name, ``media/{id}``, where v1 and
v2 wrote ``mediaItems/{id}``), with older events still replayed correctly.

A v1 and a v2 event are written into a real store exactly as that code stored them (old
attribute name, no or an older ``class_version``); the aggregates load through the library's
upcasters; the real relay publishes them to real Kafka as schema_version 3; and a projection
rebuild from a topic that also holds a v1-shaped envelope (encoded with the frozen v1 proto)
gives the same documents in real Elasticsearch."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import uuid

import pytest
from elasticsearch import AsyncElasticsearch
from eventsourcing.persistence import StoredEvent
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaAdminClient, KafkaProducer

from services.profiles.application import ProfilesApplication
from services.profiles.domainmodel import PLAIN, StatusUpdate
from services.search.readmodels.projections.statuses import StatusesProjection
from watercooler import personaldata
from watercooler.auth import Principal
from watercooler.envelope import decode, to_envelope
from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
from watercooler.eventstore import CommandContext, EventSourcedAggregate
from watercooler.kafka import ensure_topics
from watercooler.relay import Relay

V1_TOPIC = "services.profiles.domainmodel:StatusUpdate.StatusUpdatePosted"


def frozen_v1_message():
    """StatusUpdatePosted as protos/watercooler/profiles/v1/events.proto declared it at v1,
    in a pool of its own so it does not clash with the current message."""
    file = descriptor_pb2.FileDescriptorProto(name="frozen_v1_status.proto", package="watercooler.profiles.v1", syntax="proto3")
    message = file.message_type.add(name="StatusUpdatePosted")
    for number, name in enumerate(("status_id", "author_id", "text", "photo", "visibility", "community_id"), start=1):
        message.field.add(name=name, number=number, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("watercooler.profiles.v1.StatusUpdatePosted"))


def insert_v1_event(app: ProfilesApplication, author: str, status_id: str, text: str, photo: str, version: int = 1) -> uuid.UUID:
    """Store a StatusUpdatePosted the way the v1 code did: attribute ``photo``, no
    ``text_format`` and no ``class_version`` in the stored state (the same topic: the
    class kept its name and place); with ``version=2``, as the v2 code did (``photo_uri``,
    ``text_format``, ``class_version`` 2)."""
    aggregate_id = StatusUpdate.create_id(author, status_id)
    state = {
        "timestamp": dt.datetime.now(dt.UTC),
        "originator_topic": "services.profiles.domainmodel:StatusUpdate",
        "meta": {"event_id": str(uuid.uuid4()), "actor": {"subject": author, "kind": "employee"}, "correlation_id": "v1", "causation_id": "v1"},
        "status_id": status_id,
        "author_id": author,
        "text": text,
        "photo": photo,
        "visibility": "PUBLIC",
        "community_id": "",
    }
    if version == 2:
        state.update(photo_uri=state.pop("photo"), text_format=PLAIN, class_version=2)
    app.recorder.insert_events([StoredEvent(originator_id=aggregate_id, originator_version=1, topic=V1_TOPIC, state=encode_state(app, state))])
    return aggregate_id


def encode_state(app: ProfilesApplication, state: dict) -> bytes:
    """What the app's mapper does to a state dict (transcode, then compress/encrypt if configured)."""
    data = app.mapper.transcoder.encode(state)
    if app.mapper.compressor:
        data = app.mapper.compressor.compress(data)
    if app.mapper.cipher:
        data = app.mapper.cipher.encrypt(data)
    return data


def decode_state(app: ProfilesApplication, data: bytes) -> dict:
    if app.mapper.cipher:
        data = app.mapper.cipher.decrypt(data)
    if app.mapper.compressor:
        data = app.mapper.compressor.decompress(data)
    return app.mapper.transcoder.decode(data)


def v1_envelope(author: str, status_id: str, photo: str, sequence: int) -> EventEnvelope:
    """A v1 envelope as an old relay put it on Kafka (schema_version 1, v1 payload)."""
    payload = frozen_v1_message()(status_id=status_id, author_id=author, text="from an old relay", photo=photo, visibility="PUBLIC")
    packed = any_pb2.Any(type_url="type.googleapis.com/watercooler.profiles.v1.StatusUpdatePosted", value=payload.SerializeToString())
    occurred = Timestamp()
    occurred.GetCurrentTime()
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type="watercooler.profiles.v1.StatusUpdatePosted",
        aggregate_type="StatusUpdate",
        aggregate_id=str(StatusUpdate.create_id(author, status_id)),
        aggregate_version=1,
        occurred_at=occurred,
        actor=Actor(subject=author, kind="employee"),
        schema_version=1,
        payload=packed,
        source="profiles",
        sequence=sequence,
    )


def test_v1_event_upcasts_in_memory():
    """The upcasters alone: v1 stored state becomes v2, then v3 attributes; a v2 photo that
    names no media item is kept as written."""
    state = {"photo": "mediaItems/p1", "text": "hi"}
    StatusUpdate.StatusUpdatePosted.upcast_v1_v2(state)
    assert state == {"photo_uri": "mediaItems/p1", "text": "hi", "text_format": PLAIN}
    StatusUpdate.StatusUpdatePosted.upcast_v2_v3(state)
    assert state == {"photo_uri": "media/p1", "text": "hi", "text_format": PLAIN}
    uri = {"photo_uri": "https://example.com/a.jpg"}
    StatusUpdate.StatusUpdatePosted.upcast_v2_v3(uri)
    assert uri == {"photo_uri": "https://example.com/a.jpg"}


def test_v1_envelope_decodes_into_renamed_field():
    envelope = v1_envelope("ada", "s1", "mediaItems/p9", sequence=1)
    event = decode(envelope.SerializeToString())
    assert event.envelope.schema_version == 1
    assert event.payload.photo_uri == "mediaItems/p9" and event.payload.text_format == ""


@pytest.fixture
def scratch(infra, tmp_path):
    """A namespace of its own (sqlite store, topics, indices), dropped afterwards."""
    settings = dataclasses.replace(infra, store="sqlite", data_dir=tmp_path, namespace=f"u{secrets.token_hex(4)}")
    ensure_topics(settings, ("profiles",))
    yield settings
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(f"{settings.namespace}.")])
    finally:
        admin.close()

    async def drop() -> None:
        async with AsyncElasticsearch(settings.es_url) as es:
            mine = list(await es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
            if mine:  # wildcard deletes are refused by the server
                await es.indices.delete(index=",".join(mine), ignore_unavailable=True)

    asyncio.run(drop())


def test_v1_store_relay_and_projection_rebuild(scratch):
    app = ProfilesApplication(scratch)
    stored_v1 = insert_v1_event(app, "ada", "old1", "posted by v1 code", "mediaItems/old")

    # Replay: the aggregate loads through the upcaster.
    loaded = app.repository.get(stored_v1)
    assert (loaded.photo_uri, loaded.text_format, loaded.text) == ("media/old", PLAIN, "posted by v1 code")
    notification = app.recorder.select_notifications(start=1, limit=1)[0]
    assert decode_state(app, notification.state)["photo"] == "mediaItems/old"  # the store itself is untouched
    stored_v2 = insert_v1_event(app, "ada", "old2", "posted by v2 code", "mediaItems/older", version=2)
    assert app.repository.get(stored_v2).photo_uri == "media/older"

    # A v3 status through the application, next to them (without a photo: this scratch
    # namespace runs no media library to check one against).
    ctx = CommandContext(Principal("hr-feed", "service"), request_id="r1")
    app.create_profile(ctx, "ada", {"display_name": "Ada"}, "fp0")
    app.accept_guidelines(ctx, "ada", scratch.guidelines_version, "fpa")  # before she publishes
    fresh = app.create_status_update(CommandContext(Principal("ada", "employee"), request_id="r2"), "ada", {"text": "posted by v3", "photo": "", "visibility": "PUBLIC", "community_id": ""}, "fp1")

    # The relay publishes all three as schema_version 3.
    relay = Relay(app, scratch)
    relay.connect()
    try:
        while relay.publish_once():
            pass
    finally:
        relay._reset_producer()  # closes the transactional producer
    # What the relay put on the topic for them (it skips the request records, as here).
    domain_events = [(app.mapper.to_domain_event(n), n.id) for n in app.recorder.select_notifications(start=1, limit=100)]
    envelopes = [to_envelope("profiles", e, i) for e, i in domain_events if isinstance(e, EventSourcedAggregate.Event)]
    posted = [e for e in envelopes if e.event_type.endswith("StatusUpdatePosted")]
    assert [e.schema_version for e in posted] == [3, 3, 3]
    old_payload = decode(posted[0].SerializeToString()).payload
    assert (old_payload.photo_uri, old_payload.text_format) == ("media/old", PLAIN)

    # An old relay's v1-shaped envelope already on the topic.
    producer = KafkaProducer(bootstrap_servers=scratch.kafka_bootstrap)
    legacy = v1_envelope("bob", "legacy1", "mediaItems/legacy", sequence=10_000)
    producer.send(scratch.topic("profiles"), key=legacy.aggregate_id.encode(), value=legacy.SerializeToString()).get(timeout=30)
    producer.close()

    # This scratch store keeps its own personal data keys (no profiles service runs for it).
    personaldata.install_key_ring(scratch, app.personal_keys)

    async def rebuild() -> dict:
        async with AsyncElasticsearch(scratch.es_url) as es:
            projection = StatusesProjection(scratch)
            summary = await projection.rebuild(es)
            hits = await es.search(index=projection.alias, query={"match_all": {}}, size=10)
            return {"summary": summary, "docs": {h["_source"]["status_id"]: h["_source"] for h in hits["hits"]["hits"]}}

    result = asyncio.run(rebuild())
    docs = result["docs"]
    assert set(docs) == {"old1", "old2", fresh.status_id, "legacy1"}
    assert docs["old1"]["photo"] == "media/old" and docs["old1"]["text"] == "posted by v1 code"
    assert docs["old2"]["photo"] == "media/older"
    assert docs[fresh.status_id]["photo"] == "" and docs[fresh.status_id]["text"] == "posted by v3"
    # The old relay's envelope is upcast by the projection (schema_version 1 < 3).
    assert docs["legacy1"]["photo"] == "media/legacy" and docs["legacy1"]["name"] == "profiles/bob/statusUpdates/legacy1"

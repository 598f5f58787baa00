"""What integration tests use to look inside Kafka and Elasticsearch."""

from __future__ import annotations

import grpc
from kafka import KafkaConsumer, TopicPartition

from watercooler.config import Settings
from watercooler.envelope import BadEvent, Event, decode
from watercooler.projection import open_sealed


def read_topic(settings: Settings, topic: str, read_committed: bool = True) -> list:
    """Every record currently in ``topic``, read from the beginning to the end."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                records.extend(r for r in batch if r.offset < end[tp])
        return records
    finally:
        consumer.close()


def read_events(settings: Settings, service: str, opened: bool = True) -> list[Event]:
    """The topic's events; ``opened``: with their sealed personal fields opened, as a projection
    reads them (watercooler.personaldata), else as Kafka holds them."""
    events = []
    for record in read_topic(settings, settings.topic(service)):
        try:
            events.append(decode(record.value))
        except BadEvent:
            continue
    if opened:
        open_sealed(settings, events)
    return events


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """Call and return the error it must raise."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")


def bad_request_fields(error: grpc.RpcError) -> list[str]:
    """Field names in the AIP-193 BadRequest details of an error."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields

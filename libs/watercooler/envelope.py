"""The EventEnvelope every published event travels in, and its conversions.

A stored domain event becomes an envelope whose payload is the message of the
same name in ``protos/watercooler/<service>/v1/events.proto``; the domain
event's attributes map onto the message's fields by name, so a mismatch
between the two fails loudly in the relay's tests instead of dropping data.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import importlib
import importlib.util
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, json_format, message_factory
from google.protobuf.descriptor_pool import Default as default_pool
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from .config import SERVICES
from .events.v1.envelope_pb2 import Actor, EventEnvelope

# Attributes every eventsourcing event has; they go to the envelope, not the payload.
_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "meta", "originator_topic"}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # nearly every field: one look-up instead of six isinstance checks
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


def _register_event_protos() -> None:
    """Import every service's generated events module so its messages are in the pool."""
    for service in SERVICES:
        name = f"watercooler.{service}.v1.events_pb2"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
        # A service may split its events over several `*events*.proto` files (DEVELOPING.md).
        package = Path(__file__).resolve().parent / service / "v1"
        for module in sorted(package.glob("*events*_pb2.py")):
            importlib.import_module(f"watercooler.{service}.v1.{module.stem}")


_register_event_protos()


def payload_type(service: str, event_name: str) -> str:
    return f"watercooler.{service}.v1.{event_name}"


def message_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(default_pool().FindMessageTypeByName(full_name))


def _payload(cls: type[Message], fields: dict[str, Any]) -> Message:
    """The payload message of an event's fields. The message's constructor takes what the
    events hold (strings, numbers, lists, dicts of nested fields) at C speed; whatever it
    refuses goes through ``json_format.ParseDict``, which reads the JSON mapping (numbers as
    strings, RFC 3339 timestamps, enum names, JSON field names) and raises on an attribute the
    proto lacks. ParseDict alone was about 80 % of the relay's CPU per event (98 us an event)."""
    try:
        return cls(**fields)
    except (TypeError, ValueError):
        message = cls()
        json_format.ParseDict(fields, message)
        return message


def to_envelope(service: str, domain_event: Any, sequence: int) -> EventEnvelope:
    """Convert one stored eventsourcing domain event into its envelope."""
    event_name = type(domain_event).__name__
    aggregate_type = type(domain_event).__qualname__.split(".")[0]
    # Plain values as they are, without a call each: this was the relay's costliest line.
    fields = {k: v if type(v) in _PLAIN else _jsonable(v) for k, v in domain_event.__dict__.items() if k not in _BASE_FIELDS}
    payload_msg = _payload(message_class(payload_type(service, event_name)), fields)
    meta = domain_event.meta
    actor = meta.get("actor", {})
    occurred = Timestamp()
    occurred.FromDatetime(domain_event.timestamp.astimezone(dt.UTC).replace(tzinfo=None))
    payload = any_pb2.Any()
    payload.Pack(payload_msg)
    return EventEnvelope(
        event_id=meta["event_id"],
        event_type=payload_msg.DESCRIPTOR.full_name,
        aggregate_type=aggregate_type,
        aggregate_id=str(domain_event.originator_id),
        aggregate_version=domain_event.originator_version,
        occurred_at=occurred,
        actor=Actor(subject=actor.get("subject", ""), kind=actor.get("kind", "")),
        correlation_id=meta.get("correlation_id", ""),
        causation_id=meta.get("causation_id", ""),
        schema_version=int(getattr(type(domain_event), "class_version", 1)),
        payload=payload,
        source=service,
        sequence=sequence,
    )


class BadEvent(Exception):
    """A record that is not a readable envelope: it goes to the dead-letter topic."""


@dataclass(frozen=True)
class Event:
    """A decoded envelope with its payload unpacked; what projections receive."""

    envelope: EventEnvelope
    payload: Message

    # Cached: the projections of a batch share one decoded event (watercooler.projection) and
    # each asks for these, some several times.
    @functools.cached_property
    def type_name(self) -> str:
        """The payload's short name, e.g. ``ProfileCreated``."""
        return self.envelope.event_type.rsplit(".", 1)[-1]

    @property
    def aggregate_id(self) -> str:
        return self.envelope.aggregate_id

    @property
    def version(self) -> int:
        return self.envelope.aggregate_version

    @functools.cached_property
    def occurred_at(self) -> dt.datetime:
        return self.envelope.occurred_at.ToDatetime(tzinfo=dt.UTC)


def decode(value: bytes) -> Event:
    event = decode_kept(value, None)
    assert event is not None  # every aggregate type is kept
    return event


def read_envelope(value: bytes) -> EventEnvelope:
    """The envelope of a record, its payload still packed; BadEvent when it is not a readable one."""
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(value)
    except (DecodeError, TypeError) as exc:  # TypeError: a record without a value
        raise BadEvent(f"not an EventEnvelope: {exc}") from None
    if not envelope.event_id or not envelope.aggregate_id or envelope.aggregate_version < 1:
        raise BadEvent("envelope lacks event_id, aggregate_id or aggregate_version")
    return envelope


def decode_kept(value: bytes, aggregate_types: Collection[str] | None) -> Event | None:
    """The event, or None when its aggregate type is not among ``aggregate_types`` (None: keep
    all). Why: several projections share a topic and each keeps only some aggregates; an event
    of another is dropped before its payload is unpacked (a bad envelope is BadEvent either way)."""
    envelope = read_envelope(value)
    if aggregate_types is not None and envelope.aggregate_type not in aggregate_types:
        return None
    try:
        payload = message_class(envelope.event_type)()
    except KeyError:
        raise BadEvent(f"unknown event type {envelope.event_type!r}") from None
    if not envelope.payload.Unpack(payload):
        raise BadEvent(f"payload is not a {envelope.event_type}")
    return Event(envelope=envelope, payload=payload)

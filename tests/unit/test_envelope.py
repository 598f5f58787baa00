"""A stored domain event survives the trip to an envelope on the wire and back."""

from __future__ import annotations

import uuid

import pytest

from services.profiles.domainmodel import Profile
from watercooler.auth import Principal
from watercooler.envelope import BadEvent, decode, to_envelope
from watercooler.eventstore import CommandContext, command_meta, uuid7


def _created_profile() -> Profile:
    ctx = CommandContext(Principal("hr-feed", "service"), request_id="req-1", correlation_id="corr-9")
    with command_meta(ctx):
        return Profile.create("e42", {"display_name": "Zoë Ñúñez", "expertise": ["kafka", "ux"], "country": "ES"})


def test_envelope_round_trip_keeps_every_field():
    profile = _created_profile()
    event = profile.pending_events[0]
    envelope = to_envelope("profiles", event, sequence=17)
    decoded = decode(envelope.SerializeToString())
    env = decoded.envelope
    assert env.event_type == "watercooler.profiles.v1.ProfileCreated"
    assert env.aggregate_type == "Profile"
    assert env.aggregate_id == str(profile.id)
    assert env.aggregate_version == 1
    assert env.sequence == 17
    assert env.source == "profiles"
    assert env.actor.subject == "hr-feed" and env.actor.kind == "service"
    assert env.correlation_id == "corr-9" and env.causation_id == "req-1"
    assert env.schema_version == 1
    assert uuid.UUID(env.event_id).version == 7
    assert env.occurred_at.ToDatetime().replace(microsecond=0) == event.timestamp.replace(tzinfo=None, microsecond=0)
    assert decoded.type_name == "ProfileCreated"
    assert decoded.payload.display_name == "Zoë Ñúñez"
    assert list(decoded.payload.expertise) == ["kafka", "ux"]
    assert decoded.payload.country == "ES"


def test_each_event_gets_its_own_time_ordered_id():
    ids = [uuid7() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # millisecond prefix never goes back


@pytest.mark.parametrize("value", [b"not protobuf \xff\xff", b""])
def test_garbage_is_a_bad_event(value):
    with pytest.raises(BadEvent):
        decode(value)


def test_unknown_event_type_is_a_bad_event():
    envelope = to_envelope("profiles", _created_profile().pending_events[0], sequence=1)
    envelope.event_type = "watercooler.profiles.v1.NoSuchEvent"
    with pytest.raises(BadEvent, match="unknown event type"):
        decode(envelope.SerializeToString())


def test_payload_from_fields_the_constructor_refuses_is_read_as_json():
    """Fields in the JSON mapping's forms (an int64 as a string, a whole float for an integer)
    still become the payload ParseDict makes of them; an attribute the proto lacks still fails."""
    from google.protobuf import json_format

    from watercooler.envelope import _payload, message_class

    cls = message_class("watercooler.events.v1.EventEnvelope")
    fields = {"event_id": "e1", "aggregate_version": "7", "sequence": 3.0, "actor": {"subject": "s", "kind": "k"}}
    assert _payload(cls, fields) == json_format.ParseDict(fields, cls())
    assert _payload(cls, fields).aggregate_version == 7
    with pytest.raises(json_format.ParseError):
        _payload(cls, {"event_id": "e1", "no_such_field": 1})


def test_payload_of_every_profile_event_equals_the_json_mapping():
    """The constructor's fast path gives what ParseDict gave, field for field."""
    from google.protobuf import json_format

    from watercooler.envelope import _BASE_FIELDS, _jsonable, _payload, message_class, payload_type

    profile = _created_profile()
    profile.update({"title": "Engineer", "expertise": ["search"], "manager_id": "e1"})
    for event in profile.pending_events:
        cls = message_class(payload_type("profiles", type(event).__name__))
        fields = {k: _jsonable(v) for k, v in event.__dict__.items() if k not in _BASE_FIELDS}
        assert _payload(cls, fields) == json_format.ParseDict(fields, cls())

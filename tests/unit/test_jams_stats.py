"""The jam stats state (leaderboard, participants, pulse, tone) without servers:
redelivered events change nothing, merges count a participant once, exports are well formed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.search.jams import export
from services.search.readmodels.counters.jams import JamStatsState, decode_event, tone
from watercooler.envelope import BadEvent
from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
from watercooler.jams.v1 import events_pb2 as ev

_versions: dict[str, int] = {}


def envelope(payload, aggregate: str, kind: str = "employee", hour: int = 9) -> bytes:
    _versions[aggregate] = _versions.get(aggregate, 0) + 1
    packed = any_pb2.Any()
    packed.Pack(payload)
    occurred = Timestamp(seconds=1_893_456_000 + hour * 3600)
    return EventEnvelope(event_id=f"{aggregate}-{_versions[aggregate]}", event_type=payload.DESCRIPTOR.full_name, aggregate_id=aggregate,
                         aggregate_version=_versions[aggregate], actor=Actor(subject="x", kind=kind), occurred_at=occurred, payload=packed).SerializeToString()


def test_redelivery_changes_nothing_and_merges_count_once():
    _versions.clear()
    records = [
        envelope(ev.JamCreated(jam_id="j", title="Jam", visibility="INTERNAL"), "jam-agg"),
        envelope(ev.ForumCreated(forum_id="f", title="Forum"), "jam-agg"),
        envelope(ev.IdeaCreated(jam_id="j", idea_id="a", title="A"), "idea-a"),
        envelope(ev.IdeaCreated(jam_id="j", idea_id="b", title="B"), "idea-b"),
        envelope(ev.VoteCast(jam_id="j", participant="p1", idea_id="a"), "ballot-1"),
        envelope(ev.VoteCast(jam_id="j", participant="p1", idea_id="b"), "ballot-1"),
        envelope(ev.VoteCast(jam_id="j", participant="g1", idea_id="b"), "ballot-2", kind="guest"),
        envelope(ev.ThreadCreated(jam_id="j", thread_id="t", forum_id="f", title="Awful", body="This is terrible and sad", author="p2"), "thread-t", hour=10),
        envelope(ev.ReplyCreated(jam_id="j", thread_id="t", reply_id="r", forum_id="f", body="Great, I love it!", author="p3"), "reply-r", hour=11),
        envelope(ev.IdeasMerged(merged_idea_id="b", into_idea_id="a"), "jam-agg"),
    ]
    once = JamStatsState()
    for value in records:
        once.apply(decode_event(value))
    twice = JamStatsState()
    for value in records + records[3:]:  # a redelivered stretch
        twice.apply(decode_event(value))
    for state in (once, twice):
        doc = state.jams["j"].document()
        assert [(r["idea_id"], r["votes"]) for r in doc["leaderboard"]] == [("a", 2)]
        assert doc["votes"] == 2 and doc["voters"] == 2 and doc["guests"] == 1 and doc["ideas"] == 1
        assert doc["participants"] == 4  # p1, g1, p2, p3 (the ideas' author field is empty here)
        hours = doc["hours"]
        assert hours["2030-01-01T09:00:00Z"]["votes"] == 3
        assert hours["2030-01-01T10:00:00Z"]["tone"] < 0 < hours["2030-01-01T11:00:00Z"]["tone"]
        assert doc["forums"]["f"]["posts"] == 2 and doc["forums"]["f"]["title"] == "Forum"


def test_tone_is_lexicon_based_and_offline():
    assert tone("I hate this, it is awful") < -0.5
    assert tone("Wonderful, I love this idea") > 0.5
    assert tone("   ") == 0.0


def test_garbage_is_a_bad_event():
    with pytest.raises(BadEvent):
        decode_event(b"\x00\x01garbage")


def test_exports_are_csv_and_json():
    doc = {"jam_id": "j", "participants": 3, "guests": 1, "votes": 2, "voters": 2, "posts": 1, "ideas": 2,
           "leaderboard": [{"rank": 1, "idea_id": "a", "title": "A, with comma", "votes": 2}],
           "hours": {"2030-01-01T09:00:00Z": {"posts": 1, "votes": 2, "withdrawals": 0, "active_participants": 2, "tone": -0.4, "toned_posts": 1}},
           "forums": {}}
    content_type, filename, data = export(doc, "csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert content_type.startswith("text/csv") and filename == "j-stats.csv"
    assert rows[0]["title"] == "A, with comma" and rows[1]["tone"] == "-0.4"
    assert {r["key"]: r["count"] for r in rows if r["section"] == "total"}["participants"] == "3"
    assert json.loads(export(doc, "json")[2])["leaderboard"][0]["votes"] == 2

"""The media library's erasure follower (services.posts.library.erasure): which profile records it
decodes, and when it commits its offsets."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from services.posts.library import erasure
from watercooler import personaldata

ERASED = personaldata.ERASURE_EVENT.encode()
UPDATED = b"watercooler.profiles.v1.ProfileUpdated"


class ScriptedConsumer:
    """Answers each poll with the next batch of the script (records with the relay's headers), then
    stops the follower; remembers when it was asked to commit."""

    def __init__(self, script, stopping: threading.Event, clock: list[float], tick: float):
        self.script, self.stopping, self.clock, self.tick = list(script), stopping, clock, tick
        self.commits: list[int] = []
        self.polls = 0

    def poll(self, timeout_ms=0):
        self.clock[0] += self.tick
        if not self.script:
            self.stopping.set()
            return {}
        self.polls += 1
        records = self.script.pop(0)
        return {"tp": records} if records else {}

    def commit(self):
        self.commits.append(self.polls)

    def close(self):
        pass


def _record(event_type: bytes | None, value: bytes = b"not an envelope") -> SimpleNamespace:
    return SimpleNamespace(value=value, headers=[("event_type", event_type), ("event_id", b"e")] if event_type else [])


def _follow(monkeypatch, script, tick: float):
    clock = [0.0]
    monkeypatch.setattr(erasure.time, "monotonic", lambda: clock[0])
    decoded: list[bytes] = []
    monkeypatch.setattr(erasure, "handle", lambda app, value: decoded.append(value) or [])
    stopping = threading.Event()
    consumer = ScriptedConsumer(script, stopping, clock, tick)
    erasure.follow(app=None, settings=None, stopping=stopping, consumer=consumer)
    return consumer, decoded


def test_only_erasures_and_records_without_the_header_are_decoded(monkeypatch):
    script = [[_record(UPDATED, b"u1"), _record(ERASED, b"erased"), _record(None, b"headerless"), _record(UPDATED, b"u2")]]
    _, decoded = _follow(monkeypatch, script, tick=0.1)
    assert decoded == [b"erased", b"headerless"]


def test_offsets_are_committed_after_the_effects_at_most_every_few_seconds_not_after_every_poll(monkeypatch):
    script = [[_record(UPDATED)] for _ in range(40)]  # a poll every 0.1 s, each with one profile write
    consumer, _ = _follow(monkeypatch, script, tick=0.1)
    assert 1 <= len(consumer.commits) <= 40 * 0.1 / erasure.COMMIT_EVERY_SECONDS + 1
    assert consumer.commits == sorted(consumer.commits)


def test_nothing_is_committed_past_an_erasure_left_unhandled_when_stopping(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(erasure.time, "monotonic", lambda: clock[0])
    stopping = threading.Event()

    def failing(app, value):  # the store away: retried until the follower is stopped
        stopping.set()
        raise RuntimeError("store away")

    monkeypatch.setattr(erasure, "handle", failing)
    monkeypatch.setattr(erasure.time, "sleep", lambda seconds: None)
    consumer = ScriptedConsumer([[_record(ERASED)]], stopping, clock, tick=10.0)
    erasure.follow(app=None, settings=None, stopping=stopping, consumer=consumer)
    assert consumer.commits == []

"""Live jam statistics: the leaderboard (exact tallies), participants, and the pulse
(per-hour posts, votes, active participants and tone; tone per forum), from
`jams.events.v1`, into one Elasticsearch document per jam (`wc-jam-stats`).

Why it is exact under redelivery and SIGKILL, and why it is built this way:
- An exact tally with merges needs every participant's ballot (a participant who voted
  for both a duplicate and the idea it was merged into counts once), and a merge
  arrives on the jam's partition while ballots arrive on theirs.  So the state is the
  whole set of ballots, in memory (``watercooler.tally.Tally``, the jams service's own count, ideas interned
  to ints: ~hundreds of MB at 500,000 participants, see benchmarks/jams_votes.py).
- That state is never checkpointed: on start the task reads the topic from the
  beginning (read_committed, every partition, no consumer group) and then follows it.
  The log *is* the state, so a SIGKILL loses nothing and a restart recounts exactly.
- Each event is applied only if its aggregate version is newer than the last one
  applied for that aggregate, so a record seen twice changes nothing.
- Documents are full snapshots written with an external version = events applied for
  that jam, so a stale writer (a process from before a restart) can never overwrite a
  newer snapshot.
The cost is the replay on start: measured in benchmarks/jams_votes.py.

Tone is VADER's compound score (-1..1; lexicon shipped with the package, offline) of
each thread, reply and idea text, averaged per hour and per forum.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from elasticsearch import AsyncElasticsearch, ConflictError

from watercooler import metrics, personaldata
from watercooler.config import Settings
from watercooler.envelope import BadEvent, Event, message_class
from watercooler.events.v1.envelope_pb2 import EventEnvelope
from watercooler.projection import index_replicas, open_sealed
from watercooler.tally import Tally

from .. import indices
from . import create_counter_index

log = logging.getLogger(__name__)

NAME = indices.JAM_STATS
FLUSH_SECONDS = 0.5
LEADERBOARD_SIZE = 100
POST_EVENTS = ("ThreadCreated", "ReplyCreated", "IdeaCreated")

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "jam_id": {"type": "keyword"},
        "title": {"type": "keyword"},
        "visibility": {"type": "keyword"},
        "participants": {"type": "long"},
        "guests": {"type": "long"},
        "votes": {"type": "long"},
        "voters": {"type": "long"},
        "posts": {"type": "long"},
        "ideas": {"type": "long"},
        "events": {"type": "long"},
        # Stored, not searched: the dashboard reads them whole.
        "leaderboard": {"type": "object", "enabled": False},
        "hours": {"type": "object", "enabled": False},
        "forums": {"type": "object", "enabled": False},
        "updated_at": {"type": "date"},
    },
}

_analyzer = None


def tone(text: str) -> float:
    global _analyzer
    if _analyzer is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _analyzer = SentimentIntensityAnalyzer()
    return float(_analyzer.polarity_scores(text)["compound"]) if text.strip() else 0.0


_classes: dict[str, Any] = {}


def decode_event(value: bytes) -> Event:
    """``watercooler.envelope.decode`` for the replay hot path: the same checks, with the
    payload class cached per type (a replay of 5,000,000 votes spends most time here)."""
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(value)
    except Exception as exc:
        raise BadEvent(f"not an EventEnvelope: {exc}") from None
    if not envelope.event_id or not envelope.aggregate_id or envelope.aggregate_version < 1:
        raise BadEvent("envelope lacks event_id, aggregate_id or aggregate_version")
    event_type = envelope.event_type
    cls = _classes.get(event_type)
    if cls is None:
        try:
            cls = _classes[event_type] = message_class(event_type)
        except KeyError:
            raise BadEvent(f"unknown event type {event_type!r}") from None
    if not envelope.payload.type_url.endswith("/" + event_type):
        raise BadEvent(f"payload is not a {event_type}")
    try:
        payload = cls.FromString(envelope.payload.value)
    except Exception as exc:
        raise BadEvent(f"bad {event_type} payload: {exc}") from None
    return Event(envelope=envelope, payload=payload)


def hour_of(event: Event) -> str:
    return event.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:00:00Z")


@dataclass
class Bucket:
    posts: int = 0
    votes: int = 0
    withdrawals: int = 0
    tone_sum: float = 0.0
    tone_n: int = 0
    active: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts, "votes": self.votes, "withdrawals": self.withdrawals, "active_participants": len(self.active),
            "tone": round(self.tone_sum / self.tone_n, 4) if self.tone_n else None, "toned_posts": self.tone_n,
        }


@dataclass
class JamStats:
    jam_id: str
    title: str = ""
    visibility: str = "INTERNAL"
    tally: Tally = field(default_factory=Tally)
    participants: set[str] = field(default_factory=set)
    guests: set[str] = field(default_factory=set)
    hours: dict[str, Bucket] = field(default_factory=dict)
    forums: dict[str, Bucket] = field(default_factory=dict)
    forum_titles: dict[str, str] = field(default_factory=dict)
    idea_titles: dict[str, str] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # ideas community flags hid: off the leaderboard
    posts: int = 0
    events: int = 0

    def document(self) -> dict[str, Any]:
        ranking = self.tally.ranking(LEADERBOARD_SIZE, exclude={*self.merged, *self.hidden})
        return {
            "jam_id": self.jam_id, "title": self.title, "visibility": self.visibility,
            "participants": len(self.participants), "guests": len(self.guests),
            "votes": self.tally.votes_counted(), "voters": self.tally.participants_counted(),
            "posts": self.posts, "ideas": len(self.idea_titles) - len(self.merged) - len(self.hidden - self.merged.keys()), "events": self.events,
            "leaderboard": [{"rank": r, "idea_id": i, "title": self.idea_titles.get(i, ""), "votes": n} for r, (i, n) in enumerate(ranking, start=1)],
            "hours": {h: b.as_dict() for h, b in sorted(self.hours.items())},
            "forums": {f: {**b.as_dict(), "title": self.forum_titles.get(f, "")} for f, b in sorted(self.forums.items())},
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }


class JamStatsState:
    """Pure: events in, per-jam statistics out.  Idempotent per (aggregate, version)."""

    def __init__(self) -> None:
        self.jams: dict[str, JamStats] = {}
        # jam and idea aggregate ids -> jam id (for Jam events and flag events, without jam_id)
        self.by_aggregate: dict[str, str] = {}
        self.idea_of: dict[str, str] = {}  # idea aggregate id -> idea id (flag events name neither)
        self.versions: dict[str, int] = {}
        self.dirty: set[str] = set()

    def _jam(self, jam_id: str) -> JamStats:
        stats = self.jams.get(jam_id)
        if stats is None:
            stats = self.jams[jam_id] = JamStats(jam_id)
        return stats

    def apply(self, event: Event) -> bool:
        aggregate, version = event.aggregate_id, event.version
        if self.versions.get(aggregate, 0) >= version:
            return False
        self.versions[aggregate] = version
        name, p = event.type_name, event.payload
        if name == "JamCreated":
            self.by_aggregate[aggregate] = p.jam_id
        jam_id = getattr(p, "jam_id", "") or self.by_aggregate.get(aggregate, "")
        if not jam_id:
            return False
        stats = self._jam(jam_id)
        stats.events += 1
        self.dirty.add(jam_id)
        actor = event.envelope.actor
        hour = stats.hours.setdefault(hour_of(event), Bucket()) if name in ("VoteCast", "VoteWithdrawn", *POST_EVENTS) else Bucket()
        if name == "JamCreated":
            stats.title, stats.visibility = p.title, p.visibility
        elif name in ("ItemHidden", "ItemRestored", "ItemHiddenByModerator", "ItemRestoredByModerator"):
            idea_id = self.idea_of.get(aggregate)
            if idea_id is not None:  # a thread's or a reply's flags change no statistic
                (stats.hidden.add if name.startswith("ItemHidden") else stats.hidden.discard)(idea_id)
        elif name == "ForumCreated":
            stats.forum_titles[p.forum_id] = p.title
        elif name == "IdeasMerged":
            stats.merged[p.merged_idea_id] = p.into_idea_id
            stats.tally.merge(p.merged_idea_id, p.into_idea_id)
        elif name == "VoteCast":
            stats.tally.cast(p.participant, p.idea_id)
            hour.votes += 1
            self._participant(stats, hour, p.participant, actor.kind)
        elif name == "VoteWithdrawn":
            stats.tally.withdraw(p.participant, p.idea_id)
            hour.withdrawals += 1
            self._participant(stats, hour, p.participant, actor.kind)
        elif name in POST_EVENTS:
            if name == "IdeaCreated":
                stats.idea_titles[p.idea_id] = p.title
                self.by_aggregate[aggregate] = jam_id
                self.idea_of[aggregate] = p.idea_id
                text = f"{p.title}. {p.description}"
                author = p.author
            else:
                text = f"{getattr(p, 'title', '')}. {p.body}" if name == "ThreadCreated" else p.body
                author = p.author
            score = tone(text)
            stats.posts += 1
            hour.posts += 1
            hour.tone_sum += score
            hour.tone_n += 1
            if p.forum_id:
                forum = stats.forums.setdefault(p.forum_id, Bucket())
                forum.posts += 1
                forum.tone_sum += score
                forum.tone_n += 1
                if author:
                    forum.active.add(author)
            self._participant(stats, hour, author, actor.kind)
        return True

    @staticmethod
    def _participant(stats: JamStats, hour: Bucket, subject: str, kind: str) -> None:
        if not subject:
            return
        stats.participants.add(subject)
        hour.active.add(subject)
        if kind == "guest":
            stats.guests.add(subject)


def index_alias(settings: Settings) -> str:
    return settings.index_alias(NAME)


def index_settings() -> dict[str, Any]:
    return {"number_of_shards": 1, "number_of_replicas": index_replicas(), "refresh_interval": "1s"}


async def ensure_index(es: AsyncElasticsearch, settings: Settings) -> None:
    await create_counter_index(es, index_alias(settings), index_settings(), MAPPINGS)


async def flush(es: AsyncElasticsearch, alias: str, state: JamStatsState) -> int:
    written = 0
    for jam_id in list(state.dirty):
        stats = state.jams[jam_id]
        try:
            # external_gte: a replay after an erasure writes the same count of events again, with
            # the erased titles now tombstones, over the document it replaces.
            await es.index(index=alias, id=jam_id, document=stats.document(), version=stats.events, version_type="external_gte")
            written += 1
        except ConflictError:
            pass  # a snapshot at least this new is already there
        state.dirty.discard(jam_id)
    return written


async def follow(settings: Settings, es: AsyncElasticsearch, stop: asyncio.Event | None = None) -> None:
    """Replay the jams topic from the beginning, then follow it, flushing snapshots."""
    alias = index_alias(settings)
    state = JamStatsState()
    topic = settings.topic("jams")
    erased = threading.Event()
    keys = personaldata.shared_key_ring(settings, "stats", on_erased=erased.set)
    # No group: given every partition of the topic, commits nothing, starts at the beginning.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed", max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        await consumer.seek_to_beginning(*consumer.assignment())
        log.info("jam stats replaying the jams topic from the beginning", extra={"topic": topic})
        last_flush = asyncio.get_running_loop().time()
        while stop is None or not stop.is_set():
            if erased.is_set():
                # Titles in memory were opened with a key since destroyed: count everything again
                # from the log, where they now open to tombstones (as at every start).
                erased.clear()
                state = JamStatsState()
                await consumer.seek_to_beginning(*consumer.assignment())
                log.info("jam stats replaying the jams topic after an erasure", extra={"topic": topic})
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            applied = 0
            for records in batches.values():
                events = []
                for record in records:
                    try:
                        events.append(decode_event(record.value))
                    except BadEvent:
                        continue
                # Ideas, threads and replies carry their authors' text sealed (watercooler.personaldata).
                await asyncio.to_thread(open_sealed, settings, events, keys)
                for event in events:
                    try:
                        applied += state.apply(event)
                    except Exception:  # one bad event must not stop the jam's pulse
                        log.exception("jam stats could not apply an event", extra={"event_id": event.envelope.event_id})
            if applied:
                metrics.PROCESSED.labels(NAME, "written").inc(applied)
            now = asyncio.get_running_loop().time()
            if state.dirty and (now - last_flush >= FLUSH_SECONDS or not batches):
                try:
                    await flush(es, alias, state)
                except Exception:  # Elasticsearch down: the snapshot stays dirty, next round
                    log.exception("jam stats flush failed; retrying")
                    await asyncio.sleep(1.0)
                last_flush = now
    finally:
        await consumer.stop()


def register(app: faust.App, settings: Settings, es: AsyncElasticsearch) -> None:
    @app.task
    async def jam_stats() -> None:
        while True:
            try:
                await follow(settings, es)
            except asyncio.CancelledError:
                raise
            except Exception:  # Kafka unreachable: start over (the state is rebuilt from the log)
                log.exception("jam stats stopped; replaying from the start")
                await asyncio.sleep(2.0)


def topics(settings: Settings) -> list[str]:
    return [settings.topic("jams")]

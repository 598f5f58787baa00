"""Exact counts of wiki page views and media downloads, from `posts.views.v1` and
`posts.downloads.v1`.

Why the counts are exact under redelivery and SIGKILL (no faust table, no
transaction needed):

- Every fact is keyed by its target, so all facts of one page are in one
  partition, in offset order.
- A count lives in one Elasticsearch document per (kind, target, day, viewer
  department, *source partition*).  Only facts of that one partition ever add
  to it, and the document's Elasticsearch version (external) is the offset of
  the last fact it includes, plus one.
- Invariant: a document at version v includes exactly its facts with offset < v.
  A batch reads each document (realtime mget), adds only the facts whose
  offset is >= its version, and writes it back with the new version.  A fact
  seen again (redelivery after a crash anywhere: before, during or after the
  bulk write, before or after the offset commit) is below the version and
  skipped; a fact never seen is above it and added.  The consumer offset is
  committed only after the batch is written, so nothing is skipped either.
- A zombie writer from before a rebalance is refused by the version check
  (409) and the batch is re-read and re-applied.

Totals and top-N are sums over these documents (aggregations).

Client retries after a posts restart.  The posts service answers a retried request
(same ``request_id``) from memory, which a restart loses; a retry whose first attempt had
reached Kafka then appends the same facts again, with the same deterministic ``view_id``
and on the same partition (keyed by target).  The counter skips a fact whose ``view_id``
is among the last ``DEDUPE_WINDOW`` facts of its partition.  The window is a function of
the log alone: on start, and whenever a partition's records do not follow on from what
it last saw (a rebalance, a restart), it is rebuilt by reading back the ``DEDUPE_WINDOW``
records before the first one to count, so a replay makes the same decisions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError
from elasticsearch import AsyncElasticsearch

from watercooler import metrics
from watercooler.config import Settings
from watercooler.posts.v1.library_events_pb2 import ViewFact
from watercooler.projection import found_documents

log = logging.getLogger(__name__)

NAME = "view-counts"
BATCH_SIZE = 5000
BATCH_WITHIN_MS = 200
# Offsets are committed at most once a second: a commit per batch costs a round trip, and
# what a crash makes Kafka redeliver is skipped by the document versions anyway.
COMMIT_EVERY_SECONDS = 1.0
KINDS = ("views", "downloads")
# Facts per partition whose view ids a retry is checked against: at the 5,000 views/s this
# counter is built for, over six partitions, about a minute, far longer than a retry takes.
DEDUPE_WINDOW = 50_000

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "kind": {"type": "keyword"},
        "target": {"type": "keyword"},
        "space_id": {"type": "keyword"},
        "day": {"type": "date", "format": "yyyy-MM-dd"},
        "department": {"type": "keyword"},
        "partition": {"type": "integer"},
        "count": {"type": "long"},
        # Newest fact time counted here, and when it was counted: for the delay metric.
        "last_view_time": {"type": "date"},
        "counted_at": {"type": "date"},
    },
}


def fact_topic(settings: Settings, kind: str) -> str:
    name = f"posts.{kind}.v1"
    return f"{settings.namespace}.{name}" if settings.namespace else name


def index_alias(settings: Settings) -> str:
    return settings.index_alias(NAME)


async def ensure_index(es: AsyncElasticsearch, settings: Settings) -> None:
    alias = index_alias(settings)
    if await es.indices.exists_alias(name=alias):
        return
    try:
        await es.indices.create(
            index=f"{alias}-v1-initial",
            # One shard: the top-N terms aggregations are then exact, not approximate.
            settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": os.environ.get("WC_ES_REFRESH") or "1s"},
            mappings=MAPPINGS,
            aliases={alias: {"is_write_index": True}},
        )
    except Exception as exc:  # another process created it first
        if "resource_already_exists" not in str(exc):
            raise


def doc_id(kind: str, target: str, day: str, department: str, partition: int) -> str:
    return hashlib.sha1("\x1f".join((kind, target, day, department, str(partition))).encode()).hexdigest()


def plan(kind: str, records: Sequence[tuple[int, int, bytes]]) -> dict[str, dict[str, Any]]:
    """Group (partition, offset, value) records by count document, in offset order.

    Pure: returns {doc id: {fields..., "offsets": [offsets in order]}}."""
    docs: dict[str, dict[str, Any]] = {}
    for partition, offset, value in records:
        fact = ViewFact.FromString(value)
        day = fact.view_time[:10]
        key = doc_id(kind, fact.target, day, fact.department, partition)
        doc = docs.get(key)
        if doc is None:
            doc = docs[key] = {"kind": kind, "target": fact.target, "space_id": fact.space_id, "day": day, "department": fact.department, "partition": partition, "offsets": [], "last_view_time": fact.view_time}
        doc["offsets"].append(offset)
        doc["last_view_time"] = max(doc["last_view_time"], fact.view_time)
    return docs


async def apply_batch(es: AsyncElasticsearch, alias: str, kind: str, records: Sequence[tuple[int, int, bytes]]) -> tuple[int, int]:
    """Add the batch to the counts exactly once; returns (counted, skipped as already counted)."""
    docs = plan(kind, records)
    if not docs:  # every fact of the batch was a retried copy
        return 0, 0
    while True:
        found = found_documents(await es.mget(index=alias, ids=list(docs), realtime=True))
        current = {doc_id: (item["_source"]["count"], item["_version"]) for doc_id, item in found.items()}
        operations: list[dict[str, Any]] = []
        counted = skipped = 0
        now = dt.datetime.now(dt.UTC).isoformat()
        for key, doc in docs.items():
            count, version = current.get(key, (0, 0))
            new = [o for o in doc["offsets"] if o >= version]
            skipped += len(doc["offsets"]) - len(new)
            if not new:
                continue
            counted += len(new)
            source = {k: v for k, v in doc.items() if k != "offsets"}
            source.update(count=count + len(new), counted_at=now)
            operations.append({"index": {"_index": alias, "_id": key, "version": max(new) + 1, "version_type": "external"}})
            operations.append(source)
        if not operations:
            return counted, skipped
        response = await es.bulk(operations=operations)
        if not response["errors"]:
            return counted, skipped
        conflicts = [i["index"] for i in response["items"] if i["index"].get("status") == 409]
        others = [i["index"]["error"] for i in response["items"] if i["index"].get("error") and i["index"].get("status") != 409]
        if others:
            raise RuntimeError(f"count write to {alias} failed: {others[0]}")
        # Someone else (a consumer from before a rebalance) moved a document on: re-read, re-apply.
        log.warning("count documents moved concurrently; re-applying the batch", extra={"conflicts": len(conflicts)})


class RecentViewIds:
    """The view ids of the last ``size`` facts of one partition, and the offset after them."""

    def __init__(self, size: int = DEDUPE_WINDOW, next_offset: int = 0):
        self.size, self.next_offset = size, next_offset
        self._order: deque[str] = deque()
        self._count: dict[str, int] = {}

    def __contains__(self, view_id: str) -> bool:
        return view_id in self._count

    def add(self, view_id: str) -> None:
        self._order.append(view_id)
        self._count[view_id] = self._count.get(view_id, 0) + 1
        if len(self._order) > self.size:
            old = self._order.popleft()
            left = self._count[old] - 1
            if left:
                self._count[old] = left
            else:
                del self._count[old]

    def first_sightings(self, records: Sequence[Any]) -> list[Any]:
        """The records (offset order, following on from ``next_offset``) whose view id the window
        has not seen; every record enters the window."""
        kept = []
        for record in records:
            view_id = ViewFact.FromString(record.value).view_id
            if not view_id or view_id not in self:
                kept.append(record)
            if view_id:
                self.add(view_id)
            self.next_offset = record.offset + 1
        return kept


async def recent_view_ids(settings: Settings, tp: Any, before: int, size: int = DEDUPE_WINDOW) -> RecentViewIds:
    """The window of the ``size`` facts of ``tp`` before offset ``before``, read back from Kafka."""
    window = RecentViewIds(size, next_offset=before)
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=f"stats-{NAME}-window", enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([tp])
        first = (await reader.beginning_offsets([tp]))[tp]
        start = max(first, before - size)
        if start >= before:
            return window
        reader.seek(tp, start)
        window.next_offset = start
        while window.next_offset < before:
            got = await reader.getmany(tp, timeout_ms=1000, max_records=5000)
            window.first_sightings([r for r in got.get(tp, []) if r.offset < before])
            if not got and await reader.position(tp) >= before:
                break
        window.next_offset = before
        return window
    finally:
        await reader.stop()


async def follow(settings: Settings, es: AsyncElasticsearch, stop: asyncio.Event | None = None) -> None:
    """Consume both fact topics as one consumer group and count them, batch by batch.

    A plain aiokafka group consumer rather than a faust agent: faust's per-event
    machinery capped counting at ~2,300 views/s here, far below the 5,000/s target,
    while ``getmany`` hands over thousands of records at once.  Delivery is the same
    at-least-once (offsets committed only after the batch is written), and the
    offset-versioned documents above make it exact."""
    alias = index_alias(settings)
    kinds = {fact_topic(settings, kind): kind for kind in KINDS}
    consumer = AIOKafkaConsumer(
        *kinds,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group(f"search-stats.{NAME}"),
        client_id=f"stats-{NAME}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A killed counter's partitions move to its successor within seconds.
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    pending: dict[Any, int] = {}
    windows: dict[Any, RecentViewIds] = {}
    last_commit = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=BATCH_WITHIN_MS, max_records=BATCH_SIZE)
            if not batches:
                if time.monotonic() - last_commit >= COMMIT_EVERY_SECONDS:
                    await _commit(consumer, pending)
                    last_commit = time.monotonic()
                continue
            by_kind: dict[str, list[tuple[int, int, bytes]]] = {}
            retried: dict[str, int] = {}
            for tp, records in batches.items():
                window = windows.get(tp)
                if window is None or window.next_offset != records[0].offset:
                    window = windows[tp] = await recent_view_ids(settings, tp, records[0].offset)
                kept = window.first_sightings(records)
                retried[kinds[tp.topic]] = retried.get(kinds[tp.topic], 0) + len(records) - len(kept)
                by_kind.setdefault(kinds[tp.topic], []).extend((tp.partition, r.offset, r.value) for r in kept)
            for kind, count in retried.items():
                metrics.PROCESSED.labels(f"{NAME}.{kind}", "retried_fact").inc(count)
            for kind, records in by_kind.items():
                delay = 0.5
                while True:
                    try:
                        counted, skipped = await apply_batch(es, alias, kind, records)
                        break
                    except Exception:  # Elasticsearch down: hold the batch (and the offsets), back off
                        log.exception("counting batch failed; retrying", extra={"kind": kind})
                        await asyncio.sleep(delay)
                        delay = min(10.0, delay * 2)
                metrics.PROCESSED.labels(f"{NAME}.{kind}", "written").inc(counted)
                metrics.PROCESSED.labels(f"{NAME}.{kind}", "duplicate").inc(skipped)
            for tp, records in batches.items():
                pending[tp] = records[-1].offset + 1
            if time.monotonic() - last_commit >= COMMIT_EVERY_SECONDS:
                await _commit(consumer, pending)
                last_commit = time.monotonic()
        await _commit(consumer, pending)
    finally:
        await consumer.stop()


async def _commit(consumer: AIOKafkaConsumer, pending: dict[Any, int]) -> None:
    if not pending:
        return
    try:
        await consumer.commit(dict(pending))
    except (CommitFailedError, IllegalStateError):
        # Rebalanced away meanwhile: the new owner re-reads from the last commit, and the
        # document versions skip what was already counted.
        log.warning("offset commit refused after a rebalance; redelivered facts will be skipped")
    pending.clear()


def register(app: faust.App, settings: Settings, es: AsyncElasticsearch) -> None:
    """Adds the counting task to the shared stats app."""

    @app.task
    async def view_counts() -> None:
        while True:
            try:
                await follow(settings, es)
            except asyncio.CancelledError:
                raise
            except Exception:  # Kafka unreachable: join the group again
                log.exception("view counting stopped; rejoining")
                await asyncio.sleep(2.0)


def topics(settings: Settings) -> list[str]:
    return [fact_topic(settings, k) for k in KINDS]

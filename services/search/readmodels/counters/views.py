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

Client retries (same ``request_id``).  The posts service answers a retried request from
memory, which a restart loses and another replica never had; a retry whose first attempt had
reached Kafka then appends the same facts again, with the same deterministic ``view_id``
(a name-based UUID of caller, request_id and index) and on the same partition (keyed by target).  Clients may
retry for ``RETRY_WINDOW_SECONDS`` (an hour): a copy whose first fact is at most that much
older (by Kafka record time) is skipped, whichever worker reads it.  The view ids seen are
kept in Elasticsearch, not in the worker, one document per view id (``SeenViewIds``), so any
worker after a rebalance or restart decides the same without reading an hour of facts back:

- Documents live in one index per window-long bucket of record time; a fact is looked up in
  its own bucket and both neighbours (so a copy up to one window later is always found, one
  up to two windows later may be; and a producer clock a little behind does not hide a
  copy across a bucket boundary), and its document is created (``op_type=create``) in its
  own bucket *before* the batch is counted.  A fact that finds its own document (same
  partition and offset) is being replayed after a crash and counts; the offset versions of the
  count documents keep that exact.  A fact that finds another is a copy and is skipped.
- Buckets older than ``KEPT_BUCKETS`` windows are dropped whole (a cheap index delete),
  which bounds the store; a counter more than that far behind the log would count late
  copies again.
- Only view ids a retry can repeat are stored: a request without a request_id gets random
  view ids, and a retry of it is a new view by definition.

Cost, measured on the development machine (2 cores, shared): see ``SeenViewIds``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError
from elasticsearch import AsyncElasticsearch

from watercooler import metrics, retries
from watercooler.config import Settings
from watercooler.posts.v1.library_events_pb2 import ViewFact
from watercooler.projection import DocumentsUnreadable, found_documents, index_replicas

from .. import indices
from . import create_counter_index

log = logging.getLogger(__name__)

NAME = indices.VIEW_COUNTS
BATCH_SIZE = 5000
BATCH_WITHIN_MS = 200
# Offsets are committed at most once a second: a commit per batch costs a round trip, and
# what a crash makes Kafka redeliver is skipped by the document versions anyway.
COMMIT_EVERY_SECONDS = 1.0
KINDS = indices.VIEW_KINDS
# How long clients may retry a view or download with the same request_id and have it counted
# once (stated in protos/watercooler/posts/v1/wiki.proto and media.proto, and docs/search.md).
RETRY_WINDOW_SECONDS = 3600
# Buckets (windows) of seen view ids kept, the newest included: a copy is looked for in its
# own bucket and its two neighbours, and a counter lagging the log by up to three windows
# still finds what it needs.
KEPT_BUCKETS = 6
SEEN_NAME = "view-ids"
SEEN_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {"partition": {"type": "integer", "index": False}, "offset": {"type": "long", "index": False}},
}

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


def index_alias(settings: Settings) -> str:
    return settings.index_alias(NAME)


def index_settings() -> dict[str, Any]:
    # One shard: the top-N terms aggregations are then exact, not approximate.
    return {"number_of_shards": 1, "number_of_replicas": index_replicas(), "refresh_interval": os.environ.get("WC_ES_REFRESH") or "1s"}


async def ensure_index(es: AsyncElasticsearch, settings: Settings) -> None:
    await create_counter_index(es, index_alias(settings), index_settings(), MAPPINGS)


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


@dataclass(frozen=True)
class Sighting:
    """Where a view id was first seen: the fact at this partition and offset."""

    partition: int
    offset: int


def retryable(view_id: str) -> bool:
    """A view id a retry can repeat: a name-based UUID (version 5, derived from caller,
    request_id and index), or ``{caller}/{request_id}/{index}`` as facts before 2026-12 have it
    (a replay decides as the first count did).  A request without a request_id gets random
    UUIDs (version 4), and a retry of it is a new view by definition."""
    if "/" in view_id:
        return True
    try:
        return uuid.UUID(view_id).version == 5
    except ValueError:
        return False


def seen_id(kind: str, view_id: str) -> str:
    # Hashed: a view id embeds a caller-chosen request_id, and _id is limited to 512 bytes.
    return hashlib.sha1(f"{kind}\x1f{view_id}".encode()).hexdigest()


def bucket_of(timestamp_ms: int, window_seconds: int = RETRY_WINDOW_SECONDS) -> int:
    return timestamp_ms // (window_seconds * 1000)


def neighbour_buckets(bucket: int) -> tuple[int, int, int]:
    """Where a fact looks for an earlier copy: its own bucket, the one before, and the one after
    (record times come from the producers' clocks, so a later copy may carry an earlier time)."""
    return bucket - 1, bucket, bucket + 1


def first_sightings(
    kind: str, records: Sequence[Any], known: dict[tuple[int, str], Sighting], window_seconds: int = RETRY_WINDOW_SECONDS
) -> tuple[list[Any], dict[tuple[int, str], Sighting]]:
    """Which of ``records`` (offset order within each partition) count, given the sightings
    already stored, by (bucket, seen id).  Pure: returns (records to count, sightings to store).

    A fact counts when no other fact with its view id was seen in the neighbouring buckets, or
    when the one seen is itself (a replay after a crash: the count documents' versions keep it
    from counting twice), or only later offsets of its own partition were (it is the first)."""
    known = dict(known)
    kept: list[Any] = []
    created: dict[tuple[int, str], Sighting] = {}
    for record in records:
        view_id = ViewFact.FromString(record.value).view_id
        if not retryable(view_id):
            kept.append(record)
            continue
        key, bucket, own = seen_id(kind, view_id), bucket_of(record.timestamp, window_seconds), Sighting(record.partition, record.offset)
        seen = [known[(b, key)] for b in neighbour_buckets(bucket) if (b, key) in known]
        if not seen:
            known[(bucket, key)] = created[(bucket, key)] = own
            kept.append(record)
        elif own in seen or all(s.partition == own.partition and s.offset > own.offset for s in seen):
            kept.append(record)
        # else: a copy of a view already counted
    return kept, created


class SeenViewIds:
    """The retryable view ids counted in the last ``RETRY_WINDOW_SECONDS`` or more, in
    Elasticsearch (see the module docstring): shared by every worker, nothing to rebuild on
    a rebalance, and bounded by dropping whole buckets.

    Cost, measured here (2 cores shared with other work, Elasticsearch on the same machine,
    batches of 5,000 facts with request ids, 100,000 in all): about 19,500 facts/s; per fact
    22 us of worker CPU and 51 us of Elasticsearch CPU when first seen (17 + 29 us when a
    replay finds them), so about 0.4 of a core at 5,000 retryable views/s; 78 B of disk a view
    id (~1.4 GB an hour at that rate, six buckets kept); the worker holds only the names of
    the buckets it created.  Facts without a request_id (the benchmark's) cost 0.3 us and no
    Elasticsearch call."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, window_seconds: int = RETRY_WINDOW_SECONDS, prefix: str | None = None):
        self.es, self.window_seconds = es, window_seconds
        # A rebuild keeps its own store (``prefix``): it decides every fact of the log again.
        self.prefix = prefix or settings.index_alias(SEEN_NAME)
        self._ready: set[int] = set()

    def index(self, bucket: int) -> str:
        return f"{self.prefix}-{bucket}"

    async def first_sightings(self, kind: str, records: Sequence[Any]) -> list[Any]:
        """The records to count; their sightings are stored before this returns."""
        wanted = {
            (b, seen_id(kind, view_id))
            for record in records
            if retryable(view_id := ViewFact.FromString(record.value).view_id)
            for b in neighbour_buckets(bucket_of(record.timestamp, self.window_seconds))
        }
        if not wanted:
            return list(records)
        await self._ensure_buckets({b for b, _ in wanted})
        wanted_list = sorted(wanted)
        while True:
            response = await self.es.mget(docs=[{"_index": self.index(b), "_id": key} for b, key in wanted_list], realtime=True)
            unreadable = [item for item in response["docs"] if item.get("error")]
            if unreadable:  # never taken for "not seen": that would count a copy
                raise DocumentsUnreadable(f"{len(unreadable)} view ids unreadable: {unreadable[0]['error']}")
            known = {
                (b, key): Sighting(item["_source"]["partition"], item["_source"]["offset"])
                for (b, key), item in zip(wanted_list, response["docs"], strict=True)
                if item.get("found")
            }
            kept, created = first_sightings(kind, records, known, self.window_seconds)
            if not created:
                return kept
            operations: list[dict[str, Any]] = []
            for (b, key), sighting in created.items():
                operations.append({"create": {"_index": self.index(b), "_id": key}})
                operations.append({"partition": sighting.partition, "offset": sighting.offset})
            result = await self.es.bulk(operations=operations)
            if not result["errors"]:
                return kept
            others = [i["create"]["error"] for i in result["items"] if i["create"].get("error") and i["create"].get("status") != 409]
            if others:
                raise RuntimeError(f"view id write to {self.prefix} failed: {others[0]}")
            # A worker from before a rebalance stored some of them meanwhile: decide again.
            log.warning("view ids stored concurrently; deciding the batch again")

    async def _ensure_buckets(self, buckets: set[int]) -> None:
        missing = buckets - self._ready
        if not missing:
            return
        for bucket in sorted(missing):
            try:
                await self.es.indices.create(
                    index=self.index(bucket),
                    # Read only by realtime mget, never searched: no need to refresh often.
                    settings={"number_of_shards": 1, "number_of_replicas": index_replicas(), "refresh_interval": "30s"},
                    mappings=SEEN_MAPPINGS,
                )
            except Exception as exc:  # another worker created it first
                if "resource_already_exists" not in str(exc):
                    raise
            self._ready.add(bucket)
        await self._drop_buckets_before(max(buckets) - KEPT_BUCKETS + 1)

    async def _drop_buckets_before(self, oldest_kept: int) -> None:
        names = await self.es.indices.get(index=f"{self.prefix}-*", allow_no_indices=True, expand_wildcards="open")
        old = [name for name in names if name.rsplit("-", 1)[-1].isdigit() and int(name.rsplit("-", 1)[-1]) < oldest_kept]
        if old:
            await self.es.indices.delete(index=",".join(old), ignore_unavailable=True)
            self._ready -= {int(name.rsplit("-", 1)[-1]) for name in old}
            log.info("dropped view id buckets past the retry window", extra={"indices": len(old)})


async def follow(settings: Settings, es: AsyncElasticsearch, stop: asyncio.Event | None = None) -> None:
    """Consume both fact topics as one consumer group and count them, batch by batch.

    A plain aiokafka group consumer rather than a faust agent: faust's per-event
    machinery capped counting at ~2,300 views/s here, far below the 5,000/s target,
    while ``getmany`` hands over thousands of records at once.  Delivery is the same
    at-least-once (offsets committed only after the batch is written), and the
    offset-versioned documents above make it exact."""
    alias = index_alias(settings)
    kinds = {settings.fact_topic(kind): kind for kind in KINDS}
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
    seen = SeenViewIds(es, settings)
    last_commit = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=BATCH_WITHIN_MS, max_records=BATCH_SIZE)
            if not batches:
                if time.monotonic() - last_commit >= COMMIT_EVERY_SECONDS:
                    await _commit(consumer, pending)
                    last_commit = time.monotonic()
                continue
            by_kind: dict[str, list[Any]] = {}
            for tp, records in batches.items():
                by_kind.setdefault(kinds[tp.topic], []).extend(records)
            for kind, records in by_kind.items():
                async def count(kind: str = kind, records: list[Any] = records) -> tuple[list[Any], int, int]:
                    kept = await seen.first_sightings(kind, records)
                    return (kept, *await apply_batch(es, alias, kind, [(r.partition, r.offset, r.value) for r in kept]))

                # Elasticsearch down: hold the batch (and the offsets), back off, for as long as it lasts.
                kept, counted, skipped = await retries.until_passed(
                    count, lambda error, kind=kind: log.error("counting batch failed; retrying", exc_info=error, extra={"kind": kind}))
                metrics.PROCESSED.labels(f"{NAME}.{kind}", "retried_fact").inc(len(records) - len(kept))
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
    return [settings.fact_topic(k) for k in KINDS]

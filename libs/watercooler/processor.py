"""Stream processors on faust-streaming: one agent for all projections, events in batches.

Delivery is at least once: faust commits a record's offset only after the
agent has finished with the batch it is in (``take_events`` acks after the
batch body).  Projections are idempotent by aggregate version, so a record
seen twice changes nothing.  A record a projection cannot handle goes to the
dead-letter topic with the reason, and the stream goes on.  When
Elasticsearch is down or refusing load the agent retries the same batch with
back-off for as long as that lasts; faust stops fetching once its buffers are
full, so nothing is dropped.  A batch that fails for any other reason is tried
``Settings.processor_max_attempts`` times, then split in halves applied in
order, down to the record at fault, which is parked in the dead-letter topic
while the rest is projected: one bad record no longer stalls its partition.
Parked records stay in the topic; ``watercooler dlq-replay`` applies them
again once the fault is fixed (README, Troubleshooting).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import elasticsearch
import faust
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Histogram

from . import faust_offsets, gc_tuning, metrics, retries
from .config import Settings
from .envelope import BadEvent, read_envelope
from .events.v1.envelope_pb2 import DeadLetter
from .kafka import ensure_topics
from .projection import (
    BatchResult,
    DocumentProjection,
    DocumentsUnreadable,
    JoinedBulks,
    es_client,
    from_the_beginning,
    open_afresh,
    opened_once,
    partition_halves,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_WITHIN_SECONDS = 0.1

# Where a processor's share of freshness goes (benchmarks/freshness.py reads these): how old a
# batch's oldest record is when the agent starts on it (since the relay sent it: fetch and
# buffering), how many records it holds, and how long Elasticsearch takes with it.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_AGE_SECONDS = Histogram("wc_processor_batch_age_seconds", "Age of a batch's oldest record when the agent starts on it", ["processor"], buckets=_SECONDS)
BATCH_WRITE_SECONDS = Histogram("wc_processor_batch_write_seconds", "Time to apply a batch to Elasticsearch", ["processor"], buckets=_SECONDS)
BATCH_RECORDS = Histogram("wc_processor_batch_records", "Records per batch", ["processor"], buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500))


def _observe_batch(processor: str, records: Sequence[faust.types.EventT]) -> float:
    now = time.time()
    stamps = [r.message.timestamp for r in records if r.message.timestamp]
    if stamps:
        BATCH_AGE_SECONDS.labels(processor).observe(max(0.0, now - min(stamps)))
    BATCH_RECORDS.labels(processor).observe(len(records))
    return now


def faust_app(name: str, settings: Settings, commit_every: int = BATCH_SIZE) -> faust.App:
    """The faust App every Watercooler worker runs: raw bytes in and out, offsets committed
    only after a batch is handled, and a killed worker replaced within seconds."""
    # faust makes only the last level of its data dir.
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    # faust_offsets.App: faust's own commit computation falls behind on transactional topics.
    return faust_offsets.App(
        settings.consumer_group(name),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # faust keeps a per-app folder even with memory tables; under the data dir, not the cwd.
        datadir=str(settings.data_dir / "faust" / "{conf.name}-data"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=commit_every,
        broker_commit_interval=0.5,
        # A worker killed without goodbye is replaced within seconds, not a minute.
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        # On a rebalance, do not wait for the records already taken to be handled: with a
        # batch in hand that wait outlasted the rebalance, members were dropped and the group
        # rebalanced again and again (measured: 2 workers indexing 6x slower than 1). Records
        # handled after the hand-over are redeliveries the version check absorbs.
        stream_wait_empty=False,
    )


def create_app(name: str, projection_classes: Sequence[type[DocumentProjection]], settings: Settings) -> faust.App:
    app = faust_app(name, settings)
    es = es_client(settings)
    # The projections of a batch write at the same moment: their bulks travel as one request.
    joined = JoinedBulks(es)
    dead_letters = app.topic(settings.dead_letter_topic, key_serializer="raw", value_serializer="raw")

    async def send_dead_letter(processor: str, record: faust.types.EventT, reason: str, cause: str) -> None:
        failed_at = Timestamp()
        failed_at.FromDatetime(dt.datetime.now(dt.UTC).replace(tzinfo=None))
        letter = DeadLetter(
            processor=processor,
            source_topic=record.message.topic,
            source_partition=record.message.partition,
            source_offset=record.message.offset,
            reason=reason,
            failed_at=failed_at,
            original_value=record.message.value or b"",
            original_key=record.message.key or b"",
        )
        # Waits for the broker's acknowledgement: the batch's offsets are committed after this.
        await (await dead_letters.send(key=record.message.key, value=letter.SerializeToString()))
        metrics.PROCESSED.labels(processor, "dead_lettered").inc()
        metrics.DEAD_LETTERED.labels(processor, cause).inc()
        log.warning("dead-lettered a record", extra={"processor": processor, "topic": record.message.topic, "partition": record.message.partition,
                                                     "offset": record.message.offset, "cause": cause, "reason": reason,
                                                     "dead_letter_topic": settings.dead_letter_topic})

    projections = [projection_class(settings) for projection_class in projection_classes]
    topics = {projection.name: frozenset(settings.topic(s) for s in projection.sources) for projection in projections}
    source = app.topic(*sorted(set().union(*topics.values())), key_serializer="raw", value_serializer="raw")

    async def project(projection: DocumentProjection, records: list[faust.types.EventT], passed_over: int) -> None:
        metrics.PROCESSED.labels(projection.name, "other_aggregate").inc(passed_over)
        if not records:
            return
        began = _observe_batch(projection.name, records)
        result = await _apply_by_partition_halves(projection, joined, records, settings.processor_max_attempts)
        BATCH_WRITE_SECONDS.labels(projection.name).observe(time.time() - began)
        for record, reason in result.failed:
            await send_dead_letter(projection.name, record, reason, "bad_event")
        for record, reason in result.kept_failing:
            await send_dead_letter(projection.name, record, reason, "kept_failing")
        metrics.PROCESSED.labels(projection.name, "written").inc(result.written)
        metrics.PROCESSED.labels(projection.name, "duplicate").inc(result.skipped_duplicates)
        metrics.PROCESSED.labels(projection.name, "other_aggregate").inc(result.other_aggregates)

    # One agent for every projection: faust's per-record work (delivering each record to an
    # agent's stream, buffering it, acking it) was done once per projection reading the topic,
    # thirteen times for a profile event, and was about 40 % of this process's CPU. Each batch
    # is handed to the projections at once, each given only the records it keeps (``route``);
    # a record is acked when all of them are done with it, as before.
    async def run_projections(stream):
        async for records in stream.take_events(BATCH_SIZE, within=settings.processor_batch_within or BATCH_WITHIN_SECONDS):
            routed = route(projections, topics, records, lambda r: r.message.topic, lambda r: r.message.value)
            with opened_once():  # a sealed value two projections open is decrypted once
                outcomes = await asyncio.gather(*(project(projection, kept, passed_over) for projection, kept, passed_over in routed), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome  # as a projection's own agent did: the batch is not acked
            last = _last_offsets(records)
            for projection in projections:
                _record_lag(app, projection.name, last, topics[projection.name])

    app.agent(source, name=f"{name}.projections")(run_projections)

    @app.on_before_shutdown.connect
    async def close_es(app_: faust.App, **_: object) -> None:
        await es.close()

    app.projections = projections  # for the entry point
    app.es = es
    return app


# A projection's batch smaller than this is applied whole: split, it made twice the Elasticsearch
# requests (each a fixed cost in this process and the server) for an overlap worth little when
# the computing is that short, and the projections of a batch overlap with each other anyway.
HALVES_FROM = 100


async def _apply_by_partition_halves(projection: DocumentProjection, es, records, max_attempts: int) -> BatchResult:
    """The batch in two groups of whole partitions, applied at once (projection.partition_halves)."""
    if len(records) < HALVES_FROM:
        return await _apply_with_retry(projection, es, records, max_attempts)
    halves = partition_halves(records, lambda r: (r.message.topic, r.message.partition))
    if len(halves) < 2:
        return await _apply_with_retry(projection, es, records, max_attempts)
    results = await asyncio.gather(*(_apply_with_retry(projection, es, half, max_attempts) for half in halves))
    merged = BatchResult()
    for result in results:
        merged.add(result)
    return merged


# Elasticsearch errors that say nothing about the records: unreachable, overloaded, a shard or
# the index not there yet. A batch failing with them is held for as long as they last.
TRANSIENT_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504})
TRANSIENT_ERROR_TYPES = ("es_rejected_execution_exception", "circuit_breaking_exception", "unavailable_shards_exception",
                         "no_shard_available_action_exception", "cluster_block_exception", "index_not_found_exception", "node_not_connected_exception")


def transient(exc: BaseException) -> bool:
    if isinstance(exc, (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout, DocumentsUnreadable, asyncio.TimeoutError, OSError)):
        return True
    if isinstance(exc, elasticsearch.ApiError) and exc.meta.status in TRANSIENT_STATUSES:
        return True
    if getattr(exc, "code", None) == grpc.StatusCode.UNAVAILABLE:  # a service it asks (the personal data keys) away
        return True
    # A bulk item's refusal reaches us as the projection's RuntimeError naming Elasticsearch's error type.
    return isinstance(exc, RuntimeError) and any(name in str(exc) for name in TRANSIENT_ERROR_TYPES)


async def _apply_with_retry(projection: DocumentProjection, es, records, max_attempts: int) -> BatchResult:
    """Apply the batch, retrying with back-off (``retries``). A transient failure (``transient``)
    is retried for as long as it lasts: Elasticsearch down must not empty the stream into the
    dead-letter topic. Any other failure ``max_attempts`` times; then the batch is split in two
    halves applied one after the other (each partition's order kept), down to the record at
    fault, which is returned in ``kept_failing`` for the dead-letter topic."""
    failures = 0

    def failed(error: BaseException) -> None:
        nonlocal failures
        open_afresh()
        if not transient(error):
            failures += 1
        log.error("projection batch failed; retrying" if failures < max_attempts else "projection batch kept failing", exc_info=error,
                  extra={"projection": projection.name, "records": len(records), "attempt": failures, "max_attempts": max_attempts})

    try:
        return await retries.until_passed(lambda: projection.apply_batch(es, records, lambda r: r.message.value), failed, stop=lambda: failures >= max_attempts)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
    if len(records) == 1:
        return BatchResult(kept_failing=[(records[0], f"failed {failures} times: {reason}")])
    middle = len(records) // 2
    first = await _apply_with_retry(projection, es, records[:middle], max_attempts)
    return first.add(await _apply_with_retry(projection, es, records[middle:], max_attempts))


def route(projections: Sequence[DocumentProjection], topics: dict[str, frozenset[str]], records: Sequence[Any],
          topic_of: Callable[[Any], str], value_of: Callable[[Any], bytes]) -> list[tuple[DocumentProjection, list[Any], int]]:
    """Each projection with the batch's records it keeps (in their order), and how many records
    of its topics it does not (another projection's aggregates). Each record's envelope is read
    once here, not once per projection reading its topic; the projections decode only what
    they keep. A record that is no readable envelope goes to every projection of its topic,
    which dead-letters it as before."""
    kept: list[list[Any]] = [[] for _ in projections]
    read = [0] * len(projections)  # records of the projection's topics
    readers: dict[str, list[int]] = {}  # topic -> the projections reading it
    keeping: dict[tuple[str, str, str], list[int]] = {}  # (topic, aggregate type, event type) -> those keeping it
    for record in records:
        topic = topic_of(record)
        if topic not in readers:
            readers[topic] = [n for n, projection in enumerate(projections) if topic in topics[projection.name]]
        for n in readers[topic]:
            read[n] += 1
        try:
            envelope = read_envelope(value_of(record))
        except BadEvent:
            to = readers[topic]
        else:
            key = (topic, envelope.aggregate_type, envelope.event_type)
            to = keeping.get(key)
            if to is None:
                to = keeping[key] = [n for n in readers[topic] if projections[n].keeps(envelope)]
        for n in to:
            kept[n].append(record)
    return [(projection, kept[n], read[n] - len(kept[n])) for n, projection in enumerate(projections)]


def _last_offsets(records: Sequence[faust.types.EventT]) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for record in records:
        last[(record.message.topic, record.message.partition)] = record.message.offset
    return last


def _record_lag(app: faust.App, processor: str, last: dict[tuple[str, int], int], topics: frozenset[str]) -> None:
    for (topic, partition), offset in last.items():
        if topic not in topics:
            continue
        try:
            highwater = app.consumer.highwater(faust.types.TP(topic, partition))
        except Exception:  # not assigned any more after a rebalance
            continue
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(processor, topic, str(partition)).set(max(0, highwater - offset - 1))


def run(app: faust.App, settings: Settings, metrics_port: int = 0) -> None:
    """Prepare topics and indices, then run the faust worker until SIGTERM/SIGINT."""
    from faust.worker import Worker

    services = tuple(sorted({s for p in app.projections for s in p.sources}))
    ensure_topics(settings, services)

    async def prepare() -> None:
        es = es_client(settings)
        try:
            for projection in app.projections:
                await projection.ensure_index(es)
        finally:
            await es.close()

    # Not asyncio.run(): it leaves no current loop behind, and faust's worker wants one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare())
    metrics.serve(metrics_port)
    gc_tuning.tune_for_service()
    worker = Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False, override_logging=False, quiet=True)
    worker.execute_from_commandline()


@dataclass
class Replayed:
    """What a replay of the dead-letter topic did for one letter."""

    processor: str
    source: str  # topic[partition]@offset of the original record
    outcome: str  # "applied", or why it failed again


async def replay_dead_letters(settings: Settings, projections: Sequence[DocumentProjection], only: str = "") -> list[Replayed]:
    """Apply the dead-lettered records of ``projections`` (the processor ``only``, if given)
    again, one at a time, after the fault that parked them is fixed. The letters stay in the
    topic: projections are idempotent (aggregate versions, notification ids), so a letter
    applied twice, or one whose aggregate moved on since, changes nothing. A letter that fails
    again is reported and left for another try."""
    from aiokafka import AIOKafkaConsumer

    by_name = {projection.name: projection for projection in projections if not only or projection.name == only}
    consumer = AIOKafkaConsumer(settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    es = es_client(settings)
    done: list[Replayed] = []
    await consumer.start()
    try:
        _, end = await from_the_beginning(consumer)
        remaining = {tp: offset for tp, offset in end.items() if await consumer.position(tp) < offset}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for record in records:
                    if record.offset >= remaining.get(tp, 0):
                        continue
                    letter = DeadLetter.FromString(record.value)
                    projection = by_name.get(letter.processor)
                    if projection is None:
                        continue
                    source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
                    try:
                        result = await projection.apply_batch(es, [letter], lambda kept: kept.original_value)
                        if result.failed:
                            outcome = f"failed again: {result.failed[0][1]}"
                        elif result.skipped_duplicates:  # its aggregate's later events were applied meanwhile
                            outcome = f"not applied: a later version is in the index (watercooler reindex {projection.name} replays all in order)"
                        else:
                            outcome = "applied"
                    except Exception as exc:  # still at fault: reported, the letter stays
                        outcome = f"failed again: {type(exc).__name__}: {exc}"
                    log.info("replayed a dead letter", extra={"processor": letter.processor, "source": source, "outcome": outcome})
                    done.append(Replayed(letter.processor, source, outcome))
            remaining = {tp: offset for tp, offset in remaining.items() if await consumer.position(tp) < offset}
    finally:
        await consumer.stop()
        await es.close()
    return done

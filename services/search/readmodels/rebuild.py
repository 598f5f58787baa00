"""`watercooler reindex <name>`: rebuild one read model from the log into a new index, then
switch its alias. The same for a document projection (``DocumentProjection.rebuild``) and for
a counter (below), so every index the search service reads can be rebuilt without emptying it.

A counter's rebuild, like a projection's:
- replays its topics from the beginning with a consumer of its own (no group: it is given
  every partition and commits nothing), so the live counter's committed offsets and state are
  untouched, into ``<alias>-v1-<stamp>``, which nobody reads meanwhile;
- switches the alias to the new index in one step, then replays what arrived since the end
  offsets it started from: the live counter wrote that to the old index until the switch, and
  writes to the new one after it. Both write count documents with an external version (the
  offset of the last fact counted, or the events applied to a jam), so the catch-up and the
  live counter can write the same facts in either order and each counts once.
- The view counter's retried-copy store (``SeenViewIds``) is decided again from the log in a
  store of the rebuild's own, dropped at the end: the live store holds only the last hours, and
  the live worker's bucket drops must not touch the rebuild's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import AsyncElasticsearch

from watercooler.config import Settings
from watercooler.envelope import BadEvent
from watercooler.projection import DocumentProjection, by_name, from_the_beginning, open_sealed

from . import indices
from .counters import jams as jam_stats
from .counters import views as view_counts
from .projections import ALL

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
COUNTERS = (indices.VIEW_COUNTS, indices.JAM_STATS)
BATCH_SIZE = 5000


def names() -> list[str]:
    """Every read model ``watercooler reindex`` rebuilds."""
    return [p.name for p in ALL] + list(COUNTERS)


def projection_named(name: str) -> type[DocumentProjection]:
    return by_name(ALL, name)


async def stale_projections(es: AsyncElasticsearch, settings: Settings) -> list[type[DocumentProjection]]:
    """The projections whose index was built by an older ``schema_version`` than the code's
    (a projection whose documents changed shape: they are rebuilt from the log, never patched)."""
    return [cls for cls in ALL if (stored := await cls(settings).stored_schema_version(es)) is not None and stored < cls.schema_version]


async def rebuild(es: AsyncElasticsearch, settings: Settings, name: str, progress: Progress | None = None) -> dict[str, Any]:
    """Rebuild the read model ``name`` (see ``names``); KeyError for an unknown name.
    Returns {"projection": name, "index": new, "previous_index": old, "events_replayed": n}."""
    if name == indices.VIEW_COUNTS:
        return await rebuild_view_counts(es, settings, progress)
    if name == indices.JAM_STATS:
        return await rebuild_jam_stats(es, settings, progress)
    return await projection_named(name)(settings).rebuild(es, progress=progress)


# --- counters ------------------------------------------------------------------------------------
def _new_index(alias: str) -> str:
    return f"{alias}-v1-{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S%f')}"


async def _current_index(es: AsyncElasticsearch, alias: str) -> str | None:
    if not await es.indices.exists_alias(name=alias):
        return None
    found = await es.indices.get_alias(name=alias)
    return next(iter(found.body), None)


async def _switch(es: AsyncElasticsearch, alias: str, new_index: str, refresh_interval: str) -> str | None:
    """Point ``alias`` (reads and writes) at the complete, refreshed ``new_index``; return the old one."""
    await es.indices.put_settings(index=new_index, settings={"refresh_interval": refresh_interval})
    await es.indices.refresh(index=new_index)
    old_index = await _current_index(es, alias)
    actions: list[dict[str, Any]] = [{"add": {"index": new_index, "alias": alias, "is_write_index": True}}]
    if old_index:
        actions.insert(0, {"remove": {"index": old_index, "alias": alias}})
    await es.indices.update_aliases(actions=actions)
    return old_index


async def _replay_consumer(settings: Settings, topics: Iterable[str], **options: Any) -> tuple[AIOKafkaConsumer, list[TopicPartition], dict[TopicPartition, int]]:
    """A consumer at the start of ``topics``, their partitions and where they end now."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024, **options)
    await consumer.start()
    partitions, end = await from_the_beginning(consumer)
    return consumer, partitions, end


async def _read_until(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int], apply: Callable[[list[Any]], Any]) -> int:
    """Hand ``apply`` the records before ``end``, batch by batch (each partition in offset order)."""
    done = 0
    remaining = {tp: off for tp, off in end.items() if await consumer.position(tp) < off}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH_SIZE)
        records = [r for tp, rs in batches.items() for r in rs if r.offset < end[tp]]
        if records:
            await apply(records)
            done += len(records)
        for tp in list(remaining):
            # A transaction's commit marker takes an offset no record has: the position passes it.
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return done


async def rebuild_view_counts(es: AsyncElasticsearch, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    alias = view_counts.index_alias(settings)
    new_index = _new_index(alias)
    body = view_counts.index_settings()
    await es.indices.create(index=new_index, settings={**body, "refresh_interval": "-1"}, mappings=view_counts.MAPPINGS)
    kinds = {settings.fact_topic(kind): kind for kind in view_counts.KINDS}
    seen_prefix = settings.index_alias(f"rebuild-{new_index.rsplit('-', 1)[-1]}-{view_counts.SEEN_NAME}")
    seen = view_counts.SeenViewIds(es, settings, prefix=seen_prefix)
    consumer, partitions, end = await _replay_consumer(settings, kinds)
    replayed = 0

    async def count(records: list[Any]) -> None:
        nonlocal replayed
        by_kind: dict[str, list[Any]] = {}
        for record in records:
            by_kind.setdefault(kinds[record.topic], []).append(record)
        for kind, kind_records in by_kind.items():
            kept = await seen.first_sightings(kind, kind_records)
            await view_counts.apply_batch(es, new_index, kind, [(r.partition, r.offset, r.value) for r in kept])
        replayed += len(records)
        if progress:
            progress(replayed, total)

    old_index = None
    try:
        total = sum(end.values())
        await _read_until(consumer, end, count)
        old_index = await _switch(es, alias, new_index, body["refresh_interval"])
        await _read_until(consumer, await consumer.end_offsets(partitions), count)
    finally:
        await consumer.stop()
        await es.indices.delete(index=f"{seen_prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    if old_index:
        await es.indices.delete(index=old_index, ignore_unavailable=True)
    await es.indices.refresh(index=new_index)
    return {"projection": indices.VIEW_COUNTS, "index": new_index, "previous_index": old_index, "events_replayed": replayed}


async def rebuild_jam_stats(es: AsyncElasticsearch, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """The jam stats are a fold of the whole jams topic (the live worker replays it on every
    start too): fold it into a fresh state, write every jam's snapshot to a new index, switch."""
    alias = jam_stats.index_alias(settings)
    new_index = _new_index(alias)
    body = jam_stats.index_settings()
    await es.indices.create(index=new_index, settings={**body, "refresh_interval": "-1"}, mappings=jam_stats.MAPPINGS)
    state = jam_stats.JamStatsState()
    consumer, partitions, end = await _replay_consumer(settings, [settings.topic("jams")], isolation_level="read_committed")
    replayed = 0

    async def fold(records: list[Any]) -> None:
        nonlocal replayed
        events = []
        for record in records:
            try:
                events.append(jam_stats.decode_event(record.value))
            except BadEvent:
                continue
        # Ideas and threads carry their authors' text sealed: opened here, tombstones once erased.
        await asyncio.to_thread(open_sealed, settings, events)
        for event in events:
            try:
                state.apply(event)
            except Exception:  # as the live worker does: one bad event must not stop the jam's pulse
                log.exception("jam stats could not apply an event", extra={"event_id": event.envelope.event_id})
        replayed += len(records)
        if progress:
            progress(replayed, total)

    old_index = None
    try:
        total = sum(end.values())
        await _read_until(consumer, end, fold)
        await jam_stats.flush(es, new_index, state)
        old_index = await _switch(es, alias, new_index, body["refresh_interval"])
        await _read_until(consumer, await consumer.end_offsets(partitions), fold)
        await jam_stats.flush(es, new_index, state)
    finally:
        await consumer.stop()
    if old_index:
        await es.indices.delete(index=old_index, ignore_unavailable=True)
    await es.indices.refresh(index=new_index)
    return {"projection": indices.JAM_STATS, "index": new_index, "previous_index": old_index, "events_replayed": replayed}

"""What the tests of the documents that carry another item's audience share (comments their
target's, wiki pages their space's: services/search/readmodels/projections/audiences.py): a
projection applying batches to the session's Elasticsearch in an index namespace of its own,
without the platform, and a forced interleaving of two batches."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from watercooler import config
from watercooler.auth import Principal
from watercooler.envelope import to_envelope
from watercooler.eventstore import CommandContext, command_meta
from watercooler.projection import Doc, es_client


def records(aggregate: Any) -> list[bytes]:
    """The aggregate's new events as the relay publishes them."""
    return [to_envelope("posts", event, sequence=0).SerializeToString() for event in aggregate.collect_events()]


def acting(subject: str):
    return command_meta(CommandContext(Principal(subject, "employee"), request_id=str(uuid.uuid4()), correlation_id=""))


def run(coroutine):
    return asyncio.run(coroutine)


class ProjectionIndex:
    """One projection's indices in a namespace of their own, deleted on leaving."""

    def __init__(self, projection_class: type):
        self.settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
        self.es = es_client(self.settings)
        self.projection = projection_class(self.settings)

    async def __aenter__(self):
        await self.projection.ensure_index(self.es)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.es.indices.delete(index=f"{self.settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        await self.es.close()

    async def apply(self, batch: list[bytes], index: str | None = None):
        return await self.projection.apply_batch(self.es, batch, lambda r: r, index)

    async def document(self, aggregate: Any, index: str | None = None) -> dict[str, Any]:
        found = await self.es.get(index=index or self.projection.alias, id=str(aggregate.id), realtime=True)
        return {**found["_source"], "_version": found["_version"]}

    async def written_with_a_change_between(self, written: list[bytes], change: list[bytes], held: Callable[[dict[str, Doc]], bool]) -> None:
        """The worst interleaving, forced: the batch ``written`` reads what it completes its
        documents with (``complete``), the batch ``change`` is then applied whole, and only then
        are the documents of ``written`` stored with what they read. ``held``: whether a batch's
        documents are those of ``written`` (the change's batch completes too)."""
        read, changed = asyncio.Event(), asyncio.Event()
        complete = self.projection.complete

        async def complete_then_wait(es, docs, index=None):
            await complete(es, docs, index)
            if held(docs):
                read.set()
                await changed.wait()

        self.projection.complete = complete_then_wait

        async def apply_change():
            await read.wait()
            await self.apply(change)
            changed.set()

        try:
            await asyncio.gather(self.apply(written), apply_change())
        finally:
            del self.projection.complete

"""Appends checked views and downloads to their Kafka topics.

A view is a fact, not a command on the page: it never touches the page's
aggregate or the event store, so a hot page taking thousands of views a second
causes no write conflicts and does not slow its edits.  Each fact goes to
`posts.views.v1` / `posts.downloads.v1`, keyed by the target (all facts of one
page are on one partition, which is what lets the counter be exact), through an
idempotent producer with acks from every in-sync replica.  The RPC answers only
after Kafka acknowledged every fact of the batch.

Client retries (AIP-155 ``request_id``).  A client that lost the answer and sends
the batch again must not count it twice.  The counter (services/search/readmodels/counters/views.py)
is exact per fact by Kafka offset, so a second copy of a fact at a new offset would be
counted; the dedupe therefore sits here, on the producing side: the outcome of each
(caller, request_id) is remembered in a bounded in-process map (``RecentRequests``:
the newest ``WC_VIEW_REQUESTS_REMEMBERED`` requests, default 100,000, for at most an
hour), a retry gets the first answer without sending anything, a retry racing the
first attempt waits for it, and the same request_id with a different body is
INVALID_ARGUMENT.  Every fact carries a deterministic ``view_id`` (``view_id_of``: a
UUID derived one way from caller, request_id and index) and is keyed by its target, so a
re-sent copy lands in the same partition as the original; that is what a consumer-side
dedupe needs.

A fact names the viewer's department (what views are counted by), never the viewer: who read
which page is personal data, and a log keeps it where no erasure reaches. The view id is a
one-way digest for the same reason (a person recording their own views is the caller).

Behind it, the counter (services/search/readmodels/counters/views.py) skips a fact whose view_id it already
counted within the last hour (``RETRY_WINDOW_SECONDS``, by Kafka record time), keeping the
view ids seen in Elasticsearch so that any stats worker decides the same. That catches what
this map cannot: a retry that reaches another posts replica, or this one after a restart.
This map still answers most retries without sending anything at all.

Not covered (counted twice): a retry sent more than an hour (at most two) after the first
attempt; and a first attempt that failed after Kafka took some of its facts, retried with
another request_id. Clients may retry for an hour, with the same request_id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiokafka import AIOKafkaProducer

from watercooler.client import ServiceCredentials, aio_channel
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.eventstore import stable_id
from watercooler.kafka import create_topics
from watercooler.posts.v1.library_events_pb2 import ViewFact
from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc

from .application import Target

log = logging.getLogger(__name__)

VIEWS, DOWNLOADS = "views", "downloads"
DEPARTMENT_TTL_SECONDS = 600.0
REQUESTS_REMEMBERED = 100_000
REQUEST_MEMORY_SECONDS = 3600.0


def view_id_of(caller: str, request_id: str, index: int) -> str:
    """The view id of the ``index``-th view of a request: the same for every retry of it, and
    naming neither caller nor viewer (a name-based UUID, RFC 9562 v5)."""
    return str(stable_id("view", caller, request_id, str(index)))


def ensure_fact_topics(settings: Settings) -> list[str]:
    """Facts are kept forever: the counts can always be rebuilt from them."""
    return create_topics(settings, [settings.fact_topic(VIEWS), settings.fact_topic(DOWNLOADS)])


class Departments:
    """The viewer's department at view time, from the profiles service, cached.

    Resolved when the view is recorded (not when it is counted) so that a replayed
    fact always lands in the same count."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._cache: dict[str, tuple[str, float]] = {}
        self._channel: grpc.aio.Channel | None = None
        self._credentials = ServiceCredentials(settings, "posts")

    async def of(self, viewers: set[str]) -> dict[str, str]:
        now = time.monotonic()
        missing = [v for v in viewers if (hit := self._cache.get(v)) is None or hit[1] < now]
        if missing:
            semaphore = asyncio.Semaphore(32)

            async def one(viewer: str) -> None:
                async with semaphore:
                    self._cache[viewer] = (await self._lookup(viewer), now + DEPARTMENT_TTL_SECONDS)

            await asyncio.gather(*(one(v) for v in missing))
        return {v: self._cache[v][0] for v in viewers}

    async def _lookup(self, viewer: str) -> str:
        if self._channel is None:
            self._channel = aio_channel(self.settings, "profiles")
        try:
            profile = await profiles_pb2_grpc.ProfileServiceStub(self._channel).GetProfile(
                profiles_pb2.GetProfileRequest(name=f"profiles/{viewer}"), metadata=self._credentials.metadata(), timeout=2
            )
            return profile.department
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                log.warning("department lookup failed; counted as unknown", extra={"viewer": viewer, "code": exc.code().name})
            return ""

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class RecentRequests:
    """Outcomes of the newest requests by (kind, caller, request_id), bounded in number and age.

    A request in flight is a future: a retry racing it waits for the same outcome. A
    failed request is forgotten, so its retry is tried again."""

    def __init__(self, size: int | None = None, seconds: float = REQUEST_MEMORY_SECONDS):
        self.size = size or int(os.environ.get("WC_VIEW_REQUESTS_REMEMBERED") or REQUESTS_REMEMBERED)
        self.seconds = seconds
        self._entries: OrderedDict[tuple[str, str, str], tuple[str, float, asyncio.Future[int]]] = OrderedDict()

    async def once(self, key: tuple[str, str, str], fingerprint: str, send: Callable[[], Awaitable[int]]) -> int:
        now = time.monotonic()
        while self._entries and (len(self._entries) > self.size or next(iter(self._entries.values()))[1] < now - self.seconds):
            self._entries.popitem(last=False)
        earlier = self._entries.get(key)
        if earlier is not None:
            if earlier[0] != fingerprint:
                raise InvalidArgument("request_id was already used for a different request", field="request_id")
            return await asyncio.shield(earlier[2])
        # The send runs as a task of its own: a caller that gives up (deadline, cancel) must not
        # make us forget a fact already handed to the producer, or its retry would count it
        # twice once Kafka takes both.  The entry goes only when the send itself fails.
        outcome: asyncio.Future[int] = asyncio.ensure_future(send())
        self._entries[key] = (fingerprint, now, outcome)

        def forget_if_failed(task: asyncio.Future[int]) -> None:
            failed = task.cancelled() or task.exception() is not None  # (retrieves the exception)
            if failed and self._entries.get(key, (None, None, None))[2] is task:
                self._entries.pop(key, None)

        outcome.add_done_callback(forget_if_failed)
        return await asyncio.shield(outcome)


def metadata_retries_back_off(client: Any) -> None:
    """Make a failed metadata update wait the client's retry backoff (100 ms) before it answers.

    aiokafka 0.14's sender asks for metadata again the moment an update fails while a partition
    has no known leader, with no pause. When every broker is gone after a produce answered
    NotLeaderForPartition (a broker shutting down), that loop ran one CPU core flat out:
    29,344 failed updates and 9.9 s of CPU in 10 s, measured with a view pending (its consumer
    fetcher has the same gap, aio-libs/aiokafka#1155). Its other callers already wait this long
    between their own asks, so only the loop without a pause slows down. A private method,
    wrapped: ``test_a_producer_waits_between_failed_metadata_updates`` fails if it moves."""
    update = client._metadata_update
    backoff = client._retry_backoff

    async def update_or_back_off(cluster: Any, topics: Any) -> bool:
        updated = await update(cluster, topics)
        if not updated:
            await asyncio.sleep(backoff)
        return updated

    client._metadata_update = update_or_back_off


class FactLog:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.recent = RecentRequests()
        self.topics = {VIEWS: settings.fact_topic(VIEWS), DOWNLOADS: settings.fact_topic(DOWNLOADS)}
        self.departments = Departments(settings)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    client_id="posts-facts",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    max_batch_size=256 * 1024,
                    compression_type="gzip",
                )
                await producer.start()
                metadata_retries_back_off(producer.client)
                self._producer = producer
        return self._producer

    async def append(
        self, kind: str, facts: list[tuple[Target, str, dt.datetime]], client: list[str], caller: str = "", request_id: str = "", fingerprint: str = ""
    ) -> int:
        """Sends the facts; with a request_id, once per (caller, request_id) (see the module docstring)."""
        if not request_id:
            return await self._send(kind, facts, client, [str(uuid.uuid4()) for _ in facts])
        view_ids = [view_id_of(caller, request_id, index) for index in range(len(facts))]
        return await self.recent.once((kind, caller, request_id), fingerprint, lambda: self._send(kind, facts, client, view_ids))

    async def _send(self, kind: str, facts: list[tuple[Target, str, dt.datetime]], client: list[str], view_ids: list[str]) -> int:
        producer = await self._started()
        departments = await self.departments.of({viewer for _, viewer, _ in facts})
        topic = self.topics[kind]
        sends = []
        for (target, viewer, when), client_name, view_id in zip(facts, client, view_ids, strict=True):
            fact = ViewFact(
                target=target.name,
                space_id=target.space_id,
                department=departments.get(viewer, ""),
                view_time=when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                client=client_name,
                view_id=view_id,
            )
            sends.append(await producer.send(topic, key=target.name.encode(), value=fact.SerializeToString()))
        # Answer only when Kafka has every one: an acknowledged view is never lost.
        await asyncio.gather(*sends)
        return len(sends)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        await self.departments.close()

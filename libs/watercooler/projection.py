"""Elasticsearch documents kept from events, idempotently, and rebuilt from the log.

A ``DocumentProjection`` turns events into one document per aggregate.  The
document's Elasticsearch version *is* the aggregate version (external
versioning), so:
- a duplicated or replayed older event is skipped (its version is not newer);
- two writers racing can never put an older state over a newer one (ES refuses).
Deletions are soft (``deleted: true``) so that a late replay of an old event
cannot resurrect a deleted document after ES forgets its delete tombstone.

Each projection is read and written through an alias; the index behind it is
versioned.  ``rebuild`` replays the source topics from the start into a fresh
index, switches the alias in one atomic action, then catches up on what arrived
meanwhile, so searches keep answering from a complete index throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import AsyncElasticsearch, BadRequestError, ConnectionTimeout, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch.helpers import async_scan
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from . import metrics, personaldata
from .config import Settings
from .envelope import BadEvent, Event, EventEnvelope, decode_kept

log = logging.getLogger(__name__)
# How many times an erasure reads again and tombstones a document that another write changed
# between its read and its own write (each such round follows a real concurrent write).
ERASURE_ROUNDS = 5

Doc = dict[str, Any]


class _OrjsonNdjsonSerializer(NdjsonSerializer):
    """_bulk bodies and responses through orjson too."""

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default)

    def json_loads(self, data: bytes) -> Any:
        return orjson.loads(data)


def es_client(settings: Settings, client_class: type[AsyncElasticsearch] = AsyncElasticsearch) -> AsyncElasticsearch:
    # orjson, as the client's docs suggest: the standard json module was a fifth of a
    # projection's CPU (bulk bodies out, bulk/mget responses in).
    # WC_ES_URL may list several nodes, comma-separated: requests are spread over them and a node
    # that fails is skipped until it answers again (the cluster topology's stand-in for a Service).
    nodes = [url.strip() for url in settings.es_url.split(",")]
    # The transport retries at once, with no pause: worth it only on another node, and once on
    # the same one for a pooled connection the server closed. Waiting out an outage is our
    # loops' job (watercooler.retries: paced, jittered, logged once an attempt). Five retries
    # made each attempt against a node that was down six connections and five logged
    # tracebacks, and a timeout retried on the same node made one call wait up to three minutes.
    return client_class(nodes, request_timeout=30, retry_on_timeout=len(nodes) > 1, max_retries=max(1, len(nodes) - 1),
                        serializers={"application/json": OrjsonSerializer(), "application/x-ndjson": _OrjsonNdjsonSerializer()})


# Everything a projection reads of a _bulk response, asked for every joined request.
JOINED_FILTER_PATH = "errors,items.*._id,items.*.status,items.*.error"
_JOINED_FIELDS = frozenset(JOINED_FILTER_PATH.split(","))


class JoinedBulks:
    """An Elasticsearch client whose ``bulk`` requests made at the same moment travel as one.

    The processor hands a batch to its projections at once; each writes its documents with a
    bulk of its own (four for a batch of profile events: people, the audit trail's two, the blog
    owners), and every request has a fixed cost in this process and in Elasticsearch whatever
    it holds. A bulk called while another is waiting to be sent joins it: the first one is sent
    on the event loop's next turn, with the operations of every bulk called before then, and
    each caller gets its own items back, in order, with its own ``errors``. A joined request
    that fails as a whole is sent again part by part, so that one caller's bad request (refused
    as a whole) is only that caller's failure; a connection error reaches every caller, whose
    retries stay their own (the processor's back-off). Other calls pass through. No library
    does this: the client's bulk helpers chunk one caller's stream of actions, they do not join
    concurrent callers'."""

    def __init__(self, es: AsyncElasticsearch):
        self._es = es
        self._waiting: list[tuple[list[dict[str, Any]], int, asyncio.Future]] | None = None
        self._sending: set[asyncio.Task] = set()  # held: the loop keeps only weak references to tasks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._es, name)

    async def bulk(self, *, operations: list[dict[str, Any]], filter_path: str | None = None, **kwargs: Any) -> Any:
        if kwargs or filter_path is None or not set(filter_path.split(",")) <= _JOINED_FIELDS:
            return await self._es.bulk(operations=operations, filter_path=filter_path, **kwargs)
        loop = asyncio.get_running_loop()
        if self._waiting is None:
            self._waiting = []
            loop.call_soon(self._start_sending)
        future = loop.create_future()
        self._waiting.append((operations, _actions(operations), future))
        metrics.BULKS_ASKED.inc()
        return await future

    def _start_sending(self) -> None:
        parts, self._waiting = self._waiting or [], None
        task = asyncio.ensure_future(self._send(parts))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, parts: list[tuple[list[dict[str, Any]], int, asyncio.Future]]) -> None:
        try:
            await self._send_joined(parts)
        except BaseException as exc:  # never leave a caller waiting
            for _, _, future in parts:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(f"joined bulk stopped: {exc!r}"))
            if not isinstance(exc, Exception):
                raise

    async def _send_joined(self, parts: list[tuple[list[dict[str, Any]], int, asyncio.Future]]) -> None:
        if len(parts) == 1:
            await self._send_alone(parts[0])
            return
        try:
            metrics.BULK_REQUESTS.inc()
            response = await self._es.bulk(operations=[operation for part in parts for operation in part[0]], filter_path=JOINED_FILTER_PATH)
        except Exception as exc:
            if _connection_error(exc):
                for _, _, future in parts:
                    if not future.done():
                        future.set_exception(exc)
                return
            await asyncio.gather(*(self._send_alone(part) for part in parts))
            return
        items = response.get("items", [])
        start = 0
        for _, count, future in parts:
            mine = items[start:start + count]
            start += count
            if not future.done():
                future.set_result({"errors": any("error" in next(iter(item.values())) for item in mine), "items": mine})

    async def _send_alone(self, part: tuple[list[dict[str, Any]], int, asyncio.Future]) -> None:
        operations, _, future = part
        try:
            metrics.BULK_REQUESTS.inc()
            response = await self._es.bulk(operations=operations, filter_path=JOINED_FILTER_PATH)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result({"errors": bool(response.get("errors")), "items": response.get("items", [])})


def _actions(operations: Sequence[dict[str, Any]]) -> int:
    """How many actions a bulk's operations hold: each is an action line, followed by its
    document except for a delete."""
    count = position = 0
    while position < len(operations):
        position += 1 if "delete" in operations[position] else 2
        count += 1
    return count


def _connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (EsConnectionError, ConnectionTimeout, asyncio.TimeoutError, OSError))


class DocumentsUnreadable(RuntimeError):
    """Some documents of a read-modify-write could not be read; the batch must be retried."""


def found_documents(response: Any) -> dict[str, dict[str, Any]]:
    """The documents an ``mget`` found, by id.  Raises DocumentsUnreadable when any could not
    be read: a shard still recovering after a restart answers an error per document, and
    taking that for "not found" would rebuild the document from nothing and overwrite the
    stored one (a count reset to the batch, a profile reduced to its last event)."""
    unreadable = [item for item in response["docs"] if item.get("error")]
    if unreadable:
        error = unreadable[0]["error"]
        reason = error.get("reason") or error.get("type") if isinstance(error, dict) else error
        raise DocumentsUnreadable(f"{len(unreadable)} of {len(response['docs'])} documents unreadable: {reason}")
    return {item["_id"]: item for item in response["docs"] if item.get("found")}


class SkipEvent(Exception):
    """Raised by ``apply`` for an event the projection deliberately ignores."""


@dataclass
class BatchResult:
    written: int = 0
    skipped_duplicates: int = 0
    other_aggregates: int = 0  # events of aggregates another projection keeps
    touched: list[str] = field(default_factory=list)  # the documents the batch's events were for (written or duplicates)
    erased: list[str] = field(default_factory=list)  # employee ids the batch's ProfileErased events name
    failed: list[tuple[Any, str]] = field(default_factory=list)  # (record, reason) for the dead-letter topic
    # (record, reason) whose batch kept failing, parked in the dead-letter topic by the processor
    kept_failing: list[tuple[Any, str]] = field(default_factory=list)

    def add(self, other: BatchResult) -> BatchResult:
        self.written += other.written
        self.skipped_duplicates += other.skipped_duplicates
        self.other_aggregates += other.other_aggregates
        self.touched.extend(other.touched)
        self.erased.extend(other.erased)
        self.failed.extend(other.failed)
        self.kept_failing.extend(other.kept_failing)
        return self


class DocumentProjection:
    """Subclasses set ``name``, ``sources`` (service names), ``mappings`` and implement ``apply``."""

    name: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]
    # The aggregates (domain class names) whose events make this projection's documents. Four
    # projections read the profiles topic and seven the posts topic; each drops the others'
    # events before unpacking them or reading any document for them. Reading them all cost
    # each an mget per batch for documents that could not exist: catching up on 100,000 new
    # profiles went from 3,451-3,529 to 3,817-4,302 events/s with this (2 cores, 3 runs each).
    # The type is the class that defines the event: events of a base class's decorated methods
    # (Flaggable's ItemFlagged, ItemHidden...) carry the base's name, not the item's.
    aggregate_types: ClassVar[frozenset[str]]
    mappings: ClassVar[dict[str, Any]]
    # Bump when mappings or apply() change incompatibly: `watercooler reindex` then rebuilds.
    schema_version: ClassVar[int] = 1
    # The index's analysis settings (analyzers, normalizers) its mappings name, if any.
    analysis: ClassVar[dict[str, Any]] = {}
    # A document's Elasticsearch version is its aggregate version times this. Above 1 it leaves
    # room for rewrites that are not the aggregate's own (each writes the version it read plus
    # one): the duplicate check compares ``stored // version_scale`` with the event's version.
    version_scale: ClassVar[int] = 1
    # A projection whose documents hold fields sealed with their writer's key (what a person wrote,
    # opened) names them here with their tombstones, and ``erased_by`` the fields naming whose key
    # sealed them. It then also reads the profiles topic (its ``sources`` list it) for
    # ``ProfileErased``, and replaces those fields of the erased person's documents at once
    # (``erase_person``) instead of keeping the opened text until a rebuild.
    erased_fields: ClassVar[dict[str, Any]] = {}
    erased_by: ClassVar[tuple[str, ...]] = ()
    # False for a projection that keeps no personal field (the audit trail: ids and envelopes):
    # its events' sealed fields are left sealed, a decryption per field and event saved.
    opens_sealed: ClassVar[bool] = True
    # False for an index read by id (a realtime mget sees a document at once) or searched only
    # now and then (the audit trail): it gets no refresh of its own every WC_ES_REFRESH, whose
    # cost (a new segment per index, and merging them) is paid however few documents came.
    # Elasticsearch's default then applies: a shard not searched for 30 s is not refreshed on
    # schedule; the next search refreshes it and waits, so it shows every write made while idle
    # (those of its last second show within that second, the default interval).
    searched_fresh: ClassVar[bool] = True

    def __init__(self, settings: Settings):
        self.settings = settings
        self.alias = settings.index_alias(self.name)
        # Profile events are read only for the erasures when the projection keeps no profiles.
        kept = getattr(self, "aggregate_types", None)
        self._erasures_only = bool(self.erased_fields) and kept is not None and "Profile" not in kept
        self._kept_types = kept | {"Profile"} if self._erasures_only and kept is not None else kept
        # The people this process has seen erased (both forms of their ids): a document of theirs
        # written after that, from a read made before the tombstones (another event of the item,
        # in a batch running beside the erasure's), is tombstoned as it is written.
        self._erased_here: set[str] = set()

    # --- domain-free projection logic, per subclass -------------------------------------------
    def doc_id(self, event: Event) -> str:
        # One aggregate's events share a partition; a rebuild applies partitions concurrently,
        # so an override must never map two aggregates to one document.
        return event.aggregate_id

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        """Return the document after ``event``; ``doc`` is None before the first event."""
        raise NotImplementedError

    def reads_stored(self, first: Event) -> bool:
        """Whether ``apply_batch`` reads the stored document before ``first``, the batch's first
        event for it. Not before an aggregate's first event (version 1), unless versions are
        scaled: the document is then made from that event alone, and when it was written before
        (a redelivery) the external version refuses the write as a duplicate (409), or, for a
        batch reaching further, the same events replayed from the start make the same document
        (documents are written by their aggregate's events only, and erasures, whose tombstones
        the replayed events open to). A projection whose documents something else rewrites has
        scaled versions (``version_scale``) or applies batches its own way. The read was an
        mget per batch and projection for every new aggregate."""
        return first.version > 1 or self.version_scale != 1

    def keeps(self, envelope: EventEnvelope) -> bool:
        """Whether ``decode`` keeps the event of ``envelope`` (or notes it, an erasure): the
        processor hands a projection only these, read once for every projection."""
        kept = self._kept_types
        if kept is None:
            return True
        if envelope.aggregate_type not in kept:
            return False
        return not (self._erasures_only and envelope.aggregate_type == "Profile" and envelope.event_type != personaldata.ERASURE_EVENT)

    async def complete(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str | None = None) -> None:
        """Called with a batch's changed documents just before they are written to ``index``: a
        subclass may add fields read from elsewhere (the comments index adds its targets'
        audience, the wiki its spaces' to their pages, read from the index being written)."""

    async def written(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str) -> None:
        """Called after a batch's changed documents were written to ``index``."""

    # --- index lifecycle ------------------------------------------------------------------------
    def index_body(self) -> dict[str, Any]:
        mappings = dict(self.mappings)
        mappings.setdefault("dynamic", "strict")
        props = dict(mappings.get("properties", {}))
        props.setdefault("deleted", {"type": "boolean"})
        props.setdefault("updated_at", {"type": "date"})
        mappings["properties"] = props
        mappings["_meta"] = {"projection": self.name, "schema_version": self.schema_version}
        settings: dict[str, Any] = {
            "number_of_shards": int(_env_default("WC_ES_SHARDS", "1")),
            "number_of_replicas": index_replicas(),
        }
        if self.searched_fresh:  # else Elasticsearch's default, with its search-idle shards
            settings["refresh_interval"] = _env_default("WC_ES_REFRESH", "500ms")
        if self.analysis:
            settings["analysis"] = self.analysis
        return {"settings": settings, "mappings": mappings}

    def new_index_name(self) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
        return f"{self.alias}-v{self.schema_version}-{stamp}"

    async def ensure_index(self, es: AsyncElasticsearch) -> str:
        """Create the first index behind the alias if there is none; return the index name."""
        current = await self.current_index(es)
        if current:
            await self.add_new_fields(es, current)
            await self.apply_refresh_interval(es, current)
            return current
        # A fixed first name: when the search service and a processor start together,
        # one creates it and the other is told it exists.
        index = f"{self.alias}-v{self.schema_version}-initial"
        try:
            await es.indices.create(index=index, **self.index_body(), aliases={self.alias: {"is_write_index": True}})
            log.info("created projection index", extra={"projection": self.name, "index": index})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        return await self.current_index(es) or index

    async def apply_refresh_interval(self, es: AsyncElasticsearch, index: str) -> None:
        """Give an index made earlier the refresh interval its projection has now (a dynamic
        setting: WC_ES_REFRESH changed, or ``searched_fresh``); None puts back the default."""
        wanted = self.index_body()["settings"].get("refresh_interval")
        try:
            found = await es.indices.get_settings(index=index, name="index.refresh_interval")
            have = next(iter(found.body.values()), {}).get("settings", {}).get("index", {}).get("refresh_interval")
            if have != wanted:
                await es.indices.put_settings(index=index, settings={"refresh_interval": wanted})
        except (BadRequestError, NotFoundError) as exc:
            log.warning("could not set the refresh interval of a projection index", extra={"projection": self.name, "index": index, "error": repr(exc)})

    async def add_new_fields(self, es: AsyncElasticsearch, index: str) -> list[str]:
        """Add to an existing index the top-level fields its projection gained since the index was
        made (a strict mapping would otherwise refuse every document carrying them). Documents
        written before lack the fields until ``watercooler reindex``. A field whose definition
        changed cannot be altered in place: that needs a new ``schema_version`` and a reindex.
        Never fails a start: a refusal is logged and the index is used as it is."""
        wanted = self.index_body()["mappings"]["properties"]
        try:
            found = await es.indices.get_mapping(index=index)
            have = next(iter(found.body.values()))["mappings"].get("properties", {})
            missing = {name: spec for name, spec in wanted.items() if name not in have}
            if missing:
                await es.indices.put_mapping(index=index, properties=missing)
                log.info("added fields to projection index", extra={"projection": self.name, "index": index, "fields": sorted(missing)})
            return sorted(missing)
        except (BadRequestError, NotFoundError) as exc:
            log.warning("could not add new fields to projection index; run `watercooler reindex`", extra={"projection": self.name, "index": index, "error": repr(exc)})
            return []

    async def stored_schema_version(self, es: AsyncElasticsearch) -> int | None:
        """The ``schema_version`` the index behind the alias was made with (None: no index yet)."""
        index = await self.current_index(es)
        if index is None:
            return None
        found = await es.indices.get_mapping(index=index)
        meta = next(iter(found.body.values()))["mappings"].get("_meta", {})
        return int(meta.get("schema_version", 1))

    async def current_index(self, es: AsyncElasticsearch) -> str | None:
        try:
            found = await es.indices.get_alias(name=self.alias)
        except NotFoundError:
            return None
        return next(iter(found.body)) if found.body else None

    # --- applying batches ---------------------------------------------------------------------
    async def decode(self, records: Sequence[Any], value_of: Callable[[Any], bytes], result: BatchResult) -> list[tuple[Any, Event]]:
        """The batch's events of the aggregates this projection keeps, with their records and
        their sealed fields opened; an undecodable record is noted in ``result`` for the
        dead-letter topic, another projection's event is counted and dropped before its payload
        is unpacked."""
        decoded: list[tuple[Any, Event]] = []
        erasures: list[Event] = []
        for record in records:
            try:
                event = _decoded(value_of(record), self._kept_types)
            except BadEvent as exc:
                result.failed.append((record, str(exc)))
                continue
            if event is None:
                result.other_aggregates += 1
            elif self._erasures_only and event.envelope.aggregate_type == "Profile":
                if event.envelope.event_type == personaldata.ERASURE_EVENT:
                    erasures.append(event)
                else:
                    result.other_aggregates += 1
            else:
                decoded.append((record, event))
                if self.erased_by and event.envelope.event_type == personaldata.ERASURE_EVENT:
                    erasures.append(event)  # a projection keeping the profiles' events (the audit trail)
        if self.opens_sealed:
            await open_sealed_async(self.settings, [event for _, event in decoded] + erasures)
        elif erasures:
            await open_sealed_async(self.settings, erasures)  # asks for no key: the process forgets the erased person's
        result.erased.extend(event.payload.employee_id for event in erasures if event.payload.employee_id)
        return decoded

    async def apply_batch(self, es: AsyncElasticsearch, records: Sequence[Any], value_of: Callable[[Any], bytes], index: str | None = None) -> BatchResult:
        """Apply a batch of Kafka records to the index (the alias unless ``index`` is given).

        Reads the current documents once (mget), applies events in order in memory,
        writes each changed document once with its aggregate version (bulk)."""
        target = index or self.alias
        result = BatchResult()
        decoded = await self.decode(records, value_of, result)
        # Known before this batch writes anything, and to every other batch of this process.
        self._erased_here.update(id_ for employee_id in result.erased for id_ in (employee_id, f"profiles/{employee_id}"))
        if not decoded:
            await self.erase_people(es, target, result.erased)
            return result
        first: dict[str, Event] = {}  # each document's first event in the batch
        for _, event in decoded:
            first.setdefault(self.doc_id(event), event)
        ids = list(first)
        state: dict[str, tuple[Doc | None, int]] = {doc_id: (None, 0) for doc_id in ids}
        result.touched = ids
        stored = [doc_id for doc_id, event in first.items() if self.reads_stored(event)]
        if stored:
            for doc_id, item in found_documents(await es.mget(index=target, ids=stored, realtime=True)).items():
                state[doc_id] = (item["_source"], item["_version"] // self.version_scale)
        dirty: set[str] = set()
        for record, event in decoded:
            doc_id = self.doc_id(event)
            doc, version = state[doc_id]
            if event.version <= version:
                result.skipped_duplicates += 1
                continue
            try:
                new_doc = self.apply(None if doc is None else dict(doc), event)
            except SkipEvent:
                state[doc_id] = (doc, event.version)
                if doc is not None:
                    dirty.add(doc_id)  # record the version so a replay skips it too
                continue
            except Exception as exc:  # a poison event: dead-letter it, keep going
                log.warning("projection failed on event", extra={"projection": self.name, "event_id": event.envelope.event_id, "error": repr(exc)})
                result.failed.append((record, f"{type(exc).__name__}: {exc}"))
                continue
            new_doc.setdefault("deleted", False)
            new_doc["updated_at"] = event.occurred_at.isoformat()
            state[doc_id] = (new_doc, event.version)
            dirty.add(doc_id)
        if dirty:
            await self.complete(es, {doc_id: state[doc_id][0] for doc_id in dirty}, target)  # type: ignore[misc]
            operations: list[dict[str, Any]] = []
            for doc_id in dirty:
                doc, version = state[doc_id]
                self._tombstone_if_erased(doc)
                operations.append({"index": {"_index": target, "_id": doc_id, "version": version * self.version_scale, "version_type": "external"}})
                operations.append(doc)
            # Only what is read below: a full _bulk response echoes every document's metadata.
            response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
            if response["errors"]:
                for item in response["items"]:
                    outcome = item["index"]
                    if outcome.get("status") == 409:
                        result.skipped_duplicates += 1  # someone already wrote a newer version
                    elif outcome.get("error"):
                        raise RuntimeError(f"bulk write to {target} failed: {outcome['error']}")
                    else:
                        result.written += 1
            else:
                result.written += len(dirty)
            await self.written(es, {doc_id: state[doc_id][0] for doc_id in dirty}, target)  # type: ignore[misc]
        # After the batch's own writes, so that the erased person's documents it made are found too.
        await self.erase_people(es, target, result.erased)
        return result

    async def erase_people(self, es: AsyncElasticsearch, index: str, employee_ids: Sequence[str]) -> int:
        """Replace the erased people's sealed fields (``erased_fields``) in their documents with
        the tombstones; returns how many documents changed.

        Idempotent, and a replay (rebuild) does it again harmlessly: a document already
        tombstoned is left alone, and the events replayed open to tombstones anyway (the keys are
        gone). Ordering: ``ProfileErased`` (profiles topic) and the person's own events (other
        topics and partitions) reach the projection in any order. An event of theirs applied
        after this is opened with a key that is gone (its process forgets the key at the latest
        when its key cache next asks, ``WC_PERSONAL_KEY_CACHE_SECONDS``), so it tombstones
        itself; one applied before is found here.

        Each document is written back with the version it has (``external_gte``) rather than by
        ``_update_by_query``, which would add one to the version: with versions that are the
        aggregate's, the aggregate's next event would then be skipped as a duplicate. A document
        a newer event rewrote meanwhile (409) is read again and tombstoned as it now is (up to
        ``ERASURE_ROUNDS`` times): that write may have been made from a read before the tombstones."""
        if not self.erased_fields or not employee_ids:
            return 0
        ids = [*employee_ids, *(f"profiles/{employee_id}" for employee_id in employee_ids)]
        query = {"bool": {"should": [{"terms": {field: ids}} for field in self.erased_by], "minimum_should_match": 1}}
        # The batch's writes (and earlier ones) become searchable: what the scan below reads.
        await es.indices.refresh(index=index)
        operations: list[dict[str, Any]] = []
        async for hit in async_scan(es, index=index, query={"query": query}, size=500, version=True):
            source = hit["_source"]
            if not self.tombstone(source, ids):
                continue
            operations.append({"index": {"_index": hit["_index"], "_id": hit["_id"], "version": hit["_version"], "version_type": "external_gte"}})
            operations.append(source)
        if not operations:
            return 0
        written = 0
        for _ in range(ERASURE_ROUNDS):
            response = await es.bulk(operations=operations, filter_path="errors,items.*._id,items.*.status,items.*.error")
            conflicted: list[str] = []
            for item in response.get("items", []) if response["errors"] else []:
                outcome = item["index"]
                if outcome.get("status") == 409:
                    conflicted.append(outcome.get("_id") or "")
                elif outcome.get("error"):
                    raise RuntimeError(f"erasure write to {index} failed: {outcome['error']}")
            written += len(operations) // 2 - len(conflicted)
            # A document written meanwhile (409) may hold the text again, from a read made before
            # the tombstones: read it as it is now and tombstone that, until none conflicts.
            operations = []
            if not any(conflicted):
                break
            for doc_id, item in found_documents(await es.mget(index=index, ids=[c for c in conflicted if c], realtime=True)).items():
                source = item["_source"]
                if self.tombstone(source, ids):
                    operations.append({"index": {"_index": index, "_id": doc_id, "version": item["_version"], "version_type": "external_gte"}})
                    operations.append(source)
            if not operations:
                break
        log.info("erased people's fields", extra={"projection": self.name, "index": index, "documents": written})
        return written

    def _tombstone_if_erased(self, doc: Doc | None) -> None:
        """Tombstone a document about to be written when it names someone this process saw erased."""
        if not self._erased_here or doc is None or not self.erased_fields:
            return
        named: set[str] = set()
        for name in self.erased_by:
            value = doc.get(name)
            named.update(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
        people = sorted({person.removeprefix("profiles/") for person in named & self._erased_here})
        if people:
            self.tombstone(doc, [*people, *(f"profiles/{person}" for person in people)])

    def tombstone(self, source: Doc, erased_ids: Sequence[str]) -> bool:
        """Replace in place the erased people's fields of a document ``erase_people`` found;
        False when it had none left. A projection whose documents hold several people's text
        (a wiki page's titles and body) overrides it to replace only theirs."""
        if all(source.get(name, value) == value for name, value in self.erased_fields.items()):
            return False
        source.update((name, value) for name, value in self.erased_fields.items() if name in source)
        return True

    # --- rebuild ----------------------------------------------------------------------------------
    async def rebuild(self, es: AsyncElasticsearch, progress: Callable[[int, int], None] | None = None, batch_size: int = 2000) -> dict[str, Any]:
        """Replay every source topic into a new index, switch the alias atomically, catch up."""
        topics = [self.settings.topic(s) for s in self.sources]
        new_index = self.new_index_name()
        body = self.index_body()
        # Nobody searches the new index before the switch: no periodic refresh while loading
        # (Elasticsearch's advice for bulk loads); the projection's interval is set back after.
        refresh_interval = body["settings"].get("refresh_interval")  # None: the default, set back
        await es.indices.create(index=new_index, settings={**body["settings"], "refresh_interval": "-1"}, mappings=body["mappings"])
        # No group: the consumer is given every partition of the topics, and commits nothing.
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        replayed = 0
        old_index = None
        switched = False
        try:
            partitions, end = await from_the_beginning(consumer)
            total = sum(end.values())
            replayed += await self._replay_until(es, consumer, new_index, end, batch_size, progress, total)
            # Switch: searches move from the old index to the complete (and refreshed:
            # searchable) new one in one step.
            await es.indices.put_settings(index=new_index, settings={"refresh_interval": refresh_interval})
            await es.indices.refresh(index=new_index)
            old_index = await self.current_index(es)
            actions: list[dict[str, Any]] = [{"add": {"index": new_index, "alias": self.alias, "is_write_index": True}}]
            if old_index:
                actions.insert(0, {"remove": {"index": old_index, "alias": self.alias}})
            await es.indices.update_aliases(actions=actions)
            switched = True
            # Events the live processor wrote to the old index between the end offsets and the
            # switch: apply them again to the new one (idempotent by version).
            end_after = await consumer.end_offsets(partitions)
            replayed += await self._replay_until(es, consumer, new_index, end_after, batch_size, None, 0)
        finally:
            await consumer.stop()
            if not switched:  # a failed rebuild leaves the alias where it was and no half-built index
                await es.indices.delete(index=new_index, ignore_unavailable=True)
        if old_index:
            await es.indices.delete(index=old_index, ignore_unavailable=True)
        await es.indices.refresh(index=new_index)
        return {"projection": self.name, "index": new_index, "previous_index": old_index, "events_replayed": replayed}

    async def _replay_until(self, es, consumer, index, end, batch_size, progress, total) -> int:
        done = 0
        remaining = {tp: off for tp, off in end.items() if await consumer.position(tp) < off}
        while remaining:
            batches = await consumer.getmany(*remaining.keys(), timeout_ms=1000, max_records=batch_size)
            records = [r for tp, rs in batches.items() for r in rs if r.offset < end[tp]]
            if records:
                halves = partition_halves(records, lambda r: (r.topic, r.partition))
                await asyncio.gather(*(self.apply_batch(es, half, lambda r: r.value, index=index) for half in halves))
                done += len(records)
                if progress:
                    progress(done, total)
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
        return done


async def from_the_beginning(consumer: AIOKafkaConsumer, wait_seconds: float = 10.0) -> tuple[list[TopicPartition], dict[TopicPartition, int]]:
    """A started consumer without a group (it is given every partition of its topics and commits
    nothing) put at the start of its partitions: them, and the offsets they end at now, up to
    which a replay (a rebuild, ``watercooler dlq-replay``) reads. The assignment comes a moment
    after ``start``: waited for, up to ``wait_seconds``. No partition is an empty replay only when
    the topics have none; when they have some but none came, it is an error, not an empty replay:
    a rebuild would otherwise switch its alias to an empty index."""
    partitions: list[TopicPartition] = []
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        partitions = sorted(consumer.assignment())
        if partitions or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.1)
    if not partitions:
        existing = {topic: consumer.partitions_for_topic(topic) for topic in sorted(consumer.subscription())}
        unassigned = sorted(topic for topic, known in existing.items() if known)
        if unassigned:
            raise RuntimeError(f"no partition of {', '.join(unassigned)} was assigned within {wait_seconds:g} s; nothing was replayed")
        return [], {}
    await consumer.seek_to_beginning(*partitions)
    return partitions, await consumer.end_offsets(partitions)


def open_sealed(settings: Settings, events: Sequence[Event], ring: personaldata.KeyRing | None = None) -> None:
    """Open the events' sealed personal fields (watercooler.personaldata) with one ask for the
    keys; a field whose key was destroyed (an erased person) reads as its tombstone, so a
    rebuild after an erasure never brings the data back. Synchronous: a key-cache miss waits
    for one call (on an event loop: ``open_sealed_async``)."""
    needed = _needed_keys(settings, events)
    if needed:
        _open_payloads(events, (ring or personaldata.shared_key_ring(settings)).keys(needed))


async def open_sealed_async(settings: Settings, events: Sequence[Event], ring: personaldata.KeyRing | None = None) -> None:
    """``open_sealed`` for a coroutine (every projection's ``decode``): the keys come from the
    process's cache when it holds them all, and a miss is asked for in a thread, still one ask
    for the batch, so the event loop (the worker's other projections, its Kafka heartbeats)
    runs on meanwhile instead of waiting for the key service. An event the batch's projections
    share (``_BatchMemo``) is opened by the first of them; the others pass over it unread."""
    memo = _batch_memo.get()
    if memo is not None:
        events = [event for event in events if memo.opened_events.get(id(event)) is not event]
    needed = _needed_keys(settings, events)
    if needed:
        _open_payloads(events, await _keys_for(ring or personaldata.shared_key_ring(settings), needed))
    if memo is not None:
        memo.opened_events.update((id(event), event) for event in events)


# Keys being asked for now, by (event loop, key ring, key id). The projections of a batch need
# the same people's keys at the same moment (people and blogs open every profile event): one
# ask serves them all, which also lets their writes leave together (``JoinedBulks``).
_asking: dict[tuple[int, int, str], asyncio.Future] = {}


async def _keys_for(ring: personaldata.KeyRing, needed: set[str]) -> dict[str, bytes]:
    """``ring.keys(needed)``: from the ring's cache when it holds them all, else asked in a
    thread, joining an ask already under way for any of them."""
    cached = getattr(ring, "cached", None)
    keys = cached(needed) if cached is not None else None
    if keys is not None:
        return keys
    scope = (id(asyncio.get_running_loop()), id(ring))
    waiting: dict[int, asyncio.Future] = {}
    rest: list[str] = []
    for key_id in needed:
        asked = _asking.get((*scope, key_id))
        if asked is None:
            rest.append(key_id)
        else:
            waiting[id(asked)] = asked
    if rest:
        asked = asyncio.ensure_future(asyncio.to_thread(ring.keys, rest))
        for key_id in rest:
            _asking[(*scope, key_id)] = asked

        def answered(done: asyncio.Future, ids: tuple[str, ...] = tuple(rest)) -> None:
            for key_id in ids:
                if _asking.get((*scope, key_id)) is done:
                    del _asking[(*scope, key_id)]
        asked.add_done_callback(answered)
        waiting[id(asked)] = asked
    keys = {}
    # Shielded: a caller cancelled (a rebalance) does not cancel the ask the others wait for.
    for answer in await asyncio.gather(*(asyncio.shield(asked) for asked in waiting.values())):
        keys.update(answer)
    return {key_id: key for key_id, key in keys.items() if key_id in needed}


def _needed_keys(settings: Settings, events: Sequence[Event]) -> set[str]:
    needed: set[str] = set()
    for event in events:
        needed |= personaldata.sealed_key_ids(event.envelope.event_type, event.payload)
        if event.envelope.event_type == personaldata.ERASURE_EVENT:
            # This process may hold the erased person's keys a short while: not any more.
            personaldata.forget_erased(settings, event)
    return needed


@dataclass
class _BatchMemo:
    """What the projections of the batch being applied share (the processor sets a fresh one per
    batch, ``opened_once``). Each record's event is decoded once for all of them, and opened in
    place by the first that opens it (a profile event was decoded by four projections and opened
    by two); ``opened`` keeps each sealed value's plain text, for a value two events carry. The
    decryptions alone were about a tenth of the projections' CPU. A projection leaving sealed
    fields sealed (``opens_sealed``) may be handed an event another opened: it writes none of them."""

    decoded: dict[int, tuple[bytes, Event | BadEvent]] = field(default_factory=dict)  # id(value) -> (value, its event)
    opened: dict[tuple[str, str], str] = field(default_factory=dict)  # (sealed value, field) -> plain value
    opened_events: dict[int, Event] = field(default_factory=dict)  # the events opened in place, by id()


_batch_memo: contextvars.ContextVar[_BatchMemo | None] = contextvars.ContextVar("batch_memo", default=None)


@contextlib.contextmanager
def opened_once() -> Iterator[None]:
    """Within it (and in the tasks started within it), each record is decoded once and each sealed
    value decrypted once, whichever projection comes first; all is forgotten when it ends."""
    token = _batch_memo.set(_BatchMemo())
    try:
        yield
    finally:
        _batch_memo.reset(token)


def open_afresh() -> None:
    """From now on in this task, records are decoded anew and sealed values opened with the keys
    as they are then: a batch retried (Elasticsearch away, perhaps for long) must not write what
    an erasure meanwhile closed from values opened before it."""
    _batch_memo.set(None)


def _decoded(value: bytes, kept_types: frozenset[str] | None) -> Event | None:
    """``decode_kept``, the event shared with the batch's other projections (``_BatchMemo``)."""
    memo = _batch_memo.get()
    if memo is None:
        return decode_kept(value, kept_types)
    known = memo.decoded.get(id(value))
    if known is None or known[0] is not value:
        try:
            event: Event | BadEvent = decode_kept(value, None)  # type: ignore[assignment]
        except BadEvent as exc:
            event = exc
        memo.decoded[id(value)] = known = (value, event)
    event = known[1]
    if isinstance(event, BadEvent):
        raise BadEvent(str(event))
    if kept_types is not None and event.envelope.aggregate_type not in kept_types:
        return None
    return event


def _open_payloads(events: Sequence[Event], keys: dict[str, bytes]) -> None:
    memo = _batch_memo.get()
    opened = memo.opened if memo is not None else None
    ciphers = personaldata.ciphers(keys)  # each key's cipher made once for the batch
    for event in events:
        personaldata.open_payload(event.envelope.event_type, event.payload, ciphers, opened)


def partition_halves(records: Sequence[Any], partition_of: Callable[[Any], tuple[str, int]]) -> list[list[Any]]:
    """The records in two groups of whole partitions (one group when they come from one), in
    their order, to apply at once: while one waits for Elasticsearch the other computes.
    Safe because a document is one aggregate's (``doc_id``) and an aggregate's events share
    a partition (the relay keys them by aggregate id), so no document is in both groups."""
    partitions = sorted({partition_of(r) for r in records})
    if len(partitions) < 2:
        return [list(records)] if records else []
    first = set(partitions[::2])
    return [[r for r in records if partition_of(r) in first], [r for r in records if partition_of(r) not in first]]


def _env_default(name: str, default: str) -> str:
    return os.environ.get(name) or default


def index_replicas() -> int:
    """Replicas of every shard (WC_ES_REPLICAS): each index the platform creates has them, so
    losing one Elasticsearch node loses nothing."""
    return int(_env_default("WC_ES_REPLICAS", "0"))


def by_name(projections: Iterable[type[DocumentProjection]], name: str) -> type[DocumentProjection]:
    for projection in projections:
        if projection.name == name:
            return projection
    raise KeyError(name)


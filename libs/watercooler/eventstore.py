"""Event-sourced applications on the ``eventsourcing`` library.

Why that library rather than our own store: it already gives us
- aggregates whose decorated methods *are* the events they record;
- optimistic concurrency per aggregate (a unique (id, version) per event: a
  concurrent writer's save fails instead of overwriting);
- SQLite and PostgreSQL recorders chosen by configuration alone;
- a notification log: a gap-free sequence number for every stored event,
  written in the same transaction as the events.  That log is our
  transactional outbox: the relay reads it and publishes to Kafka, and keeps
  its position with the library's tracking recorder.
- upcasting of old event versions (``class_version`` / ``upcast_vN_vM``).

What we add here: the command metadata every event carries (event id, actor,
correlation and causation), idempotent commands by request id (their records in a
table beside the events: ``request_records``), and the mapping of the library's
errors onto domain errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, LRUCache, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent
from eventsourcing.utils import get_topic

from . import metrics, personaldata
from .auth import Principal
from .config import Settings
from .errors import Aborted, DomainError, InvalidArgument, NotFound
from .randomness import random_bits
from .request_records import MOVED_FROM_LOG, RequestRecord, RequestRecorder, recorder_topic

NAMESPACE = uuid.UUID("6f1d8a7e-2b61-4c39-9a43-7d0f3c2b8e11")


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 v7): 48 bits of Unix milliseconds, then randomness.
    Python 3.11's uuid module has no uuid7 yet."""
    ms = time.time_ns() // 1_000_000
    value = (ms & ((1 << 48) - 1)) << 80 | random_bits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def stable_id(*parts: str) -> uuid.UUID:
    """A deterministic aggregate id from natural keys, so a second create of the
    same thing collides on (id, version 1) and is refused by the store itself."""
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


@dataclass(frozen=True)
class CommandContext:
    """Who asked for a change, and how it relates to other changes."""

    principal: Principal
    request_id: str = ""
    correlation_id: str = ""
    causation_id: str = ""

    def event_meta(self) -> dict[str, Any]:
        return {
            "actor": {"subject": self.principal.subject, "kind": self.principal.kind},
            "correlation_id": self.correlation_id or self.request_id,
            "causation_id": self.causation_id or self.request_id,
        }


_command_meta: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("command_meta", default=None)


@contextlib.contextmanager
def command_meta(ctx: CommandContext) -> Iterator[None]:
    token = _command_meta.set(ctx.event_meta())
    try:
        yield
    finally:
        _command_meta.reset(token)


def _meta_for_new_event() -> dict[str, Any]:
    meta = dict(_command_meta.get() or {"actor": {"subject": "system", "kind": "service"}})
    meta["event_id"] = uuid7()
    return meta


@dataclass(frozen=True)
class BatchedCommand:
    """One command of an all-or-nothing batch (AIP-233): what ``run_command`` takes, for
    ``run_commands``. ``decide`` returns the one aggregate the command creates or changes."""

    ctx: CommandContext
    command: str
    request_fingerprint: str
    decide: Callable[[], Aggregate]


@contextlib.contextmanager
def fields_of_request(index: int) -> Iterator[None]:
    """A domain error about the batch's ``index``-th request names its field as AIP-233's
    ``requests[index].…``."""
    try:
        yield
    except DomainError as error:
        error.field = f"requests[{index}].{error.field}" if error.field else f"requests[{index}]"
        raise


class EventSourcedAggregate(Aggregate):
    """Base of every published aggregate: each event carries ``meta`` (event id,
    actor, correlation, causation), filled in from the command being run."""

    class Event(Aggregate.Event):
        meta: dict

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create(cls, event_class, *, id=None, **kwargs):  # noqa: A002 - library signature
        kwargs.setdefault("meta", _meta_for_new_event())
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class, **kwargs):
        kwargs.setdefault("meta", _meta_for_new_event())
        return super().trigger_event(event_class, **kwargs)


class CommandRecord(Aggregate):
    """How request records were kept until 2026-12: an aggregate of their own, in the log.

    Kept to read the records an older version stored (copied once into the table of
    ``request_records`` at start) and for the id every request record has."""

    @staticmethod
    def create_id(command: str, subject: str, request_id: str) -> uuid.UUID:
        return stable_id("request", command, subject, request_id)

    @event("Recorded")
    def __init__(self, command: str, subject: str, request_id: str, fingerprint: str, aggregate_id: str, aggregate_version: int):
        self.command = command
        self.fingerprint = fingerprint
        self.aggregate_id = aggregate_id
        self.aggregate_version = aggregate_version


TAggregate = TypeVar("TAggregate", bound=Aggregate)


def store_env(settings: Settings, service: str) -> dict[str, str]:
    """The eventsourcing persistence settings for a service's own store: the library's recorder
    for it, with the request records beside the events (``request_records``)."""
    env = _persistence_env(settings, service)
    return {**env, "APPLICATION_RECORDER_TOPIC": recorder_topic(env["PERSISTENCE_MODULE"])}


def _persistence_env(settings: Settings, service: str) -> dict[str, str]:
    if settings.store == "postgres":
        schema = f"{settings.namespace}_{service}" if settings.namespace else service
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": settings.postgres_db,
            "POSTGRES_HOST": settings.postgres_host,
            "POSTGRES_PORT": str(settings.postgres_port),
            "POSTGRES_USER": settings.postgres_user,
            "POSTGRES_PASSWORD": settings.postgres_password,
            "POSTGRES_SCHEMA": schema.replace("-", "_").replace(".", "_").lower(),
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
            # The longest a store call waits for a pooled connection (eventsourcing's default is
            # 30 s); its own retries (10, 0.2 s apart) come on top. While PostgreSQL is down a
            # command so fails with UNAVAILABLE after about 12 s instead of 5 minutes.
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "CREATE_TABLE": "y",
        }
    if settings.store != "sqlite":
        raise ValueError(f"WC_STORE must be sqlite or postgres, not {settings.store!r}")
    directory = settings.service_data_dir / (settings.namespace or "default")
    directory.mkdir(parents=True, exist_ok=True)
    # eventsourcing opens the file in WAL mode and leaves `synchronous` at SQLite's default,
    # FULL: each commit is fsync'd before any command of it is acknowledged, so an acknowledged
    # write survives a power loss, not only a SIGKILL. NORMAL would skip that fsync (about a
    # tenth of the profiles service's samples under load) but could lose the last commits on
    # power loss; group commit already shares one fsync among the commands that arrive together.
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(directory / f"{service}.sqlite"),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


@contextlib.contextmanager
def _postgres_schema_created(env: dict[str, str]) -> Iterator[None]:
    """Creates the store's schema (eventsourcing creates tables, not schemas) and holds a lock on
    it while the body creates the tables: several replicas and the relay of one service start
    together, and PostgreSQL's CREATE ... IF NOT EXISTS run at once by two sessions can fail
    ("tuple concurrently updated")."""
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        yield
        return
    import psycopg

    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        dbname=env["POSTGRES_DBNAME"],
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"watercooler-schema:{env['POSTGRES_SCHEMA']}",))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{env["POSTGRES_SCHEMA"]}"')
        yield  # the lock is a session's: closing the connection releases it, whatever happens


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class GroupCommit:
    """Saves the commands that reach the store together in one transaction.

    Why: a store transaction ends in one fsync (SQLite's WAL with synchronous=FULL, or
    PostgreSQL's commit), and the store takes one writer at a time anyway (eventsourcing
    serialises inserts so notification ids follow commit order). Measured on this machine an
    fsync'd SQLite commit costs about 0.9 ms, so one transaction per command capped a service
    near 1,000 commands/s whatever its CPU. Commands that arrive while a commit is under way
    queue up and the next transaction saves all of them: nothing is acknowledged before its
    transaction has committed, and an idle store still commits a lone command at once.

    A batch either commits whole or not at all; if it fails (one command's events collide with
    stored ones: a concurrent change or a repeated request), each command of it is saved again
    on its own, so only the colliding one fails, exactly as without grouping."""

    def __init__(self, app: Application, most: int, service: str):
        self._app = app
        self._service = service
        self._most = max(1, most)
        self._waiting: queue.SimpleQueue[tuple[ProcessingEvent, Future] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name=f"group-commit-{app.name}", daemon=True)
        self._writer.start()

    def save(self, *aggregates: Aggregate, request_records: Sequence[RequestRecord] = ()) -> None:
        """Blocks until the aggregates' pending events and the request records are stored;
        raises what storing raised."""
        command = ProcessingEvent()
        if request_records:
            command.saved_kwargs["request_records"] = list(request_records)
        for aggregate in aggregates:
            # What ProcessingEvent.collect_events does, without its two runtime Protocol
            # checks per aggregate (about 18 us each on Python 3.11, measured).
            command.events.extend(aggregate.collect_events())
            command.aggregates[aggregate.id] = aggregate
        done: Future = Future()
        self._waiting.put((command, done))
        done.result()
        # What Application.save does after recording: snapshots are saved apart, as there.
        self._app._take_snapshots(command)

    def close(self) -> None:
        self._waiting.put(None)
        self._writer.join(timeout=10)

    def _write(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._most:
                try:
                    more = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._waiting.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[tuple[ProcessingEvent, Future]]) -> None:
        if len(batch) > 1:
            together = ProcessingEvent()
            records: list[RequestRecord] = []
            for command, _ in batch:
                together.events.extend(command.events)
                together.aggregates.update(command.aggregates)
                records.extend(command.saved_kwargs.get("request_records", ()))
            if records:
                together.saved_kwargs["request_records"] = records
            try:
                self._app._record(together)
            except Exception:  # noqa: BLE001 - every command is retried alone and gets its own outcome
                metrics.GROUP_COMMIT_SPLITS.labels(self._service).inc()
            else:
                metrics.GROUP_COMMIT_SIZE.labels(self._service).observe(len(batch))
                for _, done in batch:
                    done.set_result(None)
                return
        for command, done in batch:
            try:
                self._app._record(command)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting command
                done.set_exception(error)
            else:
                metrics.GROUP_COMMIT_SIZE.labels(self._service).observe(1)
                done.set_result(None)


def _event_type(service: str, domain_event_class: type) -> str:
    # The proto name of the event's message (as watercooler.envelope.payload_type has it).
    return f"watercooler.{service}.v1.{domain_event_class.__name__}"


def _actor_of(state: dict[str, Any]) -> str:
    return ((state.get("meta") or {}).get("actor") or {}).get("subject", "")


class SealingMapper(Mapper):
    """The library's mapper, with the personal fields of events sealed on the way into the
    store and opened on the way out (``watercooler.personaldata``: the one place that knows
    which fields and whose key). The relay asks for events still sealed
    (``open_sealed=False``), so Kafka carries them sealed as they are stored."""

    def __init__(self, mapper: Mapper, service: str, keys: Callable[[], personaldata.KeyRing]):
        super().__init__(transcoder=mapper.transcoder, compressor=mapper.compressor, cipher=mapper.cipher)
        self.service = service
        self._keys = keys

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event_type = _event_type(self.service, type(domain_event))
        if personaldata.personal(event_type) is not None:
            state = vars(domain_event)
            sealed = personaldata.seal_state(event_type, dict(state), str(state["originator_id"]), _actor_of(state), self._keys())
            domain_event = object.__new__(type(domain_event))
            object.__setattr__(domain_event, "__dict__", sealed)
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent, open_sealed: bool = True) -> Any:
        domain_event = super().to_domain_event(stored_event)
        if open_sealed:
            personaldata.open_state(_event_type(self.service, type(domain_event)), vars(domain_event), self._keys())
        return domain_event


class EventSourcedApplication(Application):
    """A service's application: commands load aggregates, call their methods,
    and save the resulting events; queries read aggregates.  Subclasses hold
    the domain's commands and queries; they never talk gRPC."""

    service_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every application of a service shares the service's one store, the one its relay
        # publishes: SQLite names the table ``stored_events`` whatever the application, but
        # PostgreSQL names it after the application (``<name>_events``), so an application
        # named after its class (the posts service's LibraryApplication) wrote to a table of
        # its own that no relay read. The name is the service's: "PostsApplication" for
        # posts, the name the first application of each service always had.
        declared = "name" in cls.__dict__
        super().__init_subclass__(**kwargs)
        if cls.service_name and not declared:
            cls.name = f"{cls.service_name.capitalize()}Application"

    # Keep recently used aggregates in memory; "fast-forward" still reads any newer events
    # from the store before a command runs, so several replicas never act on stale state
    # (and a stale save would fail on the version anyway).
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "20000", "AGGREGATE_CACHE_FASTFORWARD": "y"}

    def __init__(self, settings: Settings, personal_keys: personaldata.KeyRing | None = None):
        self.settings = settings
        env = store_env(settings, self.service_name)
        # Let the process environment still override (e.g. POSTGRES_POOL_SIZE).
        env.update({k: v for k, v in os.environ.items() if k.startswith(("SQLITE_", "POSTGRES_"))})
        # A ring handed in is its giver's to close; one made here is closed with the application.
        self._owns_key_ring = personal_keys is None
        with _postgres_schema_created(env):
            self.personal_keys = personal_keys or self.construct_key_ring(env)
            super().__init__(env=env)
        self._group_commit = GroupCommit(self, settings.store_group_commit, self.service_name) if settings.store_group_commit > 1 else None
        self._move_request_records_out_of_the_log()

    @property
    def request_records(self) -> RequestRecorder:
        return self.recorder  # type: ignore[return-value]  # store_env chose a request recorder

    def _move_request_records_out_of_the_log(self) -> None:
        """Copy the request records an older version kept in the log (as ``CommandRecord``
        aggregates) into their table, once per store: a request retried across the upgrade is
        then still answered from its first run, and never run twice. Every process of the
        service may do it at once: a record copied twice is kept once, and the mark that the copy
        is done is written only after it."""
        if self.request_records.select_request_record(MOVED_FROM_LOG) is not None:
            return
        topic = get_topic(CommandRecord.Recorded)
        position: int | None = None
        while True:
            page = self.recorder.select_notifications(start=position, limit=1000, topics=[topic], inclusive_of_start=False)
            if not page:
                break
            records = []
            for notification in page:
                recorded = self.mapper.to_domain_event(notification)
                records.append(RequestRecord(recorded.originator_id, recorded.fingerprint, recorded.aggregate_id, recorded.aggregate_version))
            self.request_records.insert_request_records(records)
            position = page[-1].id
        self.request_records.insert_request_records([RequestRecord(MOVED_FROM_LOG, "", "", 0)])

    def construct_key_ring(self, store: dict[str, str]) -> personaldata.KeyRing:
        """Where the personal data keys come from: the profiles service, over gRPC (the profiles
        application overrides this: the keys are in its store)."""
        return personaldata.RemoteKeyRing(self.settings, self.service_name, on_erased=self.forget_cached_aggregates)

    def construct_mapper(self) -> Mapper:
        return SealingMapper(super().construct_mapper(), self.service_name, lambda: self.personal_keys)

    def forget_cached_aggregates(self) -> None:
        """Drop every aggregate this process holds in memory (they are read from the store again):
        after an erasure, a cached aggregate would still show what it was opened with. A new
        cache rather than the library's ``LRUCache.clear``, which empties its order list only."""
        cache = getattr(self.repository, "cache", None)
        if isinstance(cache, LRUCache):
            self.repository.cache = LRUCache(maxsize=cache.maxsize)
        elif cache is not None:
            self.repository.cache = type(cache)()

    def _prepare_keys(self, aggregates: Sequence[Aggregate]) -> None:
        """Fetch (or make) the keys the pending events will be sealed with before the store is
        written: an erased author's write fails here (FAILED_PRECONDITION) with nothing saved,
        and the store's writer never waits for the key service."""
        key_ids: set[str] = set()
        nested: set[str] = set()
        for aggregate in aggregates:
            for pending in aggregate.pending_events:
                state = vars(pending)
                event_type = _event_type(self.service_name, type(pending))
                key_ids |= personaldata.seal_key_ids(event_type, state, str(state["originator_id"]), _actor_of(state))
                nested |= personaldata.nested_key_ids(event_type, state)
        personaldata.require_keys(self.personal_keys, key_ids)
        if nested - key_ids:
            # What others wrote, copied in (a jam's results): an erased author's copy is written
            # as its tombstone, so these are fetched (made if new) but not required.
            self.personal_keys.keys(nested - key_ids, create=True)

    def close(self) -> None:
        if self._group_commit:
            self._group_commit.close()
        if self._owns_key_ring:
            self.personal_keys.close()
        super().close()

    # --- the one way a command changes state ------------------------------------------------
    def run_command(
        self,
        ctx: CommandContext,
        command: str,
        request_fingerprint: str,
        decide: Callable[[], Aggregate | Sequence[Aggregate]],
    ) -> Aggregate:
        """Run ``decide`` (which loads aggregates and calls their methods) and save
        every resulting event atomically.  Returns the first aggregate.

        - With a request id, a retry returns the aggregate as the first run left it
          and records nothing new; the same id with a different request is refused.
        - A concurrent change to the same aggregate makes the save fail: ABORTED.
        """
        # No read for the request id up front: the command record below has an id derived
        # from it, so a retry can never save twice — its save collides (IntegrityError) or
        # its decision fails (DomainError), and both paths return the first run's result.
        try:
            with command_meta(ctx):
                result = decide()
        except DomainError:
            # A concurrent retry of this very request may have just completed.
            if ctx.request_id:
                earlier = self._replay_earlier(ctx, command, request_fingerprint)
                if earlier is not None:
                    return earlier
            raise
        aggregates = [result] if isinstance(result, Aggregate) else list(result)
        primary = aggregates[0]
        records = [self._request_record(ctx, command, request_fingerprint, primary)] if ctx.request_id else []
        pending = sum(len(a.pending_events) for a in aggregates)
        self._prepare_keys(aggregates)
        try:
            self._save_together(aggregates, records)
        except IntegrityError:
            if ctx.request_id:
                earlier = self._replay_earlier(ctx, command, request_fingerprint)
                if earlier is not None:
                    return earlier
            raise Aborted(
                "the resource was changed concurrently; read it again and retry",
                field="etag",
            ) from None
        metrics.EVENTS_STORED.labels(self.service_name).inc(pending)
        return primary

    def run_commands(self, commands: Sequence[BatchedCommand]) -> list[Aggregate]:
        """AIP-233's all or nothing: decide every command in order, then save all their events
        in one transaction, or none. A decision may rely on the ones before it (a new profile's
        manager created earlier in the batch), since the caller tracks what it decided.

        Each command keeps its own request id, exactly as if it had been sent alone: a retried
        batch returns what the first run left, and any of its commands retried alone returns
        its own first result. An error names ``requests[i].…``."""
        decided: list[Aggregate] = []
        try:
            for index, command in enumerate(commands):
                with fields_of_request(index), command_meta(command.ctx):
                    decided.append(command.decide())
        except DomainError:
            earlier = self._replay_all_earlier(commands)
            if earlier is not None:
                return earlier
            raise
        records = [
            self._request_record(command.ctx, command.command, command.request_fingerprint, aggregate)
            for command, aggregate in zip(commands, decided, strict=True)
            if command.ctx.request_id
        ]
        pending = sum(len(a.pending_events) for a in decided)
        self._prepare_keys(decided)
        try:
            self._save_together(decided, records)
        except IntegrityError:
            earlier = self._replay_all_earlier(commands)
            if earlier is not None:
                return earlier
            raise Aborted("a resource of the batch was changed or created concurrently; nothing was saved", field="requests") from None
        metrics.EVENTS_STORED.labels(self.service_name).inc(pending)
        return decided

    def _replay_all_earlier(self, commands: Sequence[BatchedCommand]) -> list[Aggregate] | None:
        """The first run's results when every command of the batch is a retry, else None."""
        if not all(command.ctx.request_id for command in commands):
            return None
        earlier: list[Aggregate] = []
        for index, command in enumerate(commands):
            with fields_of_request(index):
                found = self._replay_earlier(command.ctx, command.command, command.request_fingerprint)
            if found is None:
                return None
            earlier.append(found)
        return earlier

    def _save_together(self, aggregates: Sequence[Aggregate], request_records: Sequence[RequestRecord]) -> None:
        if self._group_commit:
            self._group_commit.save(*aggregates, request_records=request_records)
        else:
            self.save(*aggregates, request_records=request_records)  # handed on to the recorder's insert

    def _request_record(self, ctx: CommandContext, command: str, request_fingerprint: str, primary: Aggregate) -> RequestRecord:
        return RequestRecord(self._command_record_id(ctx, command), request_fingerprint, str(primary.id), primary.version)

    def _command_record_id(self, ctx: CommandContext, command: str) -> uuid.UUID:
        return CommandRecord.create_id(command, ctx.principal.subject, ctx.request_id)

    def _replay_earlier(self, ctx: CommandContext, command: str, request_fingerprint: str) -> Aggregate | None:
        record_id = self._command_record_id(ctx, command)
        record = self.request_records.select_request_record(record_id) or self._request_record_in_the_log(record_id)
        if record is None:
            return None
        if record.fingerprint != request_fingerprint:
            raise InvalidArgument("request_id was already used for a different request", field="request_id")
        return self.repository.get(uuid.UUID(record.aggregate_id), version=record.aggregate_version)

    def _request_record_in_the_log(self, record_id: uuid.UUID) -> RequestRecord | None:
        """A record an older replica saved in the log after this store's copy was made (while a
        rolling upgrade runs both versions). Read only where a retry is suspected (the command
        failed), never on the way of a write."""
        try:
            old: CommandRecord = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        return RequestRecord(record_id, old.fingerprint, old.aggregate_id, old.aggregate_version)

    # --- queries -------------------------------------------------------------------------------
    def load(self, aggregate_id: uuid.UUID, kind: type[TAggregate], what: str, field: str = "name") -> TAggregate:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found", field=field) from None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{what} not found", field=field)
        return aggregate

    def exists(self, aggregate_id: uuid.UUID) -> bool:
        return aggregate_id in self.repository

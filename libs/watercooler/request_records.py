"""Request records (AIP-155): what a command run with a request id produced, so that a retry
is answered from the first run and a request id reused for another request is refused.

A record is a row of its own table beside the events, written in the same transaction as the
command's events: either both exist or neither, and a second record of one request id fails
the whole transaction on the table's primary key, exactly as a second event of one aggregate
version does. Records never enter the notification log: they are bookkeeping, not facts.

Why not an aggregate, as they were until 2026-12: as events, every write with a request id
stored two rows in the log (the fact and its record), built and mapped an aggregate for the
record, and the relay read the record back only to skip it. Measured in one process (the
profiles service's BatchCreateProfiles, 30,000 profiles each with a request id, three pairs):
0.172-0.208 ms of CPU a profile with records as aggregates, 0.144-0.154 as rows
(docs/benchmarks/write-path.md, 2026-12-07).

Why subclasses of the library's recorders and not a table of our own: the record must commit
with the events, and the library's recorder owns that transaction. Its hook for rows written
with the events (``_insert_events``, which its process recorders use for tracking rows) is
where these go; the recorder class is chosen by the library's own setting,
``APPLICATION_RECORDER_TOPIC`` (``eventstore.store_env``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

# A row no request can have (uuid5 ids are never nil): present once the records an older
# version kept in the log have been copied here (``EventSourcedApplication``).
MOVED_FROM_LOG = uuid.UUID(int=0)


@dataclass(frozen=True)
class RequestRecord:
    id: uuid.UUID  # from the command, the caller and the request id (``CommandRecord.create_id``)
    fingerprint: str  # of the request, to refuse the id reused for another request
    aggregate_id: str  # what the first run produced, and at which version
    aggregate_version: int


class RequestRecorder(Protocol):
    def select_request_record(self, record_id: uuid.UUID) -> RequestRecord | None: ...

    def insert_request_records(self, records: Sequence[RequestRecord]) -> None:
        """Outside any command, each record unless one of its id is there already (the copy of
        the log's old records, which several processes of a service may make at once)."""


def row_of(record: RequestRecord) -> tuple[Any, ...]:
    return (record.id, record.fingerprint, record.aggregate_id, record.aggregate_version)


def _sqlite_row(record: RequestRecord) -> tuple[Any, ...]:
    return (record.id.hex, record.fingerprint, record.aggregate_id, record.aggregate_version)


class SQLiteRequestRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, with the request records of a command in its transaction."""

    TABLE = "request_records"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "aggregate_id TEXT NOT NULL, aggregate_version INTEGER NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], *, request_records: Sequence[RequestRecord] = (), **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if request_records:
            c.executemany(f"INSERT INTO {self.TABLE} VALUES (?,?,?,?)", [_sqlite_row(r) for r in request_records])
        return ids

    def select_request_record(self, record_id: uuid.UUID) -> RequestRecord | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT * FROM {self.TABLE} WHERE id=?", (record_id.hex,))
            row = c.fetchone()
        if row is None:
            return None
        return RequestRecord(uuid.UUID(row["id"]), row["fingerprint"], row["aggregate_id"], row["aggregate_version"])

    def insert_request_records(self, records: Sequence[RequestRecord]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(f"INSERT OR IGNORE INTO {self.TABLE} VALUES (?,?,?,?)", [_sqlite_row(r) for r in records])


def recorder_topic(persistence_module: str) -> str:
    """``APPLICATION_RECORDER_TOPIC`` for the store chosen."""
    if persistence_module == "eventsourcing.postgres":
        # Its own module, so that a service on SQLite never imports psycopg.
        return "watercooler.request_records_postgres:PostgresRequestRecorder"
    return f"{__name__}:{SQLiteRequestRecorder.__qualname__}"

"""The PostgreSQL recorder with request records (``watercooler.request_records`` says why).
A module of its own so that a service on SQLite never imports psycopg."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from .request_records import RequestRecord, row_of


class PostgresRequestRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, with the request records of a command in its transaction."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            # That path inserts the events through a stored function and drops other rows.
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS would leave request records unsaved; unset it")
        self.request_records_table = events_table_name.removesuffix("_events") + "_request_records"
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (id uuid PRIMARY KEY, fingerprint text NOT NULL, "
                "aggregate_id text NOT NULL, aggregate_version bigint NOT NULL)"
            ).format(schema=Identifier(datastore.schema), table=Identifier(self.request_records_table))
        )
        self._table = SQL("{schema}.{table}").format(schema=Identifier(datastore.schema), table=Identifier(self.request_records_table))

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], *, request_records: Sequence[RequestRecord] = (), **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if request_records:
            # The events' table lock first, as every writer of events takes it: two retries of
            # one request then wait on the lock, never on each other's record (a deadlock).
            self._lock_table(curs)
            curs.executemany(SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(self._table), [row_of(r) for r in request_records])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's reads
    def select_request_record(self, record_id: uuid.UUID) -> RequestRecord | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {} WHERE id=%s").format(self._table), (record_id,))
            row = curs.fetchone()
        if row is None:
            return None
        return RequestRecord(row["id"], row["fingerprint"], row["aggregate_id"], row["aggregate_version"])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_request_records(self, records: Sequence[RequestRecord]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(SQL("INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING").format(self._table), [row_of(r) for r in records])

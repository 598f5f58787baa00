"""The personal data keys: one row per key id in the profiles service's own store.

Not events: a key must be destroyable, and nothing in an event store ever is. So the keys are
a plain table next to the stored events (the same SQLite file, or the service's PostgreSQL
schema), and destroying one overwrites its row's key with NULL and keeps the row as the record
that the id was erased, so no key is ever made for it again (a late write of the person's
fails rather than start a readable history anew).

SQLite runs with ``secure_delete`` on, so the destroyed key's bytes are overwritten in the
database file rather than left in a free page; PostgreSQL keeps an old row version until
VACUUM reclaims it (docs/personal-data.md says so, with backups).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable
from typing import Any

from watercooler import personaldata

_SCHEMA = "CREATE TABLE IF NOT EXISTS personal_data_keys (key_id TEXT PRIMARY KEY, key BLOB, erased_at TEXT)"


class _KeyRequest:
    """One caller's key ids, and what the transaction that made them answered."""

    def __init__(self, ids: list[str]):
        self.ids = ids
        self.keys: dict[str, bytes] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()


class PersonalKeyTable:
    """The key store (a ``KeyRing``): read, made on a first write, destroyed on erasure."""

    def __init__(self, env: dict[str, str]):
        self._env = env
        self._lock = threading.Lock()
        self._postgres = env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"
        self._conn: Any = None
        # Key requests waiting for the next transaction (``keys`` with ``create``).
        self._queue_lock = threading.Lock()
        self._queue: list[_KeyRequest] = []
        with self._lock:
            self._execute(_SCHEMA)

    # --- connections --------------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None:
            if self._postgres:
                import psycopg

                schema = self._env["POSTGRES_SCHEMA"]
                self._conn = psycopg.connect(host=self._env["POSTGRES_HOST"], port=int(self._env["POSTGRES_PORT"]), user=self._env["POSTGRES_USER"],
                                             password=self._env["POSTGRES_PASSWORD"], dbname=self._env["POSTGRES_DBNAME"], autocommit=True,
                                             options=f"-c search_path={schema}")
            else:
                self._conn = sqlite3.connect(self._env["SQLITE_DBNAME"], timeout=float(self._env.get("SQLITE_LOCK_TIMEOUT", "10")),
                                             isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA secure_delete=ON")
        return self._conn

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        if self._postgres:
            sql = sql.replace("?", "%s").replace("BLOB", "BYTEA")
        try:
            cursor = self._connection().execute(sql, tuple(params))
            return list(cursor.fetchall()) if cursor.description else []
        except Exception:
            self._close()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # --- the key ring --------------------------------------------------------------------------------
    def keys(self, key_ids: Collection[str], create: bool = False) -> dict[str, bytes]:
        ids = sorted(set(key_ids))
        if not ids:
            return {}
        if not create:
            with self._lock:
                found = self._select(ids)
            return {key_id: bytes(key) for key_id, key in found.items() if key is not None}
        # Group commit, as the event store's: every new profile needs a new key, and each key
        # made in a transaction of its own cost an fsync'd commit per CreateProfile. Callers
        # that arrive while a commit is under way queue up, and the next one to hold the lock
        # makes all their keys in one transaction. Each caller still returns only after the
        # commit holding its keys is durable, so no key is used before it is kept.
        asked = _KeyRequest(ids)
        with self._queue_lock:
            self._queue.append(asked)
        with self._lock:
            if not asked.done.is_set():
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._make_keys(group)
        if asked.error is not None:
            raise asked.error
        return asked.keys

    def _make_keys(self, group: list[_KeyRequest]) -> None:
        """The keys of every request of ``group``, made where missing in one transaction."""
        try:
            ids = sorted({key_id for request in group for key_id in request.ids})
            found = self._select(ids)
            new = [key_id for key_id in ids if key_id not in found]
            if new:
                # Two replicas making the same person's first key: the first insert wins and
                # both read it back, so nothing is ever sealed with a key that was not kept.
                # One transaction for them all: a bulk import makes a thousand at once.
                self._insert_new(list(zip(new, personaldata.generate_keys(len(new)), strict=True)))
                found.update(self._select(new))
        except BaseException as error:  # noqa: BLE001 - handed to every caller of the group
            for request in group:
                request.error = error
                request.done.set()
            raise
        for request in group:
            request.keys = {key_id: bytes(found[key_id]) for key_id in request.ids if found.get(key_id) is not None}
            request.done.set()

    def _insert_new(self, rows: list[tuple[str, bytes]]) -> None:
        sql = "INSERT INTO personal_data_keys (key_id, key) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING"
        try:
            conn = self._connection()
            if self._postgres:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(sql.replace("?", "%s"), rows)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except Exception:
            self._close()
            raise

    def _select(self, ids: list[str]) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            for key_id, key in self._execute(f"SELECT key_id, key FROM personal_data_keys WHERE key_id IN ({marks})", chunk):
                out[key_id] = key
        return out

    def destroy(self, key_ids: Collection[str], erased_at: str) -> int:
        """Destroy the keys (an id that never had one is recorded as erased too); how many existed."""
        with self._lock:
            existing = {key_id for key_id, key in self._select(sorted(set(key_ids))).items() if key is not None}
            for key_id in sorted(set(key_ids)):
                self._execute("INSERT INTO personal_data_keys (key_id, key, erased_at) VALUES (?, NULL, ?) "
                              "ON CONFLICT (key_id) DO UPDATE SET key = NULL, erased_at = COALESCE(personal_data_keys.erased_at, excluded.erased_at)",
                              (key_id, erased_at))
        return len(existing)

    def close(self) -> None:
        with self._lock:
            self._close()

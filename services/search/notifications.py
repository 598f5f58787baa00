"""Reading a person's notifications as that person: only their own, only what they may see now.

The projection (services/search/readmodels/projections/notifications.py) records what each notification
is about (``subject_kind``, ``subject_id``); whether the recipient may see it is decided here,
on every read, with the search side's rule (``visibility.kind_filter``, the one Search uses): a
notification about an item made PRIVATE, hidden or deleted afterwards is absent from the list,
the count and the stream, exactly as if it had never been made. Kinds the person switched off
(their settings, services/search/readmodels/projections/notification_settings.py) are left out the same way.

Order: ``seq`` (the order notifications were indexed), newest first in lists; ties cannot
happen (one writer stamps strictly increasing values) but the name breaks them anyway.

``WatchNotifications`` polls Elasticsearch (every WATCH_POLL_SECONDS) rather than consuming
Kafka: the cursor (``seq``), the removal of duplicates (the projection's create-once ids) and
the visibility check all live in the index, so a stream read from it delivers exactly what
ListNotifications lists, in the same order, and resumes from any notification's ``seq``. A
Kafka consumer per open stream would need the same three again, and every stream would read
every recipient's events. The cost: one search per open stream per interval. A notification
can be indexed before the item it is about reaches that item's index (another projection):
the stream waits for the item (SUBJECT_WAIT_SECONDS) instead of passing the notification by
as invisible; lists and counts simply show it once the item is there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler import visibility as rule
from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, NotFound
from watercooler.rpc import parse_name

from .readmodels import indices
from .unified import KINDS as SEARCH_KINDS
from .unified import index_of
from .visibility import Scope, kind_filter, scope_of

WATCH_POLL_SECONDS = 0.2
CANDIDATES = 200  # notifications read per round while filling a page or counting
WATCH_BATCH = 100
# How long the stream waits for the item a notification is about to reach its own index
# (another projection, maybe behind this one) before passing the notification by.
SUBJECT_WAIT_SECONDS = 30.0


def notification_id_of(person: str, after: str) -> str:
    """The id in ``profiles/{person}/notifications/{id}`` (WatchNotifications' ``after``)."""
    prefix = f"profiles/{person}/notifications/"
    if not after.startswith(prefix) or "/" in after[len(prefix):] or len(after) == len(prefix):
        raise InvalidArgument(f"must look like '{prefix}{{notification_id}}'", field="after")
    return after[len(prefix):]


def owner_of(principal: Principal, parent: str, field: str = "parent") -> str:
    """The recipient named by ``parent``: the caller themself. Anyone else's notifications
    answer as if they did not exist (they are nobody's business, services' included)."""
    person = parse_name(parent, "profiles", field=field)
    # Guests have no profile (a guest id equal to an employee's is still not that employee).
    if principal.subject != person or principal.kind not in ("employee", "alumni"):
        raise NotFound(f"profiles/{person}/notifications not found", field=field)
    return person


class Notifications:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es, self.settings = es, settings
        self.alias = settings.index_alias(indices.NOTIFICATIONS)

    async def _preferences(self, person: str) -> tuple[list[str], int]:
        """(kinds switched off, seq of the furthest notification marked read)."""
        try:
            found = await self.es.get(index=self.settings.index_alias(indices.NOTIFICATION_SETTINGS), id=person, realtime=True)
        except NotFoundError:
            return [], 0
        source = found["_source"]
        return list(source.get("disabled_kinds") or []), int(source.get("read_seq") or 0)

    def _query(self, person: str, disabled: list[str], after_seq: int = 0) -> dict[str, Any]:
        must_not: list[dict[str, Any]] = [{"terms": {"kind": disabled}}] if disabled else []
        return {"bool": {"filter": [{"term": {"recipient": person}}, {"term": {"deleted": False}}, {"range": {"seq": {"gt": after_seq}}}], "must_not": must_not}}

    async def visible(self, scope: Scope, docs: list[dict[str, Any]]) -> set[str]:
        """The names of those notifications whose subject the caller may see now."""
        return (await self.sorted_out(scope, docs))[0]

    async def sorted_out(self, scope: Scope, docs: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
        """(names shown, names whose subject is not indexed yet): the item's own projection may be
        behind the notifications' (the stream waits for those rather than pass them by)."""
        principal = scope.principal
        by_kind: dict[str, set[str]] = {}
        for doc in docs:
            by_kind.setdefault(doc["subject_kind"], set()).add(doc["subject_id"])
        seen: dict[str, set[str]] = {}
        present: dict[str, set[str]] = {}
        for kind, ids in by_kind.items():
            present[kind] = ids
            if kind in ("person", "community"):
                seen[kind] = ids if rule.may_browse_directory(principal) else set()
            elif kind == "jam":
                seen[kind] = ids if scope.jams is None else ids & set(scope.jams)
            elif kind in SEARCH_KINDS:
                # One search: every subject found (present), and which of them the rule keeps (named).
                query = {"bool": {"filter": [{"ids": {"values": sorted(ids)}}, *SEARCH_KINDS[kind][1]],
                                  "should": [{"bool": {"filter": kind_filter(scope, kind), "_name": "visible"}}]}}
                try:
                    found = (await self.es.search(index=index_of(self.settings, kind), query=query, size=len(ids), source=False))["hits"]["hits"]
                except NotFoundError:
                    found = []
                present[kind] = {hit["_id"] for hit in found}
                seen[kind] = {hit["_id"] for hit in found if "visible" in (hit.get("matched_queries") or ())}
            else:
                seen[kind] = set()
        shown = {doc["name"] for doc in docs if doc["subject_id"] in seen.get(doc["subject_kind"], set())}
        missing = {doc["name"] for doc in docs if doc["subject_id"] not in present.get(doc["subject_kind"], set())}
        return shown, missing

    async def _candidates(self, person: str, disabled: list[str], after_seq: int, search_after: list[Any] | None, size: int, newest_first: bool) -> list[dict[str, Any]]:
        order = "desc" if newest_first else "asc"
        body: dict[str, Any] = {"query": self._query(person, disabled, after_seq), "sort": [{"seq": order}, {"name": order}], "size": size}
        if search_after is not None:
            body["search_after"] = search_after
        try:
            found = await self.es.search(index=self.alias, routing=person, **body)
        except NotFoundError:
            return []
        return [{**hit["_source"], "_sort": hit["sort"]} for hit in found["hits"]["hits"]]

    async def list(
        self, principal: Principal, person: str, unread_only: bool, size: int, search_after: list[Any] | None
    ) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
        """ListNotifications of ``person`` (owner_of the caller), newest first: (the documents the
        caller may see, the seq up to which they are read, the last one's sort values when the
        page is full)."""
        disabled, read_seq = await self._preferences(person)
        scope = await scope_of(self.es, self.settings, principal, SEARCH_KINDS)
        listed: list[dict[str, Any]] = []
        last_sort: list[Any] | None = None
        while len(listed) < size:
            docs = await self._candidates(person, disabled, read_seq if unread_only else 0, search_after, CANDIDATES, newest_first=True)
            if not docs:
                last_sort = None
                break
            shown = await self.visible(scope, docs)
            for doc in docs:
                search_after = doc["_sort"]
                if doc["name"] in shown:
                    listed.append(doc)
                    last_sort = doc["_sort"]
                    if len(listed) == size:
                        break
            if len(docs) < CANDIDATES and len(listed) < size:
                last_sort = None
                break
        return listed, read_seq, last_sort

    async def unread_count(self, principal: Principal, person: str) -> int:
        """Counts exactly what ListNotifications(unread_only) lists: each unread notification
        is checked for visibility like a listed one."""
        disabled, read_seq = await self._preferences(person)
        scope = await scope_of(self.es, self.settings, principal, SEARCH_KINDS)
        count, search_after = 0, None
        while True:
            docs = await self._candidates(person, disabled, read_seq, search_after, 1000, newest_first=False)
            if not docs:
                break
            count += len(await self.visible(scope, docs))
            search_after = docs[-1]["_sort"]
        return count

    async def watch(self, principal: Principal, person: str, after_id: str) -> AsyncIterator[tuple[dict[str, Any], int]]:
        """Each notification of ``person`` the caller may see, oldest first, after ``after_id``
        (or from now), with the seq up to which they are read; it never ends."""
        cursor = await self._start(person, after_id)
        first_missing: dict[str, float] = {}
        while True:
            disabled, read_seq = await self._preferences(person)
            docs = await self._candidates(person, disabled, cursor, None, WATCH_BATCH, newest_first=False)
            waiting = False
            if docs:
                # Read fresh each round: a membership or a visibility that changed reaches the stream too.
                scope = await scope_of(self.es, self.settings, principal, SEARCH_KINDS)
                shown, missing = await self.sorted_out(scope, docs)
                for doc in docs:
                    if doc["name"] in missing and time.monotonic() - first_missing.setdefault(doc["name"], time.monotonic()) < SUBJECT_WAIT_SECONDS:
                        waiting = True  # its item is not indexed yet: this one and those after it wait
                        break
                    cursor = doc["seq"]
                    first_missing.pop(doc["name"], None)
                    if doc["name"] in shown:
                        yield doc, read_seq
            if waiting or len(docs) < WATCH_BATCH:
                await asyncio.sleep(WATCH_POLL_SECONDS)

    async def _start(self, person: str, after_id: str) -> int:
        """The seq to stream after: that of ``after_id`` (one of the caller's notifications), or the
        newest one's now."""
        if after_id:
            after = f"profiles/{person}/notifications/{after_id}"
            try:
                found = await self.es.get(index=self.alias, id=after_id, routing=person, realtime=True)
            except NotFoundError:
                raise NotFound(f"{after} not found", field="after") from None
            if found["_source"]["recipient"] != person:
                raise NotFound(f"{after} not found", field="after")
            return int(found["_source"]["seq"])
        try:
            found = await self.es.search(index=self.alias, routing=person, query={"term": {"recipient": person}}, sort=[{"seq": "desc"}], size=1, source=["seq"])
        except NotFoundError:
            return 0
        hits = found["hits"]["hits"]
        return int(hits[0]["_source"]["seq"]) if hits else 0


__all__ = ["Notifications", "notification_id_of", "owner_of"]

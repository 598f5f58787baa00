"""Callers' communities, kept in the search service's memory until a community changes.

Every Search, Suggest and list of a caller not seen in the last second read the caller's
communities from the communities index first (``visibility._read_scope``): one more
Elasticsearch request before the query itself. Each request has a fixed price whatever it asks
(over a million documents, 2.1 ms of Elasticsearch CPU for a search that matches everything and
returns nothing; the scope's ``_msearch`` 2.25 ms, a Search of the mix 13-15 ms: docs/search.md,
"What a request costs before it asks anything"), and at company scale nearly every caller is one
not seen in the last second.

So a caller's communities, once read, are kept until one of the communities changes, as
Google's Zanzibar keeps group memberships in memory for its checks (its Leopard index). Once a
second at most, when a request needs them, one poll asks the communities index for every
document written since the last poll, by the index's own sequence numbers, and applies them to
what is kept: a member added is given the community, one removed (or a community deleted) loses
it. The kept value is so never older than the poll interval plus the projection's lag, as the
one-second scope was.

Why sequence numbers and not a timestamp the projection writes: they are Elasticsearch's, so a
write by any projection worker (an older one during a rolling upgrade too) is seen, and a
write still under way when a refresh happened is not stepped over: a poll reads the shard's
*global checkpoint* (every operation up to it is done on every copy), refreshes the index, and
then asks for what came after the previous poll's checkpoint; the next poll starts from this
one's. Nothing in the index is ever deleted (a community is marked deleted), so nothing is
missed by being absent.

What is kept is only ever trusted right after a successful poll (within ``POLL_SECONDS``): a
poll that fails leaves the callers read directly, as before, until one succeeds. An index of
more than one shard (each with sequence numbers of its own) is never kept: callers are read
directly. A rebuild (`watercooler reindex communities`: the alias moves to a new index) forgets
everything kept. A caller read while a poll was being applied is used for that request and not
kept: the read may have missed what the poll applied to everyone kept.

Memory: one tuple of community ids per caller kept (at most ``KEPT_CALLERS``, the least
recently used going first) and, per community, the set of kept callers who belong to it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.config import Settings

from .readmodels import indices

log = logging.getLogger(__name__)

# Elasticsearch's search stats count a caller's communities read directly, and the polls, in
# these groups (`GET <ns>-wc-communities/_stats/search?groups=...`).
STATS_MEMBERS_READ = "wc-members-read"
STATS_MEMBERS_POLL = "wc-members-poll"
POLL_SECONDS = 1.0  # the scope's keep time before this: a membership change reaches a caller as soon as then
POLL_PAGE = 1000
# The callers kept, the least recently used going first past it: 0.7 KB each with five
# communities (measured with tracemalloc), so about 70 MB at the bound, inside the search pod's
# 512 MiB (deploy/k8s/base/platform/search.yaml). The company's 400,000 people would need four
# times that; the most recent 100,000 callers are the ones likely to come back within the hour.
KEPT_CALLERS = 100_000
KEPT_SECONDS = 86_400.0  # a bound, should a change ever be missed
SEVERAL_SHARDS_SECONDS = 60.0


class KeptMemberships:
    """employee id -> the ids of the (not deleted) communities whose ``members`` hold them, for
    one deployment's communities index."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es, self.alias = es, settings.index_alias(indices.COMMUNITIES)
        self._kept: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._holders: dict[str, set[str]] = {}  # community id -> kept callers in it
        self._index: str | None = None  # the concrete index the checkpoint is of
        self._checkpoint: int | None = None
        self._polled_at: float | None = None  # time.monotonic() of the last successful poll
        self._failing = False
        self._several_shards_until = 0.0  # an index of several shards is looked at again then
        self.generation = 0  # moves on each time a poll's changes are applied
        self._poll_lock = asyncio.Lock()

    # --- reading --------------------------------------------------------------------------------
    async def usable(self) -> bool:
        """Whether what is kept may be used now: polls when one is due (one at a time; the
        requests that waited find it done). False when the poll failed or cannot be made."""
        if self._fresh():
            return True
        if self._several_shards_until > time.monotonic():
            return False
        async with self._poll_lock:
            if not self._fresh():
                try:
                    await self._poll()
                    self._failing = False
                except Exception as exc:  # noqa: BLE001 — any failure: read directly until a poll succeeds
                    if not self._failing:  # once per outage, not per request
                        self._failing = True
                        log.warning("communities poll failed: callers' communities are read directly until one succeeds",
                                    extra={"index": self.alias, "error": f"{type(exc).__name__}: {exc}"})
                    self._polled_at = None
        return self._fresh()

    def kept(self, employee_id: str) -> tuple[str, ...] | None:
        """The caller's communities if kept (call after ``usable`` answered True)."""
        entry = self._kept.get(employee_id)
        if entry is None or time.monotonic() - entry[0] >= KEPT_SECONDS:
            return None
        self._kept.move_to_end(employee_id)  # past KEPT_CALLERS, the least recently used go
        return entry[1]

    def keep(self, employee_id: str, communities: Iterable[str], generation: int) -> None:
        """Keep the communities read for a caller, if no poll was applied since the read began
        (``generation``, read before it)."""
        if generation != self.generation or not self._fresh():
            return
        self._forget(employee_id)
        ids = tuple(sorted({sys.intern(c) for c in communities}))  # one string per community, however many hold it
        self._kept[employee_id] = (time.monotonic(), ids)
        for community in ids:
            self._holders.setdefault(community, set()).add(employee_id)
        while len(self._kept) > KEPT_CALLERS:
            self._forget(next(iter(self._kept)))

    @property
    def polled_at(self) -> float | None:
        """When the last successful poll was (``time.monotonic``): what is kept is as of then."""
        return self._polled_at

    def _fresh(self) -> bool:
        return self._polled_at is not None and time.monotonic() - self._polled_at < POLL_SECONDS

    def _forget(self, employee_id: str) -> None:
        entry = self._kept.pop(employee_id, None)
        for community in entry[1] if entry else ():
            holders = self._holders.get(community)
            if holders is not None:
                holders.discard(employee_id)
                if not holders:
                    del self._holders[community]

    def clear(self) -> None:
        self._kept.clear()
        self._holders.clear()

    # --- polling --------------------------------------------------------------------------------
    async def _poll(self) -> None:
        index, checkpoint = await self._shard_checkpoint()
        if index is None:  # no index yet: nobody belongs to anything, and nothing is kept
            self.clear()
            self._index, self._checkpoint, self._polled_at = None, None, time.monotonic()
            return
        if checkpoint is None:  # several shards: callers are read directly (looked at again a minute later)
            self.clear()
            self._index, self._checkpoint, self._polled_at = index, None, None
            self._several_shards_until = time.monotonic() + SEVERAL_SHARDS_SECONDS
            return
        await self.es.indices.refresh(index=index)
        changed: list[dict[str, Any]] = []
        if index == self._index and self._checkpoint is not None:
            changed = await self._written_after(index, self._checkpoint)
        else:  # first poll, or a rebuilt index: what was kept was read from another one
            self.clear()
        self.apply(changed)
        self._index, self._checkpoint, self._polled_at = index, checkpoint, time.monotonic()

    async def _shard_checkpoint(self) -> tuple[str | None, int | None]:
        """(the index behind the alias, its one shard's global checkpoint); (None, None) without
        an index; (index, None) for an index of several shards."""
        stats = await self.es.options(ignore_status=404).indices.stats(index=self.alias, level="shards", metric="docs",
                                                                       filter_path="indices.*.shards.*.seq_no")
        found = stats.get("indices") or {}
        if len(found) != 1:
            return None, None
        [(index, info)] = found.items()
        shards = info.get("shards") or {}
        if len(shards) != 1:
            return index, None
        [copies] = shards.values()
        # Every copy's view of the global checkpoint; the smallest is done everywhere.
        return index, min(copy["seq_no"]["global_checkpoint"] for copy in copies)

    async def _written_after(self, index: str, checkpoint: int) -> list[dict[str, Any]]:
        """Every community document written after ``checkpoint`` (its current version)."""
        out: list[dict[str, Any]] = []
        after: list[Any] | None = None
        while True:
            page = await self.es.search(index=index, query={"range": {"_seq_no": {"gt": checkpoint}}}, size=POLL_PAGE,
                                        source=["community_id", "members", "deleted"], sort=[{"_seq_no": "asc"}], track_total_hits=False,
                                        search_after=after, stats=[STATS_MEMBERS_POLL])
            hits = page["hits"]["hits"]
            out += [hit["_source"] for hit in hits]
            if len(hits) < POLL_PAGE:
                return out
            after = hits[-1]["sort"]

    def apply(self, communities: Iterable[dict[str, Any]]) -> None:
        """Bring what is kept up to the communities' documents as they are now."""
        for doc in communities:
            community = sys.intern(doc.get("community_id") or "")
            members = set() if doc.get("deleted") else set(doc.get("members") or ())
            for employee_id in list(self._holders.get(community, ())):
                if employee_id not in members:
                    self._set(employee_id, tuple(c for c in self._kept[employee_id][1] if c != community))
                    self._holders[community].discard(employee_id)
            for employee_id in members:
                entry = self._kept.get(employee_id)
                if entry is not None and community not in entry[1]:
                    self._set(employee_id, tuple(sorted((*entry[1], community))))
                    self._holders.setdefault(community, set()).add(employee_id)
            if not self._holders.get(community, True):
                del self._holders[community]
        self.generation += 1

    def _set(self, employee_id: str, communities: tuple[str, ...]) -> None:
        stored_at, _ = self._kept[employee_id]
        self._kept[employee_id] = (stored_at, communities)


_deployments: dict[tuple[int, str], KeptMemberships] = {}


def kept_memberships(es: AsyncElasticsearch, settings: Settings) -> KeptMemberships:
    """The memberships kept for this client and namespace (one per deployment the process serves)."""
    key = (id(es), settings.namespace)
    kept = _deployments.get(key)
    if kept is None:
        kept = _deployments[key] = KeptMemberships(es, settings)
    return kept

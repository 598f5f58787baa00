"""Authors' departments for Search's department facet, kept in the search service's memory.

The facet sums the departments of the authors in a Search's sample. Reading them from the
people index for every faceted Search was one more Elasticsearch request per Search (about half
a millisecond of this service's CPU, docs/search.md), and keeping each for a minute did not help:
a Search counts up to 200 authors, spread over tens of thousands, so some had always lapsed.

So a department read once is kept until it changes: every few seconds, when a faceted Search
comes, one search asks the people index for the profiles the people projection wrote since the
last poll (its ``projected_at``, the projection's clock) and updates those kept. A move between
departments reaches the facet within seconds (it was up to a minute). Polls overlap by
``POLL_OVERLAP_SECONDS``: a profile written just before a poll but not yet searchable then, or
stamped by a projection whose clock is a little behind ours, is read by the next ones (a batch
the projection retries is stamped again when it is applied again). An author
without a profile document is kept as "" and follows the same polls (their profile, once
projected, is a change). More changes than one poll reads (a rebuild of the people index, a bulk
import) forget everything kept: it is read again as Searches need it. ``KEPT_SECONDS`` bounds
how long any value lives, should a change ever be missed: a day, since every value that lapses
is one more read (50,000 authors lapsing within minutes kept a read in most Searches).

A caller's profile languages (what their text queries are also matched in) are kept the same
way (``KeptLanguages``), by a poller of their own whose requests count as Searches' rather than
facets'. They were kept a minute; at company scale a caller comes back less often than that,
so nearly every Search read them, beside the caller's communities (services/search/memberships.py),
and both were one more Elasticsearch request before the query.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.config import Settings

from .kept import Kept
from .readmodels import indices

POLL_SECONDS = 2.0
POLL_OVERLAP_SECONDS = 60.0
POLL_MOST = 10_000
KEPT_SECONDS = 86_400.0
KEPT_PEOPLE = 500_000  # the seed's company is 400,000 people; past it, the least recently read go


class KeptProfileField:
    """employee id -> one field of their profile (``empty`` when none or no profile), for one
    deployment's people index."""

    field = ""
    empty: Any = ""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, stats_group: str):
        self.es, self.alias, self.stats = es, settings.index_alias(indices.PEOPLE), [stats_group]
        self._kept: Kept[Any] = Kept(KEPT_SECONDS, size=KEPT_PEOPLE)
        self._since = time.time() - POLL_OVERLAP_SECONDS  # nothing is kept yet: any earlier change is read with it
        self._polled = time.monotonic()
        self._poll_lock = asyncio.Lock()  # one poll at a time: the Searches that waited for it find it done

    def value(self, source: dict[str, Any]) -> Any:
        """The field as kept, from a people document's ``_source``."""
        return source.get(self.field) or self.empty

    async def of(self, employee_ids: Iterable[str]) -> dict[str, Any]:
        await self._poll_when_due()
        out, missing = self._kept.get_many(employee_ids)
        if missing:
            found = await self.es.search(index=self.alias, query={"terms": {"employee_id": missing}}, source=["employee_id", self.field],
                                         size=len(missing), ignore_unavailable=True, stats=self.stats)
            read = {h["_source"]["employee_id"]: self.value(h["_source"]) for h in found["hits"]["hits"]}
            for eid in missing:
                out[eid] = read.get(eid, self.empty)
                self._kept.put(eid, out[eid])
        return out

    async def kept(self, employee_id: str) -> Any | None:
        """The value kept for one person (None: not kept), after the poll when one is due."""
        await self._poll_when_due()
        return self._kept.get(employee_id)

    def keep(self, employee_id: str, source: dict[str, Any] | None) -> Any:
        """Keep the value a read elsewhere found (``source``: the person's document, None when
        they have none); the polls keep it current from then on. Returns it."""
        value = self.value(source) if source is not None else self.empty
        self._kept.put(employee_id, value)
        return value

    def _poll_due(self) -> bool:
        return time.monotonic() - self._polled >= POLL_SECONDS

    async def _poll_when_due(self) -> None:
        if self._poll_due():
            async with self._poll_lock:
                if self._poll_due():
                    await self._poll()

    async def _poll(self) -> None:
        started = time.time()
        since = dt.datetime.fromtimestamp(self._since, dt.UTC).isoformat()
        found: dict[str, Any] = await self.es.search(
            index=self.alias, query={"range": {indices.PROJECTED_AT: {"gte": since}}}, source=["employee_id", self.field],
            size=POLL_MOST, track_total_hits=POLL_MOST + 1, ignore_unavailable=True, stats=self.stats)
        if found["hits"]["total"]["value"] > POLL_MOST:
            self._kept.clear()
        else:
            for hit in found["hits"]["hits"]:
                eid = hit["_source"]["employee_id"]
                if self._kept.get(eid) is not None:  # only those Searches asked for are kept
                    self._kept.put(eid, self.value(hit["_source"]))
        self._since, self._polled = started - POLL_OVERLAP_SECONDS, time.monotonic()


class KeptDepartments(KeptProfileField):
    """Authors' departments, for the department facet."""

    field = "department"


class KeptLanguages(KeptProfileField):
    """Callers' profile languages (BCP 47 tags), which their text queries are also matched in."""

    field, empty = "languages", ()

    def value(self, source: dict[str, Any]) -> tuple[str, ...]:
        return tuple(source.get(self.field) or ())


_deployments: dict[tuple[int, str, type], KeptProfileField] = {}


def _kept(kind: type[KeptProfileField], es: AsyncElasticsearch, settings: Settings, stats_group: str) -> Any:
    key = (id(es), settings.namespace, kind)
    kept = _deployments.get(key)
    if kept is None:
        kept = _deployments[key] = kind(es, settings, stats_group)
    return kept


def kept_departments(es: AsyncElasticsearch, settings: Settings, stats_group: str) -> KeptDepartments:
    """The departments kept for this client and namespace (one per deployment the process serves);
    its requests count in Elasticsearch's search stats under ``stats_group``."""
    return _kept(KeptDepartments, es, settings, stats_group)


def kept_languages(es: AsyncElasticsearch, settings: Settings, stats_group: str) -> KeptLanguages:
    """The callers' languages kept for this client and namespace, as ``kept_departments``."""
    return _kept(KeptLanguages, es, settings, stats_group)

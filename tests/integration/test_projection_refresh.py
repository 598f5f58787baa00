"""Which projection indices Elasticsearch refreshes on a schedule, and the behaviour the others
rely on: a shard that is refreshed only when searched still shows a search every write made
before it (Elasticsearch's search-idle shards, real server)."""

from __future__ import annotations

import asyncio
import uuid

from services.search.readmodels.projections.audit import AuditProjection, AuditSubjectsProjection
from services.search.readmodels.projections.blogs import BlogsProjection
from services.search.readmodels.projections.people import PeopleProjection
from watercooler.projection import es_client


async def _refresh_interval(es, index: str) -> str | None:
    found = await es.indices.get_settings(index=index, name="index.refresh_interval")
    return next(iter(found.body.values()), {}).get("settings", {}).get("index", {}).get("refresh_interval")


def test_indices_read_by_id_or_seldom_searched_have_no_scheduled_refresh_and_an_older_index_is_brought_in_line(platform):
    settings = platform.settings

    async def run() -> None:
        es = es_client(settings)
        try:
            people, audit, subjects, blogs = (PeopleProjection(settings), AuditProjection(settings), AuditSubjectsProjection(settings), BlogsProjection(settings))
            for projection in (people, audit, blogs):
                await projection.ensure_index(es)
            assert await _refresh_interval(es, people.alias) == people.index_body()["settings"]["refresh_interval"]
            assert await _refresh_interval(es, blogs.alias) == people.index_body()["settings"]["refresh_interval"]
            for alias in (audit.alias, subjects.alias, blogs.owners_alias):
                assert await _refresh_interval(es, alias) is None, alias  # Elasticsearch's default: search-idle shards

            # An audit index made when every projection was refreshed on a schedule gets the default at the next start.
            index = await audit.current_index(es)
            await es.indices.put_settings(index=index, settings={"refresh_interval": "500ms"})
            await audit.ensure_index(es)
            assert await _refresh_interval(es, index) is None
        finally:
            await es.close()

    asyncio.run(run())


def test_a_search_idle_shard_is_not_refreshed_on_schedule_and_a_search_then_shows_the_writes_made_while_idle(platform):
    """What the audit trail's index relies on, checked on the real server: no scheduled refresh
    while nobody searches, however many writes come; the next search refreshes the shard and
    waits for it. (Writes made less than one scheduled tick, a second, before that search are
    not yet known to be pending: they show within that second, as on a schedule.)"""
    settings = platform.settings
    index = f"{settings.namespace}-search-idle-{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        es = es_client(settings)

        async def refreshes() -> int:
            stats = await es.indices.stats(index=index, metric="refresh")  # a stats call: not a search, the shard stays idle
            return stats["indices"][index]["primaries"]["refresh"]["external_total"]

        try:
            # As the audit trail's index is made (no refresh_interval), idle after one second instead of thirty.
            await es.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0, "index.search.idle.after": "1s"},
                                    mappings={"properties": {"word": {"type": "keyword"}}})
            await es.search(index=index, query={"match_all": {}})
            await asyncio.sleep(2.5)  # the shard goes search-idle
            before = await refreshes()
            for n in range(3):
                await es.index(index=index, id=str(n), document={"word": f"w{n}"})
            await asyncio.sleep(2.5)  # two scheduled ticks: each finds the shard idle and skips it
            assert await refreshes() == before
            found = await es.search(index=index, query={"match_all": {}}, size=10)
            assert sorted(hit["_id"] for hit in found["hits"]["hits"]) == ["0", "1", "2"]  # the search refreshed and waited
            assert await refreshes() == before + 1
        finally:
            await es.indices.delete(index=index, ignore_unavailable=True)
            await es.close()

    asyncio.run(run())

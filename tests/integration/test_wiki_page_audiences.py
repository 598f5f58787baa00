"""The wiki projection keeps each page on its space's current audience, whatever order the
page's and the space's events are applied in (they are on different partitions), also when
they are applied at once (two halves of a batch, two processor replicas), and in a rebuild.

Against the Elasticsearch the tests share (WC_ES_URL), in an index namespace of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest

from services.posts.library.domainmodel import Page, Space
from services.search.readmodels.projections.audiences import VERSION_SCALE
from services.search.readmodels.projections.wiki import WikiProjection
from watercooler import config
from watercooler.auth import Principal
from watercooler.envelope import to_envelope
from watercooler.eventstore import CommandContext, command_meta
from watercooler.projection import es_client

pytestmark = pytest.mark.integration

ANA, BOB = "ana", "bob"


@pytest.fixture(autouse=True)
def elasticsearch(infra):
    """These apply batches to a real Elasticsearch (the session's), without the platform."""
    return infra


def records(aggregate: Any) -> list[bytes]:
    """The aggregate's new events as the relay publishes them."""
    return [to_envelope("posts", event, sequence=0).SerializeToString() for event in aggregate.collect_events()]


def acting(subject: str):
    return command_meta(CommandContext(Principal(subject, "employee"), request_id=str(uuid.uuid4()), correlation_id=""))


def internal_space() -> Space:
    with acting(ANA):
        return Space.create(f"s{uuid.uuid4().hex[:8]}", "Guides", "", f"profiles/{ANA}", "INTERNAL", [])


def restrict(space: Space, members: list[str]) -> None:
    with acting(ANA):
        space.update({"visibility": "RESTRICTED", "members": members}, ANA)


def page_in(space: Space, title: str = "Plans") -> Page:
    with acting(ANA):
        return Page.create(space.space_id, title, "text", ANA, "")


AUDIENCE = ("visibility", "space_owner", "space_members", "classification", "audience_version")


class Index:
    def __init__(self):
        self.settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
        self.es = es_client(self.settings)
        self.projection = WikiProjection(self.settings)

    async def __aenter__(self) -> Index:
        await self.projection.ensure_index(self.es)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.es.indices.delete(index=f"{self.settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        await self.es.close()

    async def apply(self, batch: list[bytes], index: str | None = None):
        return await self.projection.apply_batch(self.es, batch, lambda r: r, index)

    async def page(self, page: Page, index: str | None = None) -> dict[str, Any]:
        found = await self.es.get(index=index or self.projection.alias, id=str(page.id), realtime=True)
        return {**{field: found["_source"].get(field) for field in AUDIENCE}, "_version": found["_version"], "title": found["_source"]["title"]}


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_page_takes_its_space_audience_and_follows_it_made_restricted():
    async def scenario():
        async with Index() as index:
            space = internal_space()
            await index.apply(records(space))
            page = page_in(space)
            await index.apply(records(page))
            assert await index.page(page) == {"visibility": "INTERNAL", "space_owner": f"profiles/{ANA}", "space_members": [], "classification": "INTERNAL",
                                              "audience_version": 1, "_version": VERSION_SCALE, "title": "Plans"}
            restrict(space, [BOB])
            await index.apply(records(space))
            doc = await index.page(page)
            assert (doc["visibility"], doc["space_members"], doc["audience_version"]) == ("RESTRICTED", [BOB], space.version)
            # Renaming the space is no change of audience: its pages are not rewritten.
            with acting(ANA):
                space.update({"display_name": "Handbooks"}, ANA)
            await index.apply(records(space))
            assert await index.page(page) == doc

    run(scenario())


def test_a_page_applied_before_its_space_is_shown_to_nobody_then_follows_it():
    async def scenario():
        async with Index() as index:
            space = internal_space()
            created = records(space)
            page = page_in(space)
            await index.apply(records(page))  # its space's events are on a partition not read yet
            unknown = await index.page(page)
            assert (unknown["visibility"], unknown["space_owner"], unknown["space_members"], unknown["audience_version"]) == ("", "", [], 0)
            await index.apply(created)
            assert (await index.page(page))["visibility"] == "INTERNAL"

    run(scenario())


def test_page_and_space_change_applied_at_once_end_on_the_current_audience():
    async def scenario():
        async with Index() as index:
            for _ in range(6):
                space = internal_space()
                await index.apply(records(space))
                pages = [page_in(space, f"p{i}") for i in range(3)]
                restrict(space, [BOB])
                # Two halves of a batch: the pages' partitions and the space's, at once.
                await asyncio.gather(index.apply([r for page in pages for r in records(page)]), index.apply(records(space)))
                for page in pages:
                    doc = await index.page(page)
                    assert (doc["visibility"], doc["audience_version"]) == ("RESTRICTED", space.version), doc

    run(scenario())


def test_a_page_written_with_an_audience_changed_meanwhile_is_caught_up():
    """The worst interleaving, forced: the page's batch reads its space (INTERNAL), the space's
    change is then applied and propagated (no page to find yet), and only then is the page
    written with what it read. Reading the space again after the write finds it moved."""
    async def scenario():
        async with Index() as index:
            space = internal_space()
            await index.apply(records(space))
            page = page_in(space)
            restrict(space, [BOB])
            space_read, change_propagated = asyncio.Event(), asyncio.Event()
            complete = index.projection.complete

            async def complete_then_wait(es, docs, index=None):
                await complete(es, docs, index)
                if any(doc["kind"] == "page" for doc in docs.values()):  # the page's batch, not the space's
                    space_read.set()
                    await change_propagated.wait()

            index.projection.complete = complete_then_wait  # type: ignore[method-assign]

            async def change_space():
                await space_read.wait()
                await index.apply(records(space))
                change_propagated.set()

            await asyncio.gather(index.apply(records(page)), change_space())
            doc = await index.page(page)
            assert (doc["visibility"], doc["audience_version"]) == ("RESTRICTED", space.version)

    run(scenario())


def test_a_propagated_page_still_takes_its_own_next_event_and_skips_replays():
    async def scenario():
        async with Index() as index:
            space = internal_space()
            await index.apply(records(space))
            page = page_in(space)
            created = records(page)
            await index.apply(created)
            restrict(space, [BOB])
            await index.apply(records(space))
            propagated = await index.page(page)
            assert propagated["visibility"] == "RESTRICTED" and propagated["_version"] == VERSION_SCALE + 1
            with acting(ANA):
                page.rename(page.revision, "Renamed", ANA)
            renamed = await index.apply(records(page))
            assert renamed.written >= 1 and (await index.page(page))["title"] == "Renamed"
            replayed = await index.apply(created)
            assert replayed.skipped_duplicates >= 1
            assert await index.page(page) == {**propagated, "title": "Renamed", "_version": 2 * VERSION_SCALE}

    run(scenario())


def test_a_rebuild_that_replays_pages_before_their_space_ends_on_its_audience():
    """A rebuild writes a new index by replaying the topic, where a page's events may come before
    its space's: the pages in the new index take the space's audience as the replay writes it
    there, not what the live index holds, and keep it after the alias moves."""
    async def scenario():
        async with Index() as index:
            space = internal_space()
            space_created = records(space)
            restrict(space, [BOB])
            space_restricted = records(space)
            page = page_in(space)
            page_created = records(page)
            await index.apply(space_created + space_restricted + page_created)
            live = await index.page(page)
            rebuilt = f"{index.projection.alias}-v{index.projection.schema_version}-rebuilt"
            await index.es.indices.create(index=rebuilt, **index.projection.index_body())
            await index.apply(page_created, rebuilt)
            assert (await index.page(page, rebuilt))["visibility"] == ""  # its space not replayed yet
            await index.apply(space_created + space_restricted, rebuilt)
            assert await index.page(page, rebuilt) == {**live, "_version": (await index.page(page, rebuilt))["_version"]}

    run(scenario())

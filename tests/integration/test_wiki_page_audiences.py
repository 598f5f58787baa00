"""The wiki projection keeps each page on its space's current audience, whatever order the
page's and the space's events are applied in (they are on different partitions), also when
they are applied at once (two halves of a batch, two processor replicas), and in a rebuild.

Against the Elasticsearch the tests share (WC_ES_URL), in an index namespace of its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from services.posts.library.domainmodel import Page, Space
from services.search.readmodels.projections.audiences import VERSION_SCALE
from services.search.readmodels.projections.wiki import WikiProjection
from tests.integration.audience_harness import ProjectionIndex, acting, records, run

pytestmark = pytest.mark.integration

ANA, BOB = "ana", "bob"


@pytest.fixture(autouse=True)
def elasticsearch(infra):
    """These apply batches to a real Elasticsearch (the session's), without the platform."""
    return infra


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


class Index(ProjectionIndex):
    def __init__(self):
        super().__init__(WikiProjection)

    async def page(self, page: Page, index: str | None = None) -> dict[str, Any]:
        doc = await self.document(page, index)
        return {**{field: doc.get(field) for field in AUDIENCE}, "_version": doc["_version"], "title": doc["title"]}


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
            # (The space's batch completes its documents too: only the page's is held.)
            await index.written_with_a_change_between(records(page), records(space), held=lambda docs: any(d["kind"] == "page" for d in docs.values()))
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

"""The comments projection keeps each comment on its target's current audience, whatever order
the comment's and the target's events are applied in (they may be on different partitions),
also when they are applied at once (two halves of a batch, two processor replicas).

Against the Elasticsearch the tests share (WC_ES_URL), in an index namespace of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.posts.domainmodel import Comment, Post
from services.posts.library.domainmodel import Page, Space
from services.search.readmodels.projections.comments import VERSION_SCALE, CommentsProjection
from tests.integration.audience_harness import ProjectionIndex, acting, records, run
from tests.integration.test_wiki_page_audiences import internal_space, page_in, restrict

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def elasticsearch(infra):
    """These apply batches to a real Elasticsearch (the session's), without the platform."""
    return infra

ANA, BOB = "ana", "bob"


def public_post() -> Post:
    with acting(ANA):
        post = Post.create("blog", ANA, {"title": "T", "body": "b", "tags": [], "visibility": "PUBLIC", "community": ""})
        post.publish(ANA, "employee", "2026-01-01T00:00:00Z")
    return post


def make_private(post: Post) -> None:
    with acting(ANA):
        post.edit(ANA, {"title": post.title, "body": post.body, "tags": post.tags, "visibility": "PRIVATE", "community": ""})


def comment_on(post: Post, body: str = "hi") -> Comment:
    with acting(BOB):
        return Comment.create(f"posts/{post.id}", "", BOB, body, "PUBLIC", "")


class Index(ProjectionIndex):
    def __init__(self):
        super().__init__(CommentsProjection)

    async def comment(self, comment: Comment) -> dict[str, Any]:
        return await self.document(comment)


def test_a_comment_written_after_its_post_changed_takes_the_current_audience():
    async def scenario():
        async with Index() as index:
            post = public_post()
            await index.apply(records(post))
            comment = comment_on(post)
            make_private(post)
            await index.apply(records(post))
            await index.apply(records(comment))
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["target_deleted"], doc["audience_version"]) == ("PRIVATE", False, post.version)

    run(scenario())


def test_a_comment_applied_before_its_post_is_shown_to_nobody_then_follows_every_change():
    async def scenario():
        async with Index() as index:
            post = public_post()
            created = records(post)
            comment = comment_on(post)
            await index.apply(records(comment))  # its post's events are on a partition not read yet
            assert (await index.comment(comment))["target_deleted"] is True
            await index.apply(created)
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["target_deleted"], doc["target_state"]) == ("PUBLIC", False, "PUBLISHED")
            make_private(post)
            await index.apply(records(post))
            assert (await index.comment(comment))["visibility"] == "PRIVATE"

    run(scenario())


def test_comment_and_post_change_applied_at_once_end_on_the_current_audience():
    async def scenario():
        async with Index() as index:
            for _ in range(8):
                post = public_post()
                await index.apply(records(post))
                comments = [comment_on(post, f"c{i}") for i in range(3)]
                make_private(post)
                # Two halves of a batch: the comments' partition and the post's, at once.
                await asyncio.gather(index.apply([r for c in comments for r in records(c)]), index.apply(records(post)))
                for comment in comments:
                    doc = await index.comment(comment)
                    assert (doc["visibility"], doc["audience_version"]) == ("PRIVATE", post.version), doc

    run(scenario())


def test_a_propagated_comment_still_takes_its_own_next_event_and_skips_replays():
    async def scenario():
        async with Index() as index:
            post = public_post()
            await index.apply(records(post))
            comment = comment_on(post)
            created = records(comment)
            await index.apply(created)
            make_private(post)
            await index.apply(records(post))
            propagated = await index.comment(comment)
            assert propagated["visibility"] == "PRIVATE" and propagated["_version"] == VERSION_SCALE + 1
            with acting(BOB):
                comment.edit(BOB, "edited")
            edited = await index.apply(records(comment))
            assert edited.written >= 1 and (await index.comment(comment))["body"] == "edited"
            replayed = await index.apply(created)
            assert replayed.skipped_duplicates >= 1 and (await index.comment(comment))["body"] == "edited"

    run(scenario())


def test_a_comment_written_with_an_audience_changed_meanwhile_is_caught_up():
    """The worst interleaving, forced: the comment's batch reads the post's audience (PUBLIC), the
    post's change is then applied and propagated (no comment to find yet), and only then is the
    comment written, with the audience it read. Re-reading the audience after the write finds
    it moved and propagates it again."""
    async def scenario():
        async with Index() as index:
            post = public_post()
            await index.apply(records(post))
            comment = comment_on(post)
            make_private(post)
            await index.written_with_a_change_between(records(comment), records(post), held=lambda docs: True)
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["audience_version"]) == ("PRIVATE", post.version)

    run(scenario())


def test_an_edit_that_keeps_the_audience_rewrites_no_comment():
    async def scenario():
        async with Index() as index:
            post = public_post()
            comment = comment_on(post)
            await index.apply(records(post) + records(comment))
            before = await index.comment(comment)
            with acting(ANA):
                post.edit(ANA, {"title": "Retitled", "body": post.body, "tags": post.tags, "visibility": "PUBLIC", "community": ""})
            await index.apply(records(post))
            assert await index.comment(comment) == before

    run(scenario())


# --- a comment on a wiki page carries the page's space's audience ----------------------------------
def space_and_page() -> tuple[Space, Page]:
    space = internal_space()
    return space, page_in(space)


def comment_on_page(page: Page) -> Comment:
    with acting(BOB):
        return Comment.create(f"pages/{page.id}", "", BOB, "on the page", "PUBLIC", "")


SPACE = ("visibility", "target_owner", "target_members", "classification", "space_audience_version", "space_id")


def test_a_comment_on_a_page_takes_the_space_audience_and_follows_it():
    async def scenario():
        async with Index() as index:
            space, page = space_and_page()
            await index.apply(records(space) + records(page))
            comment = comment_on_page(page)
            await index.apply(records(comment))
            doc = await index.comment(comment)
            assert {f: doc[f] for f in SPACE} == {"visibility": "INTERNAL", "target_owner": f"profiles/{ANA}", "target_members": [], "classification": "INTERNAL",
                                                  "space_audience_version": 1, "space_id": space.space_id}
            restrict(space, [BOB])
            await index.apply(records(space))
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["target_members"], doc["space_audience_version"], doc["target_deleted"]) == ("RESTRICTED", [BOB], space.version, False)

    run(scenario())


def test_a_comment_applied_before_its_page_and_space_is_shown_to_nobody_then_follows_both():
    async def scenario():
        async with Index() as index:
            space, page = space_and_page()
            space_created, page_created = records(space), records(page)
            comment = comment_on_page(page)
            await index.apply(records(comment))  # the page's and the space's events are on partitions not read yet
            assert (await index.comment(comment))["target_deleted"] is True
            await index.apply(page_created)
            doc = await index.comment(comment)
            assert (doc["target_deleted"], doc["visibility"], doc["space_audience_version"]) == (False, "", 0)  # the space still unknown: nobody
            await index.apply(space_created)
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["space_audience_version"]) == ("INTERNAL", 1)

    run(scenario())


def test_a_comment_on_a_page_written_while_its_space_changed_is_caught_up():
    async def scenario():
        async with Index() as index:
            space, page = space_and_page()
            await index.apply(records(space) + records(page))
            comment = comment_on_page(page)
            restrict(space, [BOB])
            await index.written_with_a_change_between(records(comment), records(space), held=lambda docs: True)
            doc = await index.comment(comment)
            assert (doc["visibility"], doc["space_audience_version"]) == ("RESTRICTED", space.version)

    run(scenario())

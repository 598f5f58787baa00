"""The comments projection keeps each comment on its target's current audience, whatever order
the comment's and the target's events are applied in (they may be on different partitions),
also when they are applied at once (two halves of a batch, two processor replicas).

Against the Elasticsearch the tests share (WC_ES_URL), in an index namespace of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest

from services.posts.domainmodel import Comment, Post
from services.search.readmodels.projections.comments import VERSION_SCALE, CommentsProjection
from watercooler import config
from watercooler.auth import Principal
from watercooler.envelope import to_envelope
from watercooler.eventstore import CommandContext, command_meta
from watercooler.projection import es_client

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def elasticsearch(infra):
    """These apply batches to a real Elasticsearch (the session's), without the platform."""
    return infra

ANA, BOB = "ana", "bob"


def records(aggregate: Any) -> list[bytes]:
    """The aggregate's new events as the relay publishes them."""
    return [to_envelope("posts", event, sequence=0).SerializeToString() for event in aggregate.collect_events()]


def acting(subject: str):
    return command_meta(CommandContext(Principal(subject, "employee"), request_id=str(uuid.uuid4()), correlation_id=""))


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


class Index:
    def __init__(self):
        self.settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
        self.es = es_client(self.settings)
        self.projection = CommentsProjection(self.settings)

    async def __aenter__(self) -> Index:
        await self.projection.ensure_index(self.es)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.es.indices.delete(index=f"{self.settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
        await self.es.close()

    async def apply(self, batch: list[bytes]):
        return await self.projection.apply_batch(self.es, batch, lambda r: r)

    async def comment(self, comment: Comment) -> dict[str, Any]:
        found = await self.es.get(index=self.projection.alias, id=str(comment.id), realtime=True)
        return {**found["_source"], "_version": found["_version"]}


def run(coroutine):
    return asyncio.run(coroutine)


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
            audience_read, change_propagated = asyncio.Event(), asyncio.Event()
            complete = index.projection.complete

            async def complete_then_wait(es, docs, index=None):
                await complete(es, docs, index)
                audience_read.set()
                await change_propagated.wait()

            index.projection.complete = complete_then_wait  # type: ignore[method-assign]

            async def change_post():
                await audience_read.wait()
                await index.apply(records(post))
                change_propagated.set()

            await asyncio.gather(index.apply(records(comment)), change_post())
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

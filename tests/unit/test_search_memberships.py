"""Callers' communities kept by the search service until a community changes
(services/search/memberships.py): a poll reads what was written after the last one, by the
index's own sequence numbers, and what is kept is trusted only right after a successful poll.
Against the real server: tests/integration/test_blogs_directory.py (a kept member, not read
again, removed and re-joined, through Search, Suggest and SearchPosts) and
tests/integration/test_communities.py."""

from __future__ import annotations

import asyncio

import pytest

from services.search import memberships
from services.search.memberships import KeptMemberships
from watercooler.config import Settings


class CommunitiesIndex:
    """Answers what KeptMemberships sends: the shard's checkpoint, a refresh, the documents
    written after a checkpoint. Each write takes the next sequence number."""

    def __init__(self, shards: int = 1):
        self.name, self.shards = "ns-wc-communities-v3-a", shards
        self.docs: dict[str, tuple[int, dict]] = {}
        self.seq = -1
        self.failing = False
        self.asked_after: list[int] = []
        self.stats_asked = 0
        self.indices = self

    def write(self, community_id: str, members: list[str], deleted: bool = False) -> None:
        self.seq += 1
        self.docs[community_id] = (self.seq, {"community_id": community_id, "members": members, "deleted": deleted})

    def options(self, **_):
        return self

    async def stats(self, **_):
        self.stats_asked += 1
        if self.failing:
            raise ConnectionError("down")
        copy = [{"routing": {"primary": True}, "seq_no": {"global_checkpoint": self.seq}}]
        return {"indices": {self.name: {"shards": {str(n): copy for n in range(self.shards)}}}}

    async def refresh(self, **_):
        return {}

    async def search(self, *, query, size, search_after=None, **_):
        after = query["range"]["_seq_no"]["gt"]
        self.asked_after.append(after)
        hits = sorted((seq, doc) for seq, doc in self.docs.values() if seq > after and (search_after is None or seq > search_after[0]))
        return {"hits": {"hits": [{"_source": doc, "sort": [seq]} for seq, doc in hits[:size]]}}


@pytest.fixture
def clock(monkeypatch):
    now = [1_000.0]
    monkeypatch.setattr(memberships.time, "monotonic", lambda: now[0])
    return now


def read(kept: KeptMemberships, es: CommunitiesIndex, who: str) -> tuple[str, ...]:
    """What a request does: the kept communities, or a direct read that is then kept."""
    assert asyncio.run(kept.usable())
    found = kept.kept(who)
    if found is not None:
        return found
    generation = kept.generation
    direct = tuple(sorted(c for c, (_, doc) in es.docs.items() if who in doc["members"] and not doc["deleted"]))
    kept.keep(who, direct, generation)
    return direct


def test_a_join_a_removal_and_a_deletion_reach_the_kept_callers_by_the_next_poll(clock):
    es = CommunitiesIndex()
    es.write("c1", ["ana", "bob"])
    es.write("c2", ["bob"])
    kept = KeptMemberships(es, Settings(namespace="km"))
    assert read(kept, es, "ana") == ("c1",) and read(kept, es, "bob") == ("c1", "c2") and read(kept, es, "eve") == ()
    es.write("c2", ["bob", "ana"])  # ana joins
    es.write("c1", ["ana"])  # bob leaves
    es.write("c3", ["eve"])  # a new community
    assert kept.kept("ana") == ("c1",)  # not before a poll: what was kept is as of the last one
    clock[0] += memberships.POLL_SECONDS
    assert read(kept, es, "ana") == ("c1", "c2") and read(kept, es, "bob") == ("c2",) and read(kept, es, "eve") == ("c3",)
    es.write("c2", ["bob", "ana"], deleted=True)
    clock[0] += memberships.POLL_SECONDS
    assert read(kept, es, "ana") == ("c1",) and read(kept, es, "bob") == ()
    # Each poll asked for what came after the previous poll's checkpoint, never from the start.
    assert es.asked_after == [1, 4]


def test_nothing_kept_is_trusted_once_a_poll_fails_nor_kept_while_polls_fail(clock):
    es = CommunitiesIndex()
    es.write("c1", ["ana"])
    kept = KeptMemberships(es, Settings(namespace="km2"))
    assert read(kept, es, "ana") == ("c1",)
    es.failing = True
    clock[0] += memberships.POLL_SECONDS
    assert not asyncio.run(kept.usable())
    kept.keep("bob", ("c9",), kept.generation)  # a direct read meanwhile is not kept
    es.failing = False
    es.write("c1", [])  # ana left while the polls failed
    assert asyncio.run(kept.usable()) and kept.kept("ana") == () and kept.kept("bob") is None


def test_a_read_that_overlapped_a_poll_is_not_kept_and_a_rebuilt_index_forgets_everything(clock):
    es = CommunitiesIndex()
    es.write("c1", ["ana"])
    kept = KeptMemberships(es, Settings(namespace="km3"))
    assert asyncio.run(kept.usable())
    generation = kept.generation  # a read begins...
    es.write("c1", [])
    clock[0] += memberships.POLL_SECONDS
    assert asyncio.run(kept.usable())  # ...a poll applies ana's leaving to everyone kept...
    kept.keep("ana", ("c1",), generation)  # ...and the read, from before it, ends
    assert kept.kept("ana") is None
    assert read(kept, es, "ana") == ()
    es.name = "ns-wc-communities-v3-b"  # `watercooler reindex communities`
    clock[0] += memberships.POLL_SECONDS
    assert asyncio.run(kept.usable()) and kept.kept("ana") is None


def test_an_index_of_several_shards_is_never_kept(clock):
    es = CommunitiesIndex(shards=2)
    es.write("c1", ["ana"])
    kept = KeptMemberships(es, Settings(namespace="km4"))
    assert not asyncio.run(kept.usable())
    kept.keep("ana", ("c1",), kept.generation)
    assert kept.kept("ana") is None
    clock[0] += memberships.POLL_SECONDS
    assert not asyncio.run(kept.usable()) and es.stats_asked == 1  # not asked again on every request
    clock[0] += memberships.SEVERAL_SHARDS_SECONDS
    assert not asyncio.run(kept.usable()) and es.stats_asked == 2


def test_past_the_bound_the_least_recently_used_caller_is_forgotten_with_its_place_in_each_community(clock, monkeypatch):
    monkeypatch.setattr(memberships, "KEPT_CALLERS", 2)
    es = CommunitiesIndex()
    es.write("c1", ["ana", "bob", "eve"])
    kept = KeptMemberships(es, Settings(namespace="km5"))
    read(kept, es, "ana")
    read(kept, es, "bob")
    assert read(kept, es, "ana") == ("c1",)  # ana used again: bob is now the least recently used
    read(kept, es, "eve")
    assert kept.kept("bob") is None and kept.kept("ana") == ("c1",) and kept.kept("eve") == ("c1",)
    es.write("c1", ["bob"])  # a change to a community bob was in: nothing is kept of him to change
    clock[0] += memberships.POLL_SECONDS
    assert read(kept, es, "ana") == () and read(kept, es, "eve") == ()

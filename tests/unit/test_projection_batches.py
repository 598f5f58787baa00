"""Projection batches: how a batch is split in two halves, and how documents are read back."""

from __future__ import annotations

import asyncio

import pytest

from services.search.readmodels.counters import views
from watercooler.posts.v1.library_events_pb2 import ViewFact
from watercooler.projection import DocumentsUnreadable, found_documents, partition_halves


def test_partition_halves_never_split_a_partition_and_keep_order():
    records = [("t", p, n) for n in range(12) for p in (0, 1, 2, 3, 4)]
    halves = partition_halves(records, lambda r: (r[0], r[1]))
    assert len(halves) == 2 and sorted(halves[0] + halves[1]) == sorted(records)
    assert not {r[1] for r in halves[0]} & {r[1] for r in halves[1]}
    for half in halves:  # each partition's records in their order
        for p in {r[1] for r in half}:
            assert [r[2] for r in half if r[1] == p] == list(range(12))
    assert partition_halves([("t", 3, 0), ("t", 3, 1)], lambda r: (r[0], r[1])) == [[("t", 3, 0), ("t", 3, 1)]]
    assert partition_halves([], lambda r: (r[0], r[1])) == []


# What Elasticsearch answered an mget for two stored documents for half a second after a
# restart, before the shard had recovered (measured against the local server).
RECOVERING_SHARD = {
    "docs": [
        {"_index": "counts", "_id": "a", "error": {"type": "no_shard_available_action_exception", "reason": "No shard available for [get [counts][a]]"}},
        {"_index": "counts", "_id": "b", "_version": 7, "_seq_no": 3, "_primary_term": 1, "found": True, "_source": {"count": 6}},
    ]
}


def test_an_unreadable_document_is_not_taken_for_a_missing_one():
    with pytest.raises(DocumentsUnreadable, match="1 of 2 documents unreadable: No shard available"):
        found_documents(RECOVERING_SHARD)
    readable = {"docs": [RECOVERING_SHARD["docs"][1], {"_index": "counts", "_id": "c", "found": False}]}
    assert list(found_documents(readable)) == ["b"]


def test_the_view_counter_holds_its_batch_while_a_shard_recovers():
    """Before, the counter took the unreadable count document for a new one and wrote the
    batch's count over the stored count (views lost after an Elasticsearch restart)."""
    class RecoveringElasticsearch:
        bulk_calls = 0

        async def mget(self, **_):
            return {"docs": [{"_index": "counts", "_id": i, "error": {"type": "no_shard_available_action_exception"}} for i in _["ids"]]}

        async def bulk(self, **_):
            self.bulk_calls += 1
            return {"errors": False, "items": []}

    es = RecoveringElasticsearch()
    fact = ViewFact(target="pages/p1", space_id="s1", department="d", view_time="2026-11-27T10:00:00Z").SerializeToString()
    with pytest.raises(DocumentsUnreadable):
        asyncio.run(views.apply_batch(es, "counts", "views", [(0, 41, fact)]))
    assert es.bulk_calls == 0


def test_an_erasure_tombstones_the_persons_documents_at_their_version_once(monkeypatch):
    """The posts projection hears of ProfileErased on the profiles topic (its other events are
    dropped) and rewrites the erased author's documents with tombstones at the version they have:
    a bumped version would make the aggregate's next event look like a duplicate. A document
    already tombstoned (a replay, a rebuild) is not written again."""
    from services.profiles.domainmodel import Profile
    from services.search.readmodels.projections.posts import PostsProjection
    from watercooler import config, personaldata
    from watercooler import projection as projection_module
    from watercooler.auth import Principal
    from watercooler.envelope import to_envelope
    from watercooler.eventstore import CommandContext, command_meta

    with command_meta(CommandContext(Principal("tester", "service"))):
        profile = Profile.create("e1", {"display_name": "Ann"})
        profile.erase()
    records = [to_envelope("profiles", event, n).SerializeToString() for n, event in enumerate(profile.collect_events(), 1)]
    stored = {
        "p1": {"_index": "posts-v2", "_id": "p1", "_version": 3,
               "_source": {"author_id": "e1", "title": "Ann's plan", "content": "secret", "tags": ["x"], "lang": {"en": {"title": "Ann's plan"}}, "hidden": False}},
        "p2": {"_index": "posts-v2", "_id": "p2", "_version": 2, "_source": {"author_id": "e1", "title": "", "content": "", "tags": [], "lang": {}}},
    }

    class FakeElasticsearch:
        def __init__(self):
            self.bulks: list[list[dict]] = []
            self.read = False
            self.indices = self

        async def refresh(self, **_):
            return {}

        async def mget(self, **_):
            self.read = True
            return {"docs": []}

        async def bulk(self, operations, **_):
            self.bulks.append(operations)
            for action, source in zip(operations[::2], operations[1::2], strict=True):
                stored[action["index"]["_id"]]["_source"] = source
            return {"errors": False, "items": []}

    async def scan(_es, index, query, **_):
        assert query["query"]["bool"]["should"] == [{"terms": {"author_id": ["e1", "profiles/e1"]}}]
        for hit in list(stored.values()):
            yield {**hit, "_source": dict(hit["_source"])}

    monkeypatch.setattr(projection_module, "async_scan", scan)
    monkeypatch.setattr(personaldata, "forget_erased", lambda settings, event: None)
    es = FakeElasticsearch()
    projection = PostsProjection(config.load())
    assert "profiles" in projection.sources
    result = asyncio.run(projection.apply_batch(es, records, lambda value: value))
    assert (result.erased, result.other_aggregates, result.written, es.read) == (["e1"], 1, 0, False)
    assert len(es.bulks) == 1
    action, source = es.bulks[0]
    assert action == {"index": {"_index": "posts-v2", "_id": "p1", "version": 3, "version_type": "external_gte"}}
    assert source == {"author_id": "e1", "title": "", "content": "", "tags": [], "lang": {}, "hidden": False}
    asyncio.run(projection.apply_batch(es, records, lambda value: value))  # replayed: nothing left to write
    assert len(es.bulks) == 1


def test_a_write_racing_an_erasure_is_tombstoned_whichever_lands_last(monkeypatch):
    """Another event of the erased author's post, in a batch running beside the erasure's, was
    applied to a read made before the tombstones. If its write lands between the erasure's scan
    and its write (409), the erasure reads the document again and tombstones it as it now is;
    if it is written after the erasure was seen, it is tombstoned as it is written."""
    from services.posts.domainmodel import Micropost
    from services.profiles.domainmodel import Profile
    from services.search.readmodels.projections.posts import PostsProjection
    from watercooler import config, personaldata
    from watercooler import projection as projection_module
    from watercooler.auth import Principal
    from watercooler.envelope import to_envelope
    from watercooler.eventstore import CommandContext, command_meta

    with command_meta(CommandContext(Principal("tester", "service"))):
        profile = Profile.create("e1", {"display_name": "Ann"})
        profile.erase()
        micro = Micropost.create("e1", "my secret plan #zq", [], "", "", "INTERNAL", "")
    erasure = [to_envelope("profiles", event, n).SerializeToString() for n, event in enumerate(profile.collect_events(), 1)]
    created = [to_envelope("posts", event, 1).SerializeToString() for event in micro.collect_events()]
    racing = {"author_id": "e1", "title": "", "content": "my secret plan", "tags": ["zq"], "lang": {"en": {"content": "my secret plan"}}}
    stored = {"m1": {"_index": "posts-v2", "_id": "m1", "_version": 1, "_source": {**racing}}}

    class RacedElasticsearch:
        def __init__(self):
            self.bulks: list[list[dict]] = []
            self.indices = self

        async def refresh(self, **_):
            return {}

        async def mget(self, ids, **_):
            return {"docs": [{**stored[i], "found": True} if i in stored else {"_index": "posts-v2", "_id": i, "found": False} for i in ids]}

        async def bulk(self, operations, **_):
            self.bulks.append(operations)
            if len(self.bulks) == 1:  # the racing write lands first: version 2, the text again
                stored["m1"] = {"_index": "posts-v2", "_id": "m1", "_version": 2, "_source": {**racing}}
                return {"errors": True, "items": [{"index": {"_id": "m1", "status": 409, "error": {"type": "version_conflict_engine_exception"}}}]}
            for action, source in zip(operations[::2], operations[1::2], strict=True):
                stored.setdefault(action["index"]["_id"], {"_index": "posts-v2", "_id": action["index"]["_id"], "_version": 0})["_source"] = source
            return {"errors": False, "items": []}

    async def scan(_es, index, query, **_):
        for hit in list(stored.values()):
            yield {**hit, "_source": dict(hit["_source"])}

    monkeypatch.setattr(projection_module, "async_scan", scan)
    monkeypatch.setattr(personaldata, "forget_erased", lambda settings, event: None)
    monkeypatch.setattr(projection_module, "open_sealed_async", lambda settings, events, ring=None: asyncio.sleep(0))
    es = RacedElasticsearch()
    projection = PostsProjection(config.load())
    asyncio.run(projection.apply_batch(es, erasure, lambda value: value))
    assert [(op[0]["index"]["_id"], op[0]["index"]["version"], op[1]["content"]) for op in es.bulks] == [("m1", 1, ""), ("m1", 2, "")]
    assert stored["m1"]["_source"]["content"] == "" and stored["m1"]["_source"]["tags"] == []

    # A later batch of this process writes a micropost of hers (opened before her keys went):
    # it is written as its tombstone.
    stored.clear()
    asyncio.run(projection.apply_batch(es, created, lambda value: value))
    written = es.bulks[-1][1]
    assert written["author_id"] == "e1" and written["content"] == "" and written["tags"] == [], written


class CountingKeyRing:
    """A key ring that remembers nothing, and counts how often it is asked."""

    def __init__(self):
        self.asked: list[set[str]] = []

    def cached(self, key_ids):
        return None

    def keys(self, key_ids, create=False):
        import time

        self.asked.append(set(key_ids))
        time.sleep(0.05)  # a call to the key service
        return {key_id: key_id.encode() for key_id in key_ids if key_id != "erased"}


def test_projections_asking_for_the_same_keys_at_once_share_one_ask():
    from watercooler.projection import _asking, _keys_for

    ring = CountingKeyRing()

    async def main():
        people = asyncio.ensure_future(_keys_for(ring, {"p1", "p2", "erased"}))
        blogs = asyncio.ensure_future(_keys_for(ring, {"p2", "p1"}))
        more = asyncio.ensure_future(_keys_for(ring, {"p1", "p3"}))
        await asyncio.sleep(0)
        blogs.cancel()  # a caller gone (a rebalance) does not cancel the ask the others wait for
        return await people, await asyncio.gather(blogs, return_exceptions=True), await more

    people, (blogs,), more = asyncio.run(main())
    assert people == {"p1": b"p1", "p2": b"p2"} and more == {"p1": b"p1", "p3": b"p3"}
    assert isinstance(blogs, asyncio.CancelledError)
    assert sorted(map(sorted, ring.asked)) == [["erased", "p1", "p2"], ["p3"]]  # p1 asked once, p3 alone
    assert not _asking  # nothing left behind once answered

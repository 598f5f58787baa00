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
    fact = ViewFact(target="pages/p1", space_id="s1", viewer="e1", department="d", view_time="2026-11-27T10:00:00Z").SerializeToString()
    with pytest.raises(DocumentsUnreadable):
        asyncio.run(views.apply_batch(es, "counts", "views", [(0, 41, fact)]))
    assert es.bulk_calls == 0

"""The committable offset on a transactional topic (watercooler.faust_offsets)."""

from __future__ import annotations

import types

from faust.transport.drivers import aiokafka as faust_aiokafka
from intervaltree import IntervalTree

from watercooler.faust_offsets import committable_offset


def transactional_partition(transactions: int, records_each: int) -> tuple[list[int], IntervalTree]:
    """Offsets as faust sees them when each transaction of ``records_each`` records ends in a
    commit marker: every record acked, and the gap faust records on each jump past a marker
    (faust's interval reaches the record after the marker, as its consumer does)."""
    acked, gaps, offset = [], IntervalTree(), 0
    for _ in range(transactions):
        for _ in range(records_each):
            acked.append(offset)
            offset += 1
        marker = offset
        offset += 1
        if offset < transactions * (records_each + 1):
            gaps.addi(marker, offset + 1)  # [marker, next record]: the next record is in it too
    gaps.merge_overlaps()
    return acked, gaps


def test_a_whole_backlog_of_transactions_is_committed_at_once():
    acked, gaps = transactional_partition(transactions=1000, records_each=1)
    assert committable_offset(acked, gaps, committed=None) == 1999  # last record 1998, its marker at 1999
    assert acked == [] and not gaps.overlap(0, 1999)


def test_faust_own_computation_stops_at_the_duplicate_this_replaces():
    """The bug this module exists for: faust's _new_offset advances two offsets per call."""
    acked, gaps = transactional_partition(transactions=1000, records_each=1)
    consumer = types.SimpleNamespace(_acked={"tp": acked}, _gap={"tp": gaps}, _committed_offset={"tp": None}, _acked_index={"tp": set(acked)})
    faust_offset = faust_aiokafka.Consumer._new_offset(consumer, "tp")
    assert faust_offset is not None and faust_offset < 10, "faust-streaming fixed _new_offset: remove watercooler.faust_offsets"


def test_a_hole_holds_the_commit_until_it_is_filled():
    acked = [0, 1, 4, 5]
    assert committable_offset(acked, IntervalTree(), committed=None) == 2
    assert acked == [4, 5]
    assert committable_offset(acked, IntervalTree(), committed=2) is None  # 2 and 3 are still being handled
    acked += [3, 2]
    assert committable_offset(acked, IntervalTree(), committed=2) == 6
    assert acked == []


def test_the_commit_steps_over_one_marker_at_the_committed_offset():
    acked = [6, 7]  # committed 5 is a marker: the next record is 6
    assert committable_offset(acked, IntervalTree(), committed=5) == 8


def test_gaps_beyond_the_acked_offsets_are_kept_for_later():
    gaps = IntervalTree()
    gaps.addi(3, 5)
    gaps.addi(10, 12)
    acked = [0, 1, 2, 4]
    assert committable_offset(acked, gaps, committed=None) == 5
    assert sorted((i.begin, i.end) for i in gaps) == [(10, 12)]


def test_nothing_acked_commits_nothing():
    assert committable_offset([], IntervalTree(), committed=7) is None


def test_a_gap_per_commit_marker_is_recorded_without_rebuilding_the_tree_and_still_committed(monkeypatch):
    """Each relay transaction leaves a marker, so a gap is recorded nearly once per write: it is
    added as it is (faust merged the whole tree each time), and the commit still steps over all."""
    import asyncio

    from watercooler.faust_offsets import Consumer

    def merge_overlaps(self, *args, **kwargs):
        raise AssertionError("the gap tree was rebuilt on a marker")

    monkeypatch.setattr(IntervalTree, "merge_overlaps", merge_overlaps)
    consumer = types.SimpleNamespace(_committed_offset={"tp": None}, _gap={"tp": IntervalTree()})
    acked = []
    for transaction in range(200):  # one record, then its commit marker
        record = 2 * transaction
        acked.append(record)
        if transaction:
            # faust's consumer on reaching this record past the marker: a gap from the marker on
            asyncio.run(Consumer._add_gap(consumer, "tp", record - 1, record))
    assert committable_offset(acked, consumer._gap["tp"], committed=None) == 399
    assert acked == [] and not consumer._gap["tp"].overlap(0, 399)

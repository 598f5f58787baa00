"""The offset a faust worker may commit, correct on topics written in Kafka transactions.

Our relays publish in transactions, so every partition holds commit markers: offsets no
consumer ever sees.  faust-streaming (0.15.3) notices the jump past a marker and records a
"gap" so the commit can step over it, but the gap it records also covers the next real
record, which is later acked as well.  Its ``Consumer._new_offset`` then finds that offset
twice in its acked list, and its run-of-consecutive-numbers scan stops at the duplicate: the
commit moves two offsets per commit round.  In steady flow that hides in small batches; after
a long Elasticsearch outage thousands of records are acked at once and the committed offsets
stayed ~1,800 records behind for minutes, although every record had been applied (measured in
tests/integration/test_faults.py; the same bug is robinhood/faust#625, still open upstream as
faust-streaming/faust#606).  A restart then replays all of it.

``committable_offset`` is that computation with the duplicates counted once, and
``Transport`` plugs it into faust's aiokafka driver (``App`` below uses it).  Remove this
module when faust-streaming fixes ``_new_offset``.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def committable_offset(acked: list[int], gaps: Any, committed: int | None) -> int | None:
    """The next offset to commit for one partition, or None when nothing new is committable.

    ``acked``: offsets fully handled since the last commit (in any order, possibly repeated);
    the committed run is removed from it in place.  ``gaps``: faust's IntervalTree of offsets
    that hold no record for us (markers); the part up to the highest acked offset is folded in
    and chopped off.  ``committed``: the offset last committed (the next one to read)."""
    if not acked:
        return None
    offsets = set(acked)
    highest = max(offsets)
    if gaps:
        stepped = sorted(gaps.overlap(0, highest), key=lambda interval: interval.begin)
        if stepped:
            for interval in stepped:
                offsets.update(range(interval.begin, interval.end))
            gaps.chop(0, max(stepped[-1].end - 1, highest + 1))
    ordered = sorted(offsets)
    # A hole right after the committed offset (more than the one marker it may point at):
    # something before the acked offsets is still being handled.
    if committed and ordered[0] - committed > 1:
        acked[:] = ordered
        return None
    end = 0
    while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
        end += 1
    acked[:] = ordered[end + 1 :]
    return ordered[end] + 1


class Consumer(faust_aiokafka.Consumer):
    async def _add_gap(self, tp: faust.types.TP, offset_from: int, offset_to: int) -> None:
        """faust's, without its ``merge_overlaps`` after each gap: that rebuilds the partition's
        whole tree on every commit marker (one per relay transaction, so nearly one per single
        write; about 7 % of the projections' CPU under CreateProfile load, py-spy). Nothing needs
        the tree merged: ``committable_offset`` takes the union of the intervals it reads."""
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed + 1)
        if offset_from <= offset_to:  # intervaltree intervals exclude their end
            self._gap[tp].addi(offset_from, offset_to + 1)

    def _new_offset(self, tp: faust.types.TP) -> int | None:
        acked = self._acked[tp]
        before = set(acked)
        offset = committable_offset(acked, self._gap[tp], self._committed_offset[tp])
        # faust keeps a set beside the list to refuse a second ack of one offset.
        self._acked_index[tp].difference_update(before - set(acked))
        return offset


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """faust.App on the aiokafka driver with the commit computation above."""

    def _new_transport(self) -> faust.types.TransportT:
        return Transport(self.conf.broker_consumer, self)

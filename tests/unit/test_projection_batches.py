"""How a projection batch is split to be applied in two halves at once."""

from __future__ import annotations

from watercooler.projection import partition_halves


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

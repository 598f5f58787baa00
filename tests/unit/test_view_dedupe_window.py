"""The window of recent view ids that makes a re-sent view count once (services/search/stats/views.py)."""

from __future__ import annotations

from types import SimpleNamespace

from services.search.stats.views import RecentViewIds
from watercooler.posts.v1.library_events_pb2 import ViewFact


def facts(*view_ids: str, start: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(offset=start + i, value=ViewFact(target="pages/p", view_id=v).SerializeToString()) for i, v in enumerate(view_ids)]


def test_a_view_id_seen_within_the_window_is_skipped_and_an_empty_one_never():
    window = RecentViewIds(size=3)
    kept = window.first_sightings(facts("a", "b", "a", "", ""))
    assert [r.offset for r in kept] == [0, 1, 3, 4]
    assert window.next_offset == 5


def test_the_window_forgets_the_oldest_ids_and_a_replay_decides_the_same():
    records = facts("a", "b", "c", "d", "a", "d")
    first = RecentViewIds(size=3)
    kept = [r.offset for r in first.first_sightings(records)]
    assert kept == [0, 1, 2, 3, 4]  # "a" at 4 is three ids after its first copy: forgotten; "d" at 5 is not
    # A replay from offset 3, its window rebuilt from the three records before it.
    replay = RecentViewIds(size=3)
    replay.first_sightings(records[:3])
    assert [r.offset for r in replay.first_sightings(records[3:])] == [3, 4]

"""Which re-sent views count (services/search/readmodels/counters/views.py, first_sightings): a copy of a
view id is skipped for at least RETRY_WINDOW_SECONDS of record time, however many facts came
in between, and a replay after a crash decides the same."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from services.search.readmodels.counters.views import RETRY_WINDOW_SECONDS, Sighting, bucket_of, first_sightings, retryable, seen_id
from watercooler.posts.v1.library_events_pb2 import ViewFact

HOUR_MS = RETRY_WINDOW_SECONDS * 1000
START_MS = 1_780_000_000_000


def fact(offset: int, view_id: str, at_ms: int = START_MS, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(partition=partition, offset=offset, timestamp=at_ms, value=ViewFact(target="pages/p", view_id=view_id).SerializeToString())


def decide(records, stored=None, batch=1):
    """Counts records batch by batch (``batch`` records a batch), storing sightings as the worker does."""
    stored = {} if stored is None else stored
    counted = []
    for start in range(0, len(records), batch):
        kept, created = first_sightings("views", records[start:start + batch], stored)
        stored.update(created)
        counted += [r.offset for r in kept]
    return counted


def test_the_window_is_at_least_an_hour():
    assert RETRY_WINDOW_SECONDS >= 3600


def test_a_copy_is_skipped_whatever_came_between_and_an_id_without_request_id_never():
    # 100,000 other views between the first attempt and its retry (twice the old window of 50,000 facts).
    between = [fact(1 + i, f"u/other/{i}") for i in range(100_000)]
    records = [fact(0, "u/r1/0"), *between, fact(100_001, "u/r1/0"), fact(100_002, "random-id"), fact(100_003, "random-id")]
    # In the worker's batches of 5,000 (one record a batch copied the stored sightings 100,000
    # times: a minute of the suite), so the retry meets the first attempt's stored sighting.
    assert decide(records, batch=5_000)[-3:] == [100_000, 100_002, 100_003]


def test_a_copy_up_to_an_hour_later_is_skipped_on_any_bucket_boundary_and_much_later_counts_again():
    for first_ms in (START_MS, START_MS - START_MS % HOUR_MS, START_MS - START_MS % HOUR_MS - 1):
        late = first_ms + HOUR_MS
        assert decide([fact(0, "u/r/0", first_ms), fact(1, "u/r/0", late)]) == [0], first_ms
    # Two copies two windows apart each count: the store does not grow forever.
    assert decide([fact(0, "u/r/0", START_MS), fact(1, "u/r/0", START_MS + 3 * HOUR_MS)]) == [0, 1]
    # A copy from a producer whose clock is behind, across a bucket boundary, is still a copy.
    boundary = START_MS - START_MS % HOUR_MS
    assert decide([fact(0, "u/r/0", boundary), fact(1, "u/r/0", boundary - 1000)]) == [0]


def test_two_copies_in_one_batch_count_once():
    kept, created = first_sightings("views", [fact(0, "u/r/0"), fact(1, "u/r/0"), fact(2, "u/r/1")], {})
    assert [r.offset for r in kept] == [0, 2]
    assert set(created.values()) == {Sighting(0, 0), Sighting(0, 2)}


def test_a_replay_after_a_crash_decides_the_same_on_any_worker():
    records = [fact(0, "u/r/0"), fact(1, "u/r/1"), fact(2, "u/r/0"), fact(3, "u/r/1", START_MS + HOUR_MS)]
    stored: dict = {}
    assert decide(records, stored) == [0, 1]
    # Another worker replays every record against the stored sightings: the same ones count
    # (their count documents' versions then skip what was already added).
    assert decide(records, stored) == [0, 1]
    # A crash after the first sighting was stored but before it was counted: the replay counts it.
    partial = {(bucket_of(START_MS), seen_id("views", "u/r/0")): Sighting(0, 0)}
    assert decide(records, partial) == [0, 1]


def test_downloads_and_views_with_the_same_id_are_different_facts():
    stored: dict = {}
    kept, created = first_sightings("views", [fact(0, "u/r/0")], stored)
    stored.update(created)
    assert [r.offset for r in first_sightings("downloads", [fact(0, "u/r/0")], stored)[0]] == [0]


def test_a_view_id_is_retryable_when_derived_from_a_request_id_now_or_in_the_old_form():
    from services.posts.library.viewlog import view_id_of

    derived = view_id_of("svc", "r1", 0)
    assert retryable(derived) and derived == view_id_of("svc", "r1", 0) != view_id_of("svc", "r1", 1) != view_id_of("svc2", "r1", 1)
    assert "svc" not in derived and "r1" not in derived
    assert retryable("someone/r1/0")  # facts written before view ids were derived
    assert not retryable(str(uuid.uuid4())) and not retryable("") and not retryable("not-a-uuid")

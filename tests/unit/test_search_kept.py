"""The search service's short-lived values (a caller's scope, authors' departments): each is
kept for its seconds, and past the size bound the least recently stored go first."""

from __future__ import annotations

import pytest

from services.search import kept as kept_module
from services.search.kept import Kept


@pytest.fixture
def now(monkeypatch):
    """The clock the kept values read, moved by the test."""
    now = [100.0]
    monkeypatch.setattr(kept_module.time, "monotonic", lambda: now[0])
    return now


def test_values_expire_after_their_seconds(now):
    kept: Kept[str] = Kept(1.0, size=10)
    kept.put("a", "Research")
    now[0] = 100.9
    assert kept.get("a") == "Research"
    now[0] = 101.0
    assert kept.get("a") is None
    assert kept.get("never stored") is None


def test_the_least_recently_stored_go_first_past_the_size(monkeypatch):
    monkeypatch.setattr(kept_module.time, "monotonic", lambda: 5.0)
    kept: Kept[int] = Kept(60.0, size=2)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.put("a", 3)  # stored again: now the most recent
    kept.put("c", 4)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (3, None, 4)


def test_many_values_are_read_as_one_by_one_would_be(now):
    kept: Kept[str] = Kept(1.0, size=10)
    kept.put("old", "Sales")
    now[0] = 100.5
    kept.put("new", "Research")
    kept.put("empty", "")  # kept, though falsy: a person with no department
    now[0] = 101.2
    keys = ["new", "old", "never stored", "empty"]
    found, missing = kept.get_many(keys)
    assert found == {k: kept.get(k) for k in keys if kept.get(k) is not None} == {"new": "Research", "empty": ""}
    assert missing == ["old", "never stored"]


def test_a_value_made_from_older_ones_lapses_with_the_oldest(now):
    """A caller's scope made with a part kept for every caller is kept only as long as that part."""
    kept: Kept[str] = Kept(1.0, size=10)
    kept.put("shared part", "t1")
    now[0] = 100.6
    read_at, value = kept.stored("shared part")
    assert (read_at, value) == (100.0, "t1")
    kept.put("scope", f"made with {value}", stored_at=read_at)
    now[0] = 100.99
    assert kept.stored("scope") == (100.0, "made with t1")
    now[0] = 101.0  # a second after the part was read, not after the scope was made
    assert kept.get("scope") is None and kept.stored("scope") is None and kept.stored("shared part") is None

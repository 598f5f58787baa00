"""Values the search service keeps for a few seconds instead of reading them from
Elasticsearch on every request (a caller's scope, authors' departments)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class Kept(Generic[V]):
    """At most ``size`` values, each for ``seconds`` after it was stored; past ``size`` the
    least recently stored go first."""

    def __init__(self, seconds: float, size: int):
        self.seconds, self.size = seconds, size
        self._values: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        kept = self._values.get(key)
        if kept is None or time.monotonic() - kept[0] >= self.seconds:
            return None
        return kept[1]

    def get_many(self, keys: Iterable[Hashable]) -> tuple[dict[Hashable, V], list[Hashable]]:
        """The kept values of ``keys``, and the keys with none: ``get`` for many, with one clock read."""
        now, values = time.monotonic(), self._values
        found: dict[Hashable, V] = {}
        missing: list[Hashable] = []
        for key in keys:
            kept = values.get(key)
            if kept is None or now - kept[0] >= self.seconds:
                missing.append(key)
            else:
                found[key] = kept[1]
        return found, missing

    def stored(self, key: Hashable) -> tuple[float, V] | None:
        """(when it was stored, by ``time.monotonic``, the value), if still kept."""
        kept = self._values.get(key)
        if kept is None or time.monotonic() - kept[0] >= self.seconds:
            return None
        return kept

    def put(self, key: Hashable, value: V, stored_at: float | None = None) -> None:
        """Keep ``value``, as if stored at ``stored_at`` (a ``time.monotonic`` reading; default
        now): a value made from older ones lapses with the oldest."""
        self._values[key] = (time.monotonic() if stored_at is None else stored_at, value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def clear(self) -> None:
        self._values.clear()

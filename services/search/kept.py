"""Values the search service keeps for a few seconds instead of reading them from
Elasticsearch on every request (a caller's scope, authors' departments)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
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

    def put(self, key: Hashable, value: V) -> None:
        self._values[key] = (time.monotonic(), value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def clear(self) -> None:
        self._values.clear()

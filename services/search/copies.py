"""Each caller's reads come from the same copy of each shard.

With replicas (the cluster topology, production), the copies of a shard refresh on their own
and score with their own term statistics (deleted documents count until a merge removes them).
Two pages of one ranked search answered by different copies could repeat or skip a hit, and a
count read twice could go back. Elasticsearch's answer is the ``preference`` parameter: the
searches that carry one string go to the same copies while those are up. So every search,
count and msearch the search service sends carries its caller's (``reads_of``), added here
rather than at each of the query modules' call sites. Callers are spread over the copies by
the hash of their strings, so the load still is. A request sent outside any call (a
background poll) has no caller and no preference, and a request that names its own keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal, caller_or_none


def reads_of(principal: Principal) -> str:
    """The preference string of a caller: one per principal (never starting with ``_``, which
    Elasticsearch keeps for its own preferences)."""
    return f"{principal.kind}:{principal.subject}"


def _preference() -> str | None:
    principal = caller_or_none()
    return reads_of(principal) if principal is not None else None


class CallerPinnedElasticsearch(AsyncElasticsearch):
    """The client the search service queries with (``options()`` keeps the class)."""

    async def search(self, **kwargs: Any) -> Any:
        return await super().search(**_with_preference(kwargs))

    async def count(self, **kwargs: Any) -> Any:
        return await super().count(**_with_preference(kwargs))

    async def msearch(self, *, searches: Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> Any:
        preference = _preference()
        if preference is not None and searches is not None:
            # A header, then its body, for each search: the preference goes in the headers.
            searches = [{"preference": preference, **operation} if n % 2 == 0 else operation for n, operation in enumerate(searches)]
        return await super().msearch(searches=searches, **kwargs)


def _with_preference(kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("preference") is None:
        preference = _preference()
        if preference is not None:
            kwargs["preference"] = preference
    return kwargs

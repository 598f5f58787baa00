"""The search service's client adds its caller's ``preference`` to every search, count and
msearch header (services/search/copies.py): one caller's reads from one copy of each shard."""

from __future__ import annotations

import asyncio

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.copies import CallerPinnedElasticsearch
from watercooler.auth import Principal, set_current_principal


@pytest.fixture
def sent(monkeypatch):
    calls: list[tuple[str, dict]] = []
    for method in ("search", "count", "msearch"):
        async def record(self, _method=method, **kwargs):
            calls.append((_method, kwargs))
            return {}

        monkeypatch.setattr(AsyncElasticsearch, method, record)
    return calls


def run(coroutine_of):
    async def main():
        es = CallerPinnedElasticsearch("http://127.0.0.1:9")
        try:
            await coroutine_of(es)
        finally:
            await es.close()

    asyncio.run(main())


def test_a_callers_searches_counts_and_msearch_headers_carry_its_preference(sent):
    async def calls(es):
        set_current_principal(Principal(subject="e42", kind="employee"))
        await es.search(index="x", query={"match_all": {}})
        await es.count(index="x")
        await es.msearch(searches=[{"index": "x"}, {"query": {"match_all": {}}}, {"index": "y", "preference": "own"}, {"size": 0}])
        await es.options(request_timeout=5).search(index="x")  # a client made by options() too

    run(calls)
    search, count, msearch, optioned = sent
    assert search[1]["preference"] == count[1]["preference"] == optioned[1]["preference"] == "employee:e42"
    headers, bodies = msearch[1]["searches"][0::2], msearch[1]["searches"][1::2]
    assert [h["preference"] for h in headers] == ["employee:e42", "own"]  # a request naming its own keeps it
    assert all("preference" not in b for b in bodies)


def test_two_callers_differ_and_a_request_outside_any_call_has_none(sent):
    async def calls(es):
        set_current_principal(None)
        await es.search(index="x")
        set_current_principal(Principal(subject="e42", kind="employee"))
        await es.search(index="x")
        set_current_principal(Principal(subject="g7", kind="guest"))
        await es.search(index="x")

    run(calls)
    assert [kwargs.get("preference") for _, kwargs in sent] == [None, "employee:e42", "guest:g7"]

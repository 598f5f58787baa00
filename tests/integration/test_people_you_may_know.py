"""People you may know, counted over the whole second degree: a person's own edges and the
edges of their connections are read whole and the mutual connections counted by Elasticsearch,
so the ranking is the one a count by hand gives, also when every read is cut into pages (pages
of two stand in for Elasticsearch's 10,000 hits), and the same after the graph is rebuilt in
another order.

Against the Elasticsearch the tests share (WC_ES_URL), in an index namespace of its own; the
graph and people documents are written as their projections write them. The RPC itself (its
authorization and a small graph made through the profiles service) is covered by
tests/integration/test_graph.py."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from services.search import network, visibility
from services.search.readmodels import indices
from services.search.readmodels.projections.graph import GraphProjection
from services.search.readmodels.projections.people import PeopleProjection
from watercooler import config
from watercooler.projection import es_client

pytestmark = pytest.mark.integration

ME = "p000"
DEPARTMENT = "Research"


@pytest.fixture(autouse=True)
def elasticsearch(infra):
    return infra


def company(seed: int) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
    """Sixty people (every fourth in my department, some left the directory) and their edges:
    my connections, one pending request, and the connections of those (many candidates share a
    number of mutual connections, so ties are broken by department and directory order)."""
    rng = random.Random(seed)
    people = {f"p{i:03d}": {"employee_id": f"p{i:03d}", "display_name": f"Person {i}", "department": DEPARTMENT if i % 4 == 0 else "Sales",
                             "sort_key": f"person {60 - i:03d}", "alumni": False, "deleted": i in (17, 33)} for i in range(60)}
    friends = [f"p{i:03d}" for i in range(1, 9)]
    edges = [(ME, friend, "CONNECTED") for friend in friends] + [(ME, "p009", "PENDING"), (ME, "p010", "NONE")]
    for friend in friends:
        for other in rng.sample(sorted(set(people) - {ME, friend}), 12):
            edges.append((friend, other, "CONNECTED"))
    edges.append(("p020", "p021", "CONNECTED"))  # nobody I know
    return people, sorted({tuple(sorted(e[:2])) + (e[2],) for e in edges})


def by_hand(people: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]], size: int) -> list[tuple[str, int, bool]]:
    """The ranking the RPC promises, counted here over every edge."""
    mine = {a if b == ME else b: state for a, b, state in edges if ME in (a, b) and state in ("CONNECTED", "PENDING")}
    connected = {p for p, state in mine.items() if state == "CONNECTED"}
    excluded = {ME, *mine}
    mutual: Counter[str] = Counter()
    for a, b, state in edges:
        if state != "CONNECTED":
            continue
        for via, candidate in ((a, b), (b, a)):
            if via in connected and candidate not in excluded:
                mutual[candidate] += 1
    department = people[ME]["department"]
    ranked = []
    for pid, doc in people.items():
        if doc["deleted"] or pid in excluded:
            continue
        same = doc["department"] == department
        if mutual[pid] == 0 and not same:
            continue
        ranked.append((-(2 * mutual[pid] + same), doc["sort_key"], pid, mutual[pid], same))
    ranked.sort()
    return [(pid, n, same) for _, _, pid, n, same in ranked[:size]]


async def indexed(settings, people: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]], order: random.Random) -> None:
    es = es_client(settings)
    try:
        graph = GraphProjection(settings)
        await graph.ensure_index(es)
        await PeopleProjection(settings).ensure_index(es)
        operations: list[dict[str, Any]] = []
        shuffled = list(edges)
        order.shuffle(shuffled)  # a rebuild writes them in another order
        for a, b, state in shuffled:
            operations += [{"index": {"_index": graph.alias, "_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{a}/{b}"))}},
                           {"kind": "connection", "source": a, "target": b, "members": [a, b], "state": state, "since": "2026-12-01T00:00:00+00:00", "deleted": False}]
        for pid, doc in people.items():
            operations += [{"index": {"_index": settings.index_alias(indices.PEOPLE), "_id": pid}}, doc]
        result = await es.bulk(operations=operations, refresh=True)
        assert not result["errors"]
    finally:
        await es.close()


async def suggested(settings, size: int) -> list[tuple[str, int, bool]]:
    es = es_client(settings)
    try:
        found = await network.people_you_may_know(es, settings, ME, size)
        return [(doc["employee_id"], mutual, same) for doc, mutual, same, _ in found]
    finally:
        await es.close()


async def dropped(settings) -> None:
    es = es_client(settings)
    try:
        await es.indices.delete(index=f"{settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
    finally:
        await es.close()


def test_people_you_may_know_counts_every_edge_of_the_second_degree_also_read_in_pages_and_after_a_rebuild(monkeypatch):
    people, edges = company(seed=5)
    expected = by_hand(people, edges, size=60)
    # The list reaches past the mutual connections into colleagues without one, and ties of
    # mutual connections are broken by department and then directory order.
    assert any(n == 0 for _, n, _ in expected) and len({n for _, n, _ in expected}) < len(expected)
    answers = []
    for rebuild, paged in ((0, False), (1, True), (2, True)):
        settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
        try:
            asyncio.run(indexed(settings, people, edges, random.Random(rebuild)))
            with monkeypatch.context() as patched:
                if paged:
                    # Every read in pages of two: my edges through a point in time, the
                    # candidates' counts page by page.
                    patched.setattr(visibility, "SCOPE_PAGE", 2)
                    patched.setattr(network, "CANDIDATES_PAGE", 2)
                answers.append(asyncio.run(suggested(settings, size=60)))
            assert answers[-1] == expected, f"rebuild {rebuild}, paged {paged}"
        finally:
            asyncio.run(dropped(settings))
    # A shorter list is the start of the longer one.
    assert asyncio.run(_short(people, edges)) == expected[:3]


async def _short(people, edges) -> list[tuple[str, int, bool]]:
    settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
    try:
        await indexed(settings, people, edges, random.Random(9))
        return await suggested(settings, size=3)
    finally:
        await dropped(settings)

"""The authors' departments the search service keeps for the department facet
(services/search/departments.py): read once, kept current by polling the people index for the
profiles changed since the last poll, never read again on every faceted Search."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from services.search import departments, kept
from services.search.departments import KeptDepartments
from watercooler.config import Settings


class PeopleIndex:
    """Answers the two searches KeptDepartments sends: a read of some authors and a poll."""

    def __init__(self):
        self.department = {"ana": "Research", "bob": "Sales"}
        self.changed: list[str] = []  # what the next poll reports
        self.reads: list[list[str]] = []
        self.polls: list[str] = []  # each poll's "since"
        self.poll_gate: asyncio.Event | None = None

    async def search(self, *, query, **_):
        if "terms" in query:
            wanted = query["terms"]["employee_id"]
            self.reads.append(sorted(wanted))
            hits = [{"_source": {"employee_id": e, "department": self.department[e]}} for e in wanted if e in self.department]
            return {"hits": {"hits": hits, "total": {"value": len(hits)}}}
        self.polls.append(query["range"]["projected_at"]["gte"])
        if self.poll_gate is not None:
            await self.poll_gate.wait()
        hits = [{"_source": {"employee_id": e, "department": self.department.get(e, "")}} for e in self.changed]
        return {"hits": {"hits": hits[: departments.POLL_MOST], "total": {"value": len(hits)}}}


@pytest.fixture
def clock(monkeypatch):
    """Both clocks the module reads, moved together by the test."""
    now = [1_000_000.0]
    monkeypatch.setattr(departments.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(departments.time, "time", lambda: now[0])
    monkeypatch.setattr(kept.time, "monotonic", lambda: now[0])
    return now


def test_a_department_read_once_is_kept_and_a_move_reaches_it_by_the_next_poll(clock):
    es = PeopleIndex()
    kept_departments = KeptDepartments(es, Settings(namespace="kd"), "wc-search-facets")
    of = lambda *ids: asyncio.run(kept_departments.of(ids))  # noqa: E731
    assert of("ana", "bob", "nobody") == {"ana": "Research", "bob": "Sales", "nobody": ""}
    clock[0] += 3_000  # the old cache kept a department a minute: it read every author again
    es.department["nobody"] = "Services"  # a profile for the author who had none, not polled yet
    assert of("ana", "bob") == {"ana": "Research", "bob": "Sales"}
    assert es.reads == [["ana", "bob", "nobody"]]
    es.department["ana"] = "Sales"
    es.changed = ["ana", "nobody", "carol"]
    clock[0] += departments.POLL_SECONDS
    assert of("ana", "nobody") == {"ana": "Sales", "nobody": "Services"}
    assert es.reads == [["ana", "bob", "nobody"]]  # the poll brought both; carol, never asked for, is not kept
    assert of("carol") == {"carol": ""} and es.reads[-1] == ["carol"]
    # The first poll reads from before anything was kept; each next from the previous poll's
    # start, both less the overlap.
    assert [dt.datetime.fromisoformat(since).timestamp() for since in es.polls] == [
        pytest.approx(1_000_000.0 - departments.POLL_OVERLAP_SECONDS), pytest.approx(1_003_000.0 - departments.POLL_OVERLAP_SECONDS)]


def test_polls_come_at_most_every_few_seconds_and_concurrent_searches_share_one(clock):
    es = PeopleIndex()
    kept_departments = KeptDepartments(es, Settings(namespace="kd2"), "wc-search-facets")

    async def searches():
        await kept_departments.of(["ana"])
        clock[0] += departments.POLL_SECONDS
        es.poll_gate = asyncio.Event()
        waiting = [asyncio.ensure_future(kept_departments.of(["ana", "bob"])) for _ in range(5)]
        await asyncio.sleep(0)
        es.poll_gate.set()
        return await asyncio.gather(*waiting)

    answers = asyncio.run(searches())
    assert answers == [{"ana": "Research", "bob": "Sales"}] * 5
    assert len(es.polls) == 1  # the first Search came before a poll was due; the five shared one
    first = dt.datetime.fromisoformat(es.polls[0]).timestamp()
    assert first == pytest.approx(1_000_000.0 - departments.POLL_OVERLAP_SECONDS)


def test_more_changes_than_one_poll_reads_forget_every_department_kept(clock):
    es = PeopleIndex()
    kept_departments = KeptDepartments(es, Settings(namespace="kd3"), "wc-search-facets")
    asyncio.run(kept_departments.of(["ana", "bob"]))
    es.changed = [f"p{n}" for n in range(departments.POLL_MOST + 1)]  # a rebuild of the people index
    es.department["bob"] = "Research"
    clock[0] += departments.POLL_SECONDS
    assert asyncio.run(kept_departments.of(["bob"])) == {"bob": "Research"}
    assert es.reads == [["ana", "bob"], ["bob"]]


def test_the_author_and_department_facets_count_people_only_and_name_them_as_resources(clock):
    """Author buckets name an employee bare or as profiles/<id>, or a community (a media item a
    community owns): people alone are authors, each counted once over the fields, ordered by count
    then name, and their departments add to the people index's own."""
    from services.search import unified
    from watercooler.search.v1 import search_pb2 as sp

    es = PeopleIndex()
    search = unified.Search(es, Settings(namespace="kd4"))
    author_fields = list(unified.AUTHOR_FIELDS)
    aggs = {
        f"author_{author_fields[0]}": {"buckets": [{"key": "ana", "doc_count": 2}, {"key": "bob", "doc_count": 2}, {"key": "", "doc_count": 9}]},
        f"author_{author_fields[1]}": {"buckets": [{"key": "profiles/ana", "doc_count": 1}, {"key": "communities/c1", "doc_count": 7}]},
        f"author_{author_fields[2]}": {"buckets": [{"key": "carol", "doc_count": 1}]},
        "people_departments": {"buckets": [{"key": "Sales", "doc_count": 1}, {"key": "", "doc_count": 4}]},
    }
    response = sp.SearchResponse()
    asyncio.run(search._facets(response, aggs))
    facets = {f.field: [(v.value, v.count) for v in f.values] for f in response.facets}
    assert facets["author"] == [("profiles/ana", 3), ("profiles/bob", 2), ("profiles/carol", 1)]
    assert facets["department"] == [("Research", 3), ("Sales", 3)]  # carol has none: no value
    assert es.reads == [["ana", "bob", "carol"]]


def test_a_callers_languages_are_kept_until_their_profile_changes(clock):
    """The languages a Search read with the caller's scope are kept (``keep``) and followed by the
    same polls as the departments, by a poller of their own."""
    from services.search.departments import KeptLanguages

    class People(PeopleIndex):
        async def search(self, *, query, source, **kwargs):
            found = await super().search(query=query, source=source, **kwargs)
            for hit in found["hits"]["hits"]:
                hit["_source"] = {"employee_id": hit["_source"]["employee_id"], "languages": self.languages.get(hit["_source"]["employee_id"], [])}
            return found

    es = People()
    es.languages = {"ana": ["de", "fr"]}
    kept = KeptLanguages(es, Settings(namespace="kl"), "wc-search")
    assert asyncio.run(kept.kept("ana")) is None
    assert kept.keep("ana", {"employee_id": "ana", "languages": ["de", "fr"]}) == ("de", "fr")
    assert kept.keep("nobody", None) == ()
    clock[0] += 3_000  # kept far past the minute they were kept before
    assert asyncio.run(kept.kept("ana")) == ("de", "fr")
    assert len(es.polls) == 1 and not es.reads  # polled (nothing changed), never read
    es.languages["ana"] = ["es"]
    es.changed = ["ana"]
    clock[0] += departments.POLL_SECONDS
    assert asyncio.run(kept.kept("ana")) == ("es",) and asyncio.run(kept.kept("nobody")) == ()
    assert not es.reads

"""JoinedBulks: the bulks a batch's projections make at the same moment travel as one request,
and each caller still gets exactly its own outcome."""

from __future__ import annotations

import asyncio

import elasticsearch
import pytest

from watercooler.projection import JOINED_FILTER_PATH, JoinedBulks


class RecordingElasticsearch:
    """Answers a bulk as Elasticsearch does (one item per action, in order), refusing documents
    whose id starts with "conflict" (409) and whole requests holding an id starting with "bad"."""

    def __init__(self, fail_with: Exception | None = None):
        self.requests: list[dict] = []
        self.fail_with = fail_with

    async def bulk(self, *, operations, filter_path=None, **kwargs):
        self.requests.append({"operations": operations, "filter_path": filter_path, **kwargs})
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        items, position = [], 0
        while position < len(operations):
            kind, action = next(iter(operations[position].items()))
            position += 1 if kind == "delete" else 2
            if action["_id"].startswith("bad"):
                raise elasticsearch.BadRequestError("malformed action", meta=None, body={"error": "illegal_argument_exception"})
            if action["_id"].startswith("conflict"):
                items.append({kind: {"_id": action["_id"], "status": 409, "error": {"type": "version_conflict_engine_exception"}}})
            else:
                items.append({kind: {"_id": action["_id"], "status": 201}})
        return {"errors": any("error" in next(iter(item.values())) for item in items), "items": items}

    async def info(self):
        return {"passed": "through"}


def index(doc_id: str) -> list[dict]:
    return [{"index": {"_index": "people", "_id": doc_id, "version": 1, "version_type": "external"}}, {"name": doc_id}]


def ids(response) -> list[str]:
    return [next(iter(item.values()))["_id"] for item in response["items"]]


def test_bulks_made_at_the_same_moment_are_one_request_and_each_caller_gets_its_own_items():
    es = RecordingElasticsearch()
    joined = JoinedBulks(es)

    async def main():
        return await asyncio.gather(
            joined.bulk(operations=index("a1") + index("a2"), filter_path="errors,items.*.status,items.*.error"),
            joined.bulk(operations=index("b1") + index("conflict-b2") + [{"delete": {"_index": "people", "_id": "b3"}}] + index("b4"),
                        filter_path="errors,items.*.status,items.*.error"),
            joined.bulk(operations=index("c1"), filter_path="errors,items.*._id,items.*.status,items.*.error"),
        )

    first, second, third = asyncio.run(main())
    assert len(es.requests) == 1 and es.requests[0]["filter_path"] == JOINED_FILTER_PATH
    assert ids(first) == ["a1", "a2"] and first["errors"] is False
    assert ids(second) == ["b1", "conflict-b2", "b3", "b4"] and second["errors"] is True  # only the caller whose item was refused
    assert second["items"][1]["index"]["status"] == 409 and "delete" in second["items"][2]
    assert ids(third) == ["c1"] and third["errors"] is False


def test_a_bulk_made_later_goes_in_a_request_of_its_own():
    es = RecordingElasticsearch()
    joined = JoinedBulks(es)

    async def main():
        first = await joined.bulk(operations=index("a"), filter_path="errors,items.*.status,items.*.error")
        second = await joined.bulk(operations=index("b"), filter_path="errors,items.*.status,items.*.error")
        return first, second

    first, second = asyncio.run(main())
    assert len(es.requests) == 2 and ids(first) == ["a"] and ids(second) == ["b"]


def test_a_request_refused_as_a_whole_fails_only_the_caller_whose_part_it_was():
    es = RecordingElasticsearch()
    joined = JoinedBulks(es)

    async def main():
        return await asyncio.gather(joined.bulk(operations=index("a"), filter_path="errors,items.*.status,items.*.error"),
                                    joined.bulk(operations=index("bad"), filter_path="errors,items.*.status,items.*.error"),
                                    joined.bulk(operations=index("c"), filter_path="errors,items.*.status,items.*.error"),
                                    return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert ids(first) == ["a"] and ids(third) == ["c"]
    assert isinstance(second, elasticsearch.BadRequestError)
    assert len(es.requests) == 4  # the joined one, then each part alone


def test_a_connection_error_reaches_every_caller_for_their_own_retries():
    lost = elasticsearch.ConnectionError("connection refused")
    es = RecordingElasticsearch(fail_with=lost)
    joined = JoinedBulks(es)

    async def main():
        return await asyncio.gather(*(joined.bulk(operations=index(name), filter_path="errors,items.*.status,items.*.error") for name in "abc"),
                                    return_exceptions=True)

    assert asyncio.run(main()) == [lost, lost, lost]
    assert len(es.requests) == 1  # not sent again part by part: the processor's back-off retries


def test_other_requests_and_bulks_asking_for_more_pass_through():
    es = RecordingElasticsearch()
    joined = JoinedBulks(es)

    async def main():
        refreshed = await joined.bulk(operations=index("a"), refresh="wait_for")
        unfiltered = await joined.bulk(operations=index("b"))
        return refreshed, unfiltered, await joined.info()

    refreshed, unfiltered, info = asyncio.run(main())
    assert es.requests[0] == {"operations": index("a"), "filter_path": None, "refresh": "wait_for"}
    assert es.requests[1]["filter_path"] is None and ids(unfiltered) == ["b"]
    assert info == {"passed": "through"}


@pytest.mark.parametrize("cancelled", [0, 1])
def test_a_caller_cancelled_while_waiting_leaves_the_others_their_answers(cancelled):
    es = RecordingElasticsearch()
    joined = JoinedBulks(es)

    async def main():
        calls = [asyncio.ensure_future(joined.bulk(operations=index(name), filter_path="errors,items.*.status,items.*.error")) for name in ("a", "b")]
        await asyncio.sleep(0)
        calls[cancelled].cancel()
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[cancelled], asyncio.CancelledError)
    assert ids(outcomes[1 - cancelled]) == ["ab"[1 - cancelled]]

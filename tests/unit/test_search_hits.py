"""A Search hit as the search service builds it from Elasticsearch's: its kind from the index it
came from, and its create time from the document's ``created_at``, whatever form that takes."""

from __future__ import annotations

import datetime as dt

import pytest

from services.search.unified import KINDS, Search, kind_of_hit
from watercooler.config import Settings
from watercooler.search.v1 import search_pb2 as sp


def test_the_kind_of_a_hit_is_read_from_its_index_in_each_deployment():
    for namespace in ("a", "b"):
        settings = Settings(namespace=namespace)
        for kind, (projection, _) in KINDS.items():
            index = f"{settings.index_alias(projection)}-v3-initial"
            doc = {"kind": "blog" if kind == "post" else "micro"}
            assert kind_of_hit(settings, {"_index": index, "_source": doc}) == kind
        # Another deployment's index, or an alias name without a version, is no kind of this one.
        other = Settings(namespace="c").index_alias("wiki")
        assert kind_of_hit(settings, {"_index": f"{other}-v3-initial", "_source": {}}) == "unknown"
        assert kind_of_hit(settings, {"_index": settings.index_alias("wiki"), "_source": {}}) == "unknown"


@pytest.mark.parametrize("created, expected", [
    ("2026-12-07T05:57:28.914930+00:00", dt.datetime(2026, 12, 7, 5, 57, 28, 914930)),
    ("2026-12-07T05:57:28Z", dt.datetime(2026, 12, 7, 5, 57, 28)),
    ("2026-12-07T07:57:28.5+02:00", dt.datetime(2026, 12, 7, 5, 57, 28, 500000)),
    ("1969-12-31T23:59:59.25+00:00", dt.datetime(1969, 12, 31, 23, 59, 59, 250000)),
    ("2026-12-07T05:57:28.000001", dt.datetime(2026, 12, 7, 5, 57, 28, 1)),  # no zone: UTC
])
def test_a_hits_create_time_is_its_documents_created_at_in_utc(created, expected):
    response = sp.SearchResponse()
    hit = {"_index": "x", "_id": "p1", "_source": {"name": "posts/p1", "author_id": "e1", "content": "hello", "created_at": created}}
    Search._add_hit(Search.__new__(Search), response, hit, "post", 1.0, [])
    assert response.hits[0].create_time.ToDatetime() == expected
    assert 0 <= response.hits[0].create_time.nanos < 1_000_000_000


def test_a_hit_without_created_at_has_no_create_time():
    response = sp.SearchResponse()
    Search._add_hit(Search.__new__(Search), response, {"_index": "x", "_id": "p1", "_source": {"name": "posts/p1", "author_id": "e1"}}, "post", 1.0, [])
    assert not response.hits[0].HasField("create_time")

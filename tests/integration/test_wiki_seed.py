"""The wiki and media seeder (used by `make run`) writes through the APIs and is idempotent."""

from __future__ import annotations

import time

import pytest

from tests.conftest import eventually
from tools.seed import MEDIA, WIKI_PAGES, people, seed_library, seed_profiles
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def test_seeding_the_library_twice_changes_nothing(platform):
    seed_profiles(platform.settings, 5, seed=11)  # the seeded people who write (as `make run` seeds them)
    first = seed_library(platform.settings, 5, seed=11)
    search = platform.stub(sg.SearchServiceStub, "search")
    metadata = platform.metadata()

    def top():
        response = search.ListTopViewed(sp.ListTopViewedRequest(kind=sp.ListTopViewedRequest.PAGES, period=sp.ListTopViewedRequest.ALL_TIME, space="spaces/handbook", page_size=100), metadata=metadata)
        assert sum(i.count for i in response.items) == 500 and len(response.items) <= len(WIKI_PAGES)
        return {i.name: i.count for i in response.items}

    counted = eventually(top, message="seeded views counted")
    second = seed_library(platform.settings, 5, seed=11)  # replays by request id; no new views
    assert second < first
    owners = [f"profiles/{p.employee_id}" for p in people(5, seed=11)]

    def media_listed() -> int:
        return sum(search.ListMediaItems(sp.ListMediaItemsRequest(owner=o), metadata=metadata).total_size for o in owners)

    eventually(lambda: media_listed() == len(MEDIA), message="seeded media listed once")
    time.sleep(1.5)  # a second batch of views would have been counted by now
    assert top() == counted

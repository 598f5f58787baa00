"""The posts seeder (used by `make run`) writes through the APIs and is idempotent."""

from __future__ import annotations

import pytest

from tests.conftest import eventually
from tools.seed import seed_posts, seed_profiles
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def test_seeding_posts_twice_changes_nothing(platform):
    seed_profiles(platform.settings, 3, seed=7)
    first = seed_posts(platform.settings, 3, seed=7)
    assert first > 0
    search = platform.stub(sg.SearchServiceStub, "search")
    metadata = platform.metadata()

    def seeded():
        response = search.SearchPosts(sp.SearchPostsRequest(blog="blogs/blog-e000000", kind="blog"), metadata=metadata)
        assert response.total_size == 2
        assert all(p.rating_count >= 1 for p in response.posts)  # ratings projected too
        return response

    posts = eventually(seeded, message="seeded posts searchable").posts
    seed_posts(platform.settings, 3, seed=7)  # request ids replay: nothing new
    again = search.SearchPosts(sp.SearchPostsRequest(blog="blogs/blog-e000000", kind="blog"), metadata=metadata)
    assert again.total_size == 2 and {p.name for p in again.posts} == {p.name for p in posts}

"""Social bookmarks: URL normalisation, one link many savers, popular links, tags."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from tests.integration.test_posts_lifecycle import V, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def save(posts, metadata, url, tags=(), visibility=V.INTERNAL, **kwargs):
    return posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=url, tags=list(tags), visibility=visibility, **kwargs)), metadata=metadata)


def test_one_link_many_savers_and_popular_links(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    host = f"{unique('site')}.example.com"
    tag = unique("t")
    people = [person(platform, f"Saver {i}") for i in range(3)]
    variants = [f"HTTPS://{host.upper()}:443/a/./b/?utm_source=x#top", f"https://{host}/a/b/", f"https://{host}/a/c/../b/"]
    saved = [save(posts, md, url, tags=[tag], title="The page") for (_, md), url in zip(people, variants, strict=False)]
    assert {b.url for b in saved} == {f"https://{host}/a/b/"}
    other = save(posts, people[0][1], f"http://{host}/other", tags=[tag])
    again = rpc_error(save, posts, people[1][1], f"https://{host}/a/x/../b/#again")
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(again) == ["bookmark.url"]

    def popular():
        links = search.ListPopularLinks(sp.ListPopularLinksRequest(window=sp.ListPopularLinksRequest.LAST_7_DAYS, tag=tag), metadata=people[0][1]).links
        assert [(link.url, link.saver_count) for link in links] == [(f"https://{host}/a/b/", 3), (other.url, 1)]
        return links

    eventually(popular, message="popular links")
    all_time = search.ListPopularLinks(sp.ListPopularLinksRequest(window=sp.ListPopularLinksRequest.ALL_TIME, tag=tag), metadata=people[0][1]).links
    assert all_time[0].saver_count == 3 and all_time[0].title == "The page"
    mine = search.SearchBookmarks(sp.SearchBookmarksRequest(owner=f"profiles/{people[0][0]}"), metadata=people[1][1])
    assert {b.name for b in mine.bookmarks} == {saved[0].name, other.name}
    by_url = search.SearchBookmarks(sp.SearchBookmarksRequest(url=f"https://{host.upper()}/a/b/#x"), metadata=people[1][1])
    assert by_url.total_size == 3

    # Deleted: one saver fewer; private bookmarks are not counted for others.
    posts.DeleteBookmark(pb.DeleteBookmarkRequest(name=saved[2].name), metadata=people[2][1])
    save(posts, people[2][1], f"http://{host}/other", tags=[tag], visibility=V.PRIVATE)
    eventually(
        lambda: (
            [(x.url, x.saver_count) for x in search.ListPopularLinks(sp.ListPopularLinksRequest(tag=tag), metadata=people[0][1]).links]
            == [(f"https://{host}/a/b/", 2), (other.url, 1)]
        ),
        message="deleted and private saves not counted",
    )
    # Others see the same counts whether or not the private save is indexed yet: wait for it
    # through its owner, who counts it.
    eventually(
        lambda: {x.url: x.saver_count for x in search.ListPopularLinks(sp.ListPopularLinksRequest(tag=tag), metadata=people[2][1]).links}[other.url] == 2,
        message="the owner counts their private save",
    )


@pytest.mark.parametrize(
    ("url", "tags", "field"),
    [
        ("ftp://example.com/file", [], "bookmark.url"),
        ("javascript:alert(1)", [], "bookmark.url"),
        ("not a url", [], "bookmark.url"),
        ("", [], "bookmark.url"),
        ("https://example.com/" + "x" * 2100, [], "bookmark.url"),
        ("https://example.com/ok", [f"t{i}" for i in range(21)], "bookmark.tags"),
    ],
)
def test_bad_bookmarks_are_refused_and_not_stored(platform, url, tags, field):
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, metadata = person(platform, "Bad Saver")
    error = rpc_error(save, posts, metadata, url, tags=tags)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == [field]
    assert not [e for e in read_events(platform.settings, "posts") if e.type_name == "BookmarkCreated" and e.payload.url.endswith("x" * 50)]

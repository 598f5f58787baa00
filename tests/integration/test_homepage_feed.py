"""The Homepage stream: GetNetworkFeed shows every kind the people a person follows produce,
each as the caller may see it, in stable pages."""

from __future__ import annotations

import pytest

from tests.conftest import eventually
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
V = pb.Audience


def test_the_feed_shows_every_kind_the_network_produces_in_stable_pages(platform):
    s = Stubs(platform)
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    reader, as_reader = s.person("Reader")
    writer, as_writer = s.person("Writer")
    graph.Follow(gp.FollowRequest(parent=f"profiles/{reader}", target=f"profiles/{writer}"), metadata=as_reader)
    status = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{writer}", status_update=gp.StatusUpdate(text="at the office", visibility=gp.StatusUpdate.INTERNAL)), metadata=as_writer).name
    micro = s.micro(as_writer, "a micropost")
    post = s.post(as_writer, s.blog(as_writer), "A blog post", "Body.")
    draft = s.post(as_writer, s.blog(as_writer), "A draft", "Body.", publish=False)
    bookmark = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique()}", title="A link", visibility=V.INTERNAL)), metadata=as_writer).name
    private = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique()}", title="Mine only", visibility=V.PRIVATE)), metadata=as_writer).name
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Guides", visibility=wp.INTERNAL)), metadata=as_writer).name
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title="A page", body="v1")), metadata=as_writer).name
    media = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title="A video", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4",
                                                                                          visibility=wp.INTERNAL, storage_uri=f"s3://b/{unique()}")), metadata=as_writer).name
    jam = unique("jam-")
    s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam, jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=as_writer)
    s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam}", phase=jp.SCHEDULED), metadata=as_writer)
    idea = s.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam}", idea=jp.Idea(title="An idea")), metadata=as_writer).name
    expected = {status: "status", micro: "micropost", post: "post", bookmark: "bookmark", page: "wiki_page", media: "media", idea: "jam_idea"}

    def pages(size: int) -> list[sp.StatusUpdateHit]:
        items, token = [], ""
        while True:
            page_ = s.search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{reader}", page_size=size, page_token=token), metadata=as_reader)
            items += list(page_.items)
            token = page_.next_page_token
            if not token:
                return items

    def every_kind():
        got = {i.name for i in pages(100)}
        assert got >= set(expected), {kind: name for name, kind in expected.items() if name not in got}
        return True

    eventually(every_kind, timeout=120, message="every kind in the feed")
    items = pages(3)
    assert {i.name: i.kind for i in items if i.name in expected} == expected
    assert len({i.name for i in items}) == len(items), "an item on two pages"
    assert draft not in {i.name for i in items} and private not in {i.name for i in items}
    times = [i.create_time.ToDatetime() for i in items]
    assert times == sorted(times, reverse=True)
    assert [i.name for i in items] == [i.name for i in pages(100)]
    assert all(i.author == f"profiles/{writer}" for i in items)

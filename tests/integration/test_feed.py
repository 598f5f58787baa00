"""Status updates and the network feed, served by search: newest first, visibility as
the caller, stable page tokens, and what follow and unfollow change."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
V = gp.StatusUpdate


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def people(platform):
    stub = platform.stub(pg.ProfileServiceStub, "profiles")

    def make(n: int) -> list[str]:
        ids = [unique("f") for _ in range(n)]
        for employee in ids:
            stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Feeder {employee}")), metadata=platform.metadata())
            platform.accept_guidelines(employee)
        return ids

    return make


def post(graph, platform, author, text, visibility=V.INTERNAL, **extra):
    request = gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(text=text, visibility=visibility, **extra), request_id=str(uuid.uuid4()))
    return graph.CreateStatusUpdate(request, metadata=platform.metadata(author, "employee"))


def feed(search, metadata, person, page_size=100, token=""):
    return search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{person}", page_size=page_size, page_token=token), metadata=metadata)


def all_pages(search, metadata, person, page_size):
    texts, token = [], ""
    while True:
        page = feed(search, metadata, person, page_size, token)
        texts.extend(i.text for i in page.items)
        token = page.next_page_token
        if not token:
            return texts


def test_feed_follows_follow_and_unfollow_newest_first_with_stable_pages(platform, people):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    reader, alice, bob, carol = people(4)
    as_reader = platform.metadata(reader, "employee")
    for i in range(3):
        post(graph, platform, alice, f"alice {i}")
        post(graph, platform, bob, f"bob {i}")
    post(graph, platform, carol, "carol, not followed")
    post(graph, platform, alice, "alice private", visibility=V.PRIVATE)
    picture = platform.stub(mg.MediaServiceStub, "posts").RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
        title="Team photo", kind=mp.MediaItem.IMAGE, size_bytes=10, content_type="image/jpeg", visibility=wp.PUBLIC, storage_uri="s3://b/p")), metadata=platform.metadata(bob, "employee")).name
    photo = post(graph, platform, bob, "", visibility=V.PUBLIC, photo=picture)
    assert photo.photo == picture and photo.name.startswith(f"profiles/{bob}/statusUpdates/")
    assert list(feed(search, as_reader, reader).items) == []  # follows nobody yet

    graph.Follow(gp.FollowRequest(parent=f"profiles/{reader}", target=f"profiles/{alice}"), metadata=as_reader)
    graph.Follow(gp.FollowRequest(parent=f"profiles/{reader}", target=f"profiles/{bob}"), metadata=as_reader)
    # The Homepage stream has every kind the network produces: bob's media item too.
    expected = ["", "Team photo", "bob 2", "alice 2", "bob 1", "alice 1", "bob 0", "alice 0"]
    eventually(lambda: [i.text for i in feed(search, as_reader, reader).items] == expected, message="feed after follow")
    assert feed(search, as_reader, reader).items[0].photo == picture
    assert all_pages(search, as_reader, reader, page_size=2) == expected

    # New items arriving while paging appear at the top, never shifting later pages.
    first = feed(search, as_reader, reader, page_size=3)
    post(graph, platform, alice, "alice late")
    eventually(lambda: feed(search, as_reader, reader, page_size=1).items[0].text == "alice late", message="late post indexed")
    second = feed(search, as_reader, reader, page_size=3, token=first.next_page_token)
    assert [i.text for i in first.items] + [i.text for i in second.items] == expected[:6]

    # Someone else's feed is private; a token from another query is refused.
    other = rpc_error(search.GetNetworkFeed, sp.GetNetworkFeedRequest(person=f"profiles/{reader}"), metadata=platform.metadata(alice, "employee"))
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(other) == ["person"]
    alice_feed_token = rpc_error(search.GetNetworkFeed, sp.GetNetworkFeedRequest(person=f"profiles/{alice}", page_token=first.next_page_token), metadata=platform.metadata(alice, "employee"))
    assert alice_feed_token.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(alice_feed_token) == ["page_token"]

    graph.Unfollow(gp.UnfollowRequest(parent=f"profiles/{reader}", target=f"profiles/{bob}"), metadata=as_reader)
    eventually(lambda: [i.text for i in feed(search, as_reader, reader).items] == ["alice late", "alice 2", "alice 1", "alice 0"], message="feed after unfollow")

    # Connections feed in too (both ways); deleted updates drop out.
    graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{carol}", target=f"profiles/{reader}"), metadata=platform.metadata(carol, "employee"))
    graph.AcceptConnection(gp.AcceptConnectionRequest(parent=f"profiles/{reader}", target=f"profiles/{carol}"), metadata=as_reader)
    late = search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{alice}", page_size=1), metadata=as_reader).status_updates[0]
    graph.DeleteStatusUpdate(gp.DeleteStatusUpdateRequest(name=late.name), metadata=platform.metadata(alice, "employee"))
    eventually(lambda: [i.text for i in feed(search, as_reader, reader).items] == ["carol, not followed", "alice 2", "alice 1", "alice 0"], message="feed after connect and delete")


def test_status_visibility_as_the_caller(platform, people):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    (author,) = people(1)
    for visibility in (V.PUBLIC, V.INTERNAL, V.PRIVATE):
        post(graph, platform, author, V.Visibility.Name(visibility).lower(), visibility=visibility)

    def seen(metadata):
        return [s.text for s in search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{author}"), metadata=metadata).status_updates]

    eventually(lambda: seen(platform.metadata(author, "employee")) == ["private", "internal", "public"], message="statuses indexed")
    assert seen(platform.metadata(unique("colleague"), "employee")) == ["internal", "public"]
    assert seen(platform.metadata(unique("guest"), "guest")) == ["public"]
    assert seen(platform.metadata(unique("alum"), "alumni")) == ["public"]


@pytest.mark.parametrize(
    ("status", "field"),
    [
        (gp.StatusUpdate(text="x" * 501, visibility=V.PUBLIC), "status_update.text"),
        (gp.StatusUpdate(text="", visibility=V.PUBLIC), "status_update.text"),
        (gp.StatusUpdate(text="hi"), "status_update.visibility"),
        (gp.StatusUpdate(text="hi", visibility=V.PUBLIC, photo="ftp://x"), "status_update.photo"),
        # A media item is named media/{id}: the old form is refused, and so is an item that does not exist.
        (gp.StatusUpdate(text="hi", visibility=V.PUBLIC, photo="mediaItems/p-42"), "status_update.photo"),
        (gp.StatusUpdate(text="hi", visibility=V.PUBLIC, photo=f"media/{uuid.uuid4()}"), "status_update.photo"),
        (gp.StatusUpdate(text="hi", visibility=V.COMMUNITY), "status_update.community"),
        (gp.StatusUpdate(text="hi", visibility=V.COMMUNITY, community="communities/not-there"), "status_update.community"),
    ],
)
def test_bad_status_updates_name_the_field_and_store_nothing(platform, people, status, field):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    (author,) = people(1)
    metadata = platform.metadata(author, "employee")
    error = rpc_error(graph.CreateStatusUpdate, gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=status), metadata=metadata)
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), error.details()
    assert bad_request_fields(error) == [field]
    marker = post(graph, platform, author, "marker")
    eventually(lambda: [s.name for s in search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{author}"), metadata=metadata).status_updates] == [marker.name])


def test_feed_interleaves_microposts_of_followed_people(platform, people):
    from watercooler.posts.v1 import posts_pb2, posts_pb2_grpc

    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    posts = platform.stub(posts_pb2_grpc.PostServiceStub, "posts")
    reader, writer = people(2)
    as_reader = platform.metadata(reader, "employee")
    graph.Follow(gp.FollowRequest(parent=f"profiles/{reader}", target=f"profiles/{writer}"), metadata=as_reader)
    post(graph, platform, writer, "status first")
    micro = posts.CreateMicropost(
        posts_pb2.CreateMicropostRequest(micropost=posts_pb2.Micropost(text="a micropost", visibility=posts_pb2.Audience.INTERNAL)),
        metadata=platform.metadata(writer, "employee"),
    )
    post(graph, platform, writer, "status last")
    expected = [("status", "status last"), ("micropost", "a micropost"), ("status", "status first")]
    eventually(lambda: [(i.kind, i.text) for i in feed(search, as_reader, reader).items] == expected, message="microposts in the feed")
    assert feed(search, as_reader, reader).items[1].name == micro.name

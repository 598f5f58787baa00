"""Follows and connections through the real APIs, their lists and counts in search,
people you may know, and the rejections (yourself, missing people, strangers)."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
R = sp.ListRelationsRequest


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def people(platform):
    stub = platform.stub(pg.ProfileServiceStub, "profiles")

    def make(n: int, department: str = "") -> list[str]:
        ids = [unique("g") for _ in range(n)]
        for i, employee in enumerate(ids):
            stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Person {i:02d}", department=department)), metadata=platform.metadata())
        return ids

    return make


def relations(search, metadata, person, relation, page_size=100):
    out, token = [], ""
    while True:
        page = search.ListRelations(R(person=f"profiles/{person}", relation=relation, page_size=page_size, page_token=token), metadata=metadata)
        out.extend(p.profile.split("/")[1] for p in page.people)
        token = page.next_page_token
        if not token:
            return out, page.total_size


def test_follow_and_unfollow_with_paged_lists_and_counts(platform, people):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    star, *fans = people(6)
    for fan in fans:
        edge = graph.Follow(gp.FollowRequest(parent=f"profiles/{fan}", target=f"profiles/{star}", request_id=str(uuid.uuid4())), metadata=platform.metadata(fan, "employee"))
        assert edge.active and edge.followee == f"profiles/{star}"
    again = graph.Follow(gp.FollowRequest(parent=f"profiles/{fans[0]}", target=f"profiles/{star}"), metadata=platform.metadata(fans[0], "employee"))
    assert again.active  # following twice is a no-op, not an error
    graph.Follow(gp.FollowRequest(parent=f"profiles/{star}", target=f"profiles/{fans[0]}"), metadata=platform.metadata(star, "employee"))
    reader = platform.metadata(unique("reader"), "employee")

    eventually(lambda: relations(search, reader, star, R.FOLLOWERS)[1] == 5 and relations(search, reader, star, R.FOLLOWING)[1] == 1, message="follows indexed")
    followers, total = relations(search, reader, star, R.FOLLOWERS, page_size=2)
    assert total == 5 and followers == list(reversed(fans))  # newest first, across pages
    assert relations(search, reader, star, R.FOLLOWING)[0] == [fans[0]]
    counts = search.GetNetworkCounts(sp.GetNetworkCountsRequest(person=f"profiles/{star}"), metadata=reader)
    assert (counts.followers, counts.following, counts.connections) == (5, 1, 0)

    gone = graph.Unfollow(gp.UnfollowRequest(parent=f"profiles/{fans[1]}", target=f"profiles/{star}"), metadata=platform.metadata(fans[1], "employee"))
    assert not gone.active
    not_following = rpc_error(graph.Unfollow, gp.UnfollowRequest(parent=f"profiles/{fans[1]}", target=f"profiles/{star}"), metadata=platform.metadata(fans[1], "employee"))
    assert not_following.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(not_following) == ["target"]
    eventually(lambda: search.GetNetworkCounts(sp.GetNetworkCountsRequest(person=f"profiles/{star}"), metadata=reader).followers == 4, message="unfollow indexed")
    assert fans[1] not in relations(search, reader, star, R.FOLLOWERS)[0]
    # One follow record per pair: the duplicate follow stored nothing.
    followed = [e for e in read_events(platform.settings, "profiles") if e.type_name == "Followed" and e.payload.follower_id == fans[0] and e.payload.followee_id == star]
    assert len(followed) == 1


def test_connection_request_accept_decline_remove(platform, people):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    ann, bob, cy = people(3)
    as_ann, as_bob, as_cy = (platform.metadata(p, "employee") for p in (ann, bob, cy))

    asked = graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{ann}", target=f"profiles/{bob}"), metadata=as_ann)
    assert asked.state == gp.Connection.PENDING and asked.requester == f"profiles/{ann}"
    dup = rpc_error(graph.RequestConnection, gp.RequestConnectionRequest(parent=f"profiles/{ann}", target=f"profiles/{bob}"), metadata=as_ann)
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(dup) == ["target"]
    own = rpc_error(graph.AcceptConnection, gp.AcceptConnectionRequest(parent=f"profiles/{ann}", target=f"profiles/{bob}"), metadata=as_ann)
    assert own.code() == grpc.StatusCode.FAILED_PRECONDITION
    eventually(lambda: relations(search, as_bob, bob, R.PENDING_INCOMING)[0] == [ann], message="pending request indexed")
    assert relations(search, as_ann, ann, R.PENDING_OUTGOING)[0] == [bob]
    peek = rpc_error(search.ListRelations, R(person=f"profiles/{bob}", relation=R.PENDING_INCOMING), metadata=as_cy)
    assert peek.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(peek) == ["person"]

    accepted = graph.AcceptConnection(gp.AcceptConnectionRequest(parent=f"profiles/{bob}", target=f"profiles/{ann}"), metadata=as_bob)
    assert accepted.state == gp.Connection.CONNECTED
    graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{cy}", target=f"profiles/{ann}"), metadata=as_cy)
    declined = graph.DeclineConnection(gp.DeclineConnectionRequest(parent=f"profiles/{ann}", target=f"profiles/{cy}"), metadata=as_ann)
    assert declined.state == gp.Connection.NONE

    def counts(person):
        c = search.GetNetworkCounts(sp.GetNetworkCountsRequest(person=f"profiles/{person}"), metadata=as_cy)
        return c.connections

    eventually(lambda: counts(ann) == 1 and counts(bob) == 1 and counts(cy) == 0, message="connections indexed")
    assert relations(search, as_cy, ann, R.CONNECTIONS)[0] == [bob]
    eventually(lambda: relations(search, as_ann, ann, R.PENDING_INCOMING)[0] == [], message="decline indexed")

    removed = graph.RemoveConnection(gp.RemoveConnectionRequest(parent=f"profiles/{ann}", target=f"profiles/{bob}"), metadata=as_ann)
    assert removed.state == gp.Connection.NONE
    eventually(lambda: counts(ann) == 0 and counts(bob) == 0, message="removal indexed")
    # After a removal either side may ask again.
    assert graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{bob}", target=f"profiles/{ann}"), metadata=as_bob).state == gp.Connection.PENDING


@pytest.mark.parametrize("rpc", ["Follow", "RequestConnection"])
def test_yourself_missing_people_and_strangers_are_refused_and_nothing_is_stored(platform, people, rpc):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    me, other = people(2)
    as_me = platform.metadata(me, "employee")
    request = gp.FollowRequest if rpc == "Follow" else gp.RequestConnectionRequest
    call = getattr(graph, rpc)
    cases = [
        (request(parent=f"profiles/{me}", target=f"profiles/{me}"), as_me, grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (request(parent=f"profiles/{me}", target="profiles/nobody-here"), as_me, grpc.StatusCode.NOT_FOUND, "target"),
        (request(parent=f"profiles/{me}", target="people/x"), as_me, grpc.StatusCode.INVALID_ARGUMENT, "target"),
        (request(parent=f"profiles/{other}", target=f"profiles/{me}"), as_me, grpc.StatusCode.PERMISSION_DENIED, "parent"),
        (request(parent="profiles/ghost-person", target=f"profiles/{me}"), platform.metadata(), grpc.StatusCode.NOT_FOUND, "parent"),
    ]
    for req, metadata, code, field in cases:
        error = rpc_error(call, req, metadata=metadata)
        assert error.code() == code, (req, error.details())
        assert bad_request_fields(error) == [field]
    # A marker after the rejections: once it is in Kafka, anything stored before it would be too.
    graph.Follow(gp.FollowRequest(parent=f"profiles/{other}", target=f"profiles/{me}"), metadata=platform.metadata(other, "employee"))
    events = eventually(lambda: [e for e in read_events(platform.settings, "profiles") if e.type_name == "Followed" and e.payload.follower_id == other])
    assert events
    edges = [e for e in read_events(platform.settings, "profiles") if e.envelope.aggregate_type in ("Follow", "Connection")]
    assert [e for e in edges if e.envelope.actor.subject == me] == []
    assert not [e for e in edges if {"nobody-here", "ghost-person"} & {getattr(e.payload, f, "") for f in ("follower_id", "followee_id", "requester_id", "addressee_id")}]


def test_people_you_may_know_ranks_colleagues_of_colleagues_first(platform, people):
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    department = unique("Pymk")
    me, friend1, friend2, both, one, pending = people(6, department="Elsewhere")
    (colleague,) = people(1, department=department)
    profiles = platform.stub(pg.ProfileServiceStub, "profiles")
    profiles.UpdateProfile(pp.UpdateProfileRequest(profile=pp.Profile(name=f"profiles/{me}", department=department), update_mask={"paths": ["department"]}), metadata=platform.metadata())
    service = platform.metadata()

    def connect(a, b):
        graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{a}", target=f"profiles/{b}"), metadata=service)
        graph.AcceptConnection(gp.AcceptConnectionRequest(parent=f"profiles/{b}", target=f"profiles/{a}"), metadata=service)

    connect(me, friend1)
    connect(me, friend2)
    connect(friend1, both)
    connect(friend2, both)
    connect(friend1, one)
    graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{me}", target=f"profiles/{pending}"), metadata=service)
    connect(friend2, pending)
    as_me = platform.metadata(me, "employee")

    def suggestions():
        response = search.ListPeopleYouMayKnow(sp.ListPeopleYouMayKnowRequest(person=f"profiles/{me}"), metadata=as_me)
        return [(s.person.profile.split("/")[1], s.mutual_connections, s.same_department) for s in response.suggestions]

    expected = [(both, 2, False), (one, 1, False), (colleague, 0, True)]
    eventually(lambda: suggestions() == expected, message=f"suggestions {expected}")
    other = rpc_error(search.ListPeopleYouMayKnow, sp.ListPeopleYouMayKnowRequest(person=f"profiles/{me}"), metadata=platform.metadata(friend1, "employee"))
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED

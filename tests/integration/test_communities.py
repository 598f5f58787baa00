"""Communities through the real APIs: open and invite-only membership, and search
seeing every membership change (what COMMUNITY visibility checks) within seconds."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def people(platform):
    stub = platform.stub(pg.ProfileServiceStub, "profiles")

    def make(n: int) -> list[str]:
        ids = [unique("c") for _ in range(n)]
        for employee in ids:
            stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name=f"Person {employee}")), metadata=platform.metadata())
            platform.accept_guidelines(employee)
        return ids

    return make


def test_open_and_invite_only_membership(platform, people):
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    owner, joiner, outsider = people(3)
    as_owner, as_joiner, as_outsider = (platform.metadata(p, "employee") for p in (owner, joiner, outsider))
    open_id, closed_id = unique("open-"), unique("closed-")

    created = communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=open_id, display_name="Kafka Guild", access=cp.Community.OPEN), request_id=str(uuid.uuid4())), metadata=as_owner)
    assert created.name == f"communities/{open_id}" and list(created.owners) == [f"profiles/{owner}"] and created.member_count == 1
    dup = rpc_error(communities.CreateCommunity, cp.CreateCommunityRequest(community=cp.Community(community_id=open_id, display_name="Again", access=cp.Community.OPEN)), metadata=as_owner)
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(dup) == ["community.community_id"]

    joined = communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{open_id}"), metadata=as_joiner)
    assert joined.member_count == 2
    twice = rpc_error(communities.JoinCommunity, cp.JoinCommunityRequest(name=f"communities/{open_id}"), metadata=as_joiner)
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(twice) == ["member"]
    not_for_you = rpc_error(communities.JoinCommunity, cp.JoinCommunityRequest(name=f"communities/{open_id}", member=f"profiles/{outsider}"), metadata=as_joiner)
    assert not_for_you.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(not_for_you) == ["member"]

    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=closed_id, display_name="Board", access=cp.Community.INVITE_ONLY)), metadata=as_owner)
    uninvited = rpc_error(communities.JoinCommunity, cp.JoinCommunityRequest(name=f"communities/{closed_id}"), metadata=as_outsider)
    assert uninvited.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(uninvited) == ["name"]
    invited = communities.InviteMember(cp.InviteMemberRequest(name=f"communities/{closed_id}", member=f"profiles/{outsider}"), metadata=as_owner)
    assert list(invited.invited) == [f"profiles/{outsider}"]
    # Pending invitations follow the member list: others see only their own, owners stay public.
    board = f"communities/{closed_id}"
    seen_by = {who: communities.GetCommunity(cp.GetCommunityRequest(name=board), metadata=md) for who, md in (("owner", as_owner), ("invitee", as_outsider), ("stranger", as_joiner))}
    assert list(seen_by["owner"].invited) == list(seen_by["invitee"].invited) == [f"profiles/{outsider}"]
    assert list(seen_by["stranger"].invited) == [] and list(seen_by["stranger"].owners) == [f"profiles/{owner}"]
    assert list(communities.GetCommunity(cp.GetCommunityRequest(name=board), metadata=platform.metadata()).invited) == [f"profiles/{outsider}"]  # a service
    non_owner_invite = rpc_error(communities.InviteMember, cp.InviteMemberRequest(name=f"communities/{closed_id}", member=f"profiles/{joiner}"), metadata=as_outsider)
    assert non_owner_invite.code() == grpc.StatusCode.PERMISSION_DENIED
    assert communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{closed_id}"), metadata=as_outsider).member_count == 2

    members = communities.ListCommunityMembers(cp.ListCommunityMembersRequest(parent=f"communities/{closed_id}", page_size=1), metadata=as_owner)
    rest = communities.ListCommunityMembers(cp.ListCommunityMembersRequest(parent=f"communities/{closed_id}", page_size=1, page_token=members.next_page_token), metadata=as_owner)
    assert sorted([*members.members, *rest.members]) == sorted([f"profiles/{owner}", f"profiles/{outsider}"]) and members.total_size == 2
    assert not rest.next_page_token

    last_owner = rpc_error(communities.LeaveCommunity, cp.LeaveCommunityRequest(name=f"communities/{closed_id}"), metadata=as_owner)
    assert last_owner.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(last_owner) == ["member"]
    stranger_removes = rpc_error(communities.RemoveMember, cp.RemoveMemberRequest(name=f"communities/{open_id}", member=f"profiles/{owner}"), metadata=as_joiner)
    assert stranger_removes.code() == grpc.StatusCode.PERMISSION_DENIED
    unknown = rpc_error(communities.JoinCommunity, cp.JoinCommunityRequest(name="communities/no-such-thing"), metadata=as_joiner)
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(unknown) == ["name"]


@pytest.mark.parametrize(
    ("community", "field"),
    [
        (cp.Community(community_id="X!", display_name="Bad", access=cp.Community.OPEN), "community.community_id"),
        (cp.Community(community_id="ok-one", display_name="", access=cp.Community.OPEN), "community.display_name"),
        (cp.Community(community_id="ok-five", display_name="Nobody owns it", access=cp.Community.OPEN), "community.owners"),
        (cp.Community(community_id="ok-two", display_name="D" * 201, access=cp.Community.OPEN), "community.display_name"),
        (cp.Community(community_id="ok-three", display_name="No access"), "community.access"),
        (cp.Community(community_id="ok-four", display_name="Ghost owner", access=cp.Community.OPEN, owners=["profiles/nobody-x"]), "community.owners"),
    ],
)
def test_bad_communities_name_the_field_and_store_nothing(platform, community, field):
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    error = rpc_error(communities.CreateCommunity, cp.CreateCommunityRequest(community=community), metadata=platform.metadata())
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), error.details()
    assert bad_request_fields(error) == [field]
    if community.community_id.islower():
        assert rpc_error(communities.GetCommunity, cp.GetCommunityRequest(name=f"communities/{community.community_id}"), metadata=platform.metadata()).code() == grpc.StatusCode.NOT_FOUND


def test_search_sees_membership_changes_within_seconds(platform, people):
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    owner, member = people(2)
    as_owner, as_member = platform.metadata(owner, "employee"), platform.metadata(member, "employee")
    community_id = unique("secret-")
    name = f"communities/{community_id}"
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name="Secret Project", access=cp.Community.INVITE_ONLY)), metadata=as_owner)
    graph.Follow(gp.FollowRequest(parent=f"profiles/{member}", target=f"profiles/{owner}"), metadata=as_member)
    secret = graph.CreateStatusUpdate(
        gp.CreateStatusUpdateRequest(parent=f"profiles/{owner}", status_update=gp.StatusUpdate(text="for members", visibility=gp.StatusUpdate.COMMUNITY, community=name)),
        metadata=as_owner,
    )
    outsider_post = rpc_error(
        graph.CreateStatusUpdate,
        gp.CreateStatusUpdateRequest(parent=f"profiles/{member}", status_update=gp.StatusUpdate(text="let me in", visibility=gp.StatusUpdate.COMMUNITY, community=name)),
        metadata=as_member,
    )
    assert outsider_post.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(outsider_post) == ["status_update.community"]

    def my_communities():
        return [c.community for c in search.ListCommunities(sp.ListCommunitiesRequest(member=f"profiles/{member}"), metadata=as_member).communities]

    def sees_secret():
        return secret.name in [s.name for s in search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{owner}"), metadata=as_member).status_updates]

    def owner_sees():
        return [s.name for s in search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{owner}"), metadata=as_owner).status_updates]

    # Events of different aggregates travel on different partitions: wait for both.
    eventually(lambda: [c.community for c in search.ListCommunities(sp.ListCommunitiesRequest(member=f"profiles/{owner}"), metadata=as_owner).communities] == [name])
    eventually(lambda: owner_sees() == [secret.name], message="the owner sees the community update")
    assert my_communities() == [] and not sees_secret()

    communities.InviteMember(cp.InviteMemberRequest(name=name, member=f"profiles/{member}"), metadata=as_owner)
    communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=as_member)
    joined_at = time.monotonic()
    eventually(lambda: my_communities() == [name] and sees_secret(), timeout=10, interval=0.1, message="membership visible to search")
    visible_after = time.monotonic() - joined_at
    assert visible_after < 10
    feed = search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{member}"), metadata=as_member)
    assert secret.name in [i.name for i in feed.items]

    communities.RemoveMember(cp.RemoveMemberRequest(name=name, member=f"profiles/{member}"), metadata=as_owner)
    eventually(lambda: my_communities() == [] and not sees_secret(), timeout=10, interval=0.1, message="removal visible to search")
    events = [e.type_name for e in read_events(platform.settings, "profiles") if e.envelope.aggregate_type == "Community" and e.type_name != "CommunityCreated"]
    assert {"CommunityMemberInvited", "CommunityMemberJoined", "CommunityMemberRemoved"} <= set(events)


def test_get_membership_answers_for_one_person_as_the_member_list_would(platform, people):
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    owner, member, outsider = people(3)
    as_owner, as_member, as_outsider = (platform.metadata(p, "employee") for p in (owner, member, outsider))
    open_id, closed_id = unique("open-"), unique("closed-")
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=open_id, display_name="Open", access=cp.Community.OPEN)), metadata=as_owner)
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=closed_id, display_name="Closed", access=cp.Community.INVITE_ONLY)), metadata=as_owner)
    communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{open_id}"), metadata=as_member)
    communities.InviteMember(cp.InviteMemberRequest(name=f"communities/{closed_id}", member=f"profiles/{member}"), metadata=as_owner)
    communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{closed_id}"), metadata=as_member)

    def membership(community_id: str, person: str, metadata) -> cp.Membership:
        return communities.GetMembership(cp.GetMembershipRequest(name=f"communities/{community_id}/members/{person}"), metadata=metadata)

    def refused(community_id: str, person: str, metadata) -> grpc.RpcError:
        return rpc_error(communities.GetMembership, cp.GetMembershipRequest(name=f"communities/{community_id}/members/{person}"), metadata=metadata)

    got = membership(open_id, member, as_outsider)
    assert (got.name, got.member, got.owner) == (f"communities/{open_id}/members/{member}", f"profiles/{member}", False)
    assert membership(open_id, owner, as_outsider).owner
    assert refused(open_id, outsider, as_outsider).code() == grpc.StatusCode.NOT_FOUND
    # An invite-only community answers whom its member list answers: members and services.
    assert membership(closed_id, member, as_member).member == f"profiles/{member}"
    assert membership(closed_id, owner, platform.metadata()).owner
    assert refused(closed_id, outsider, platform.metadata()).code() == grpc.StatusCode.NOT_FOUND
    for person in (member, outsider):  # the same refusal for a member and a non-member: nothing learnt
        denied = refused(closed_id, person, as_outsider)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(denied) == ["name"]
    list_denied = rpc_error(communities.ListCommunityMembers, cp.ListCommunityMembersRequest(parent=f"communities/{closed_id}"), metadata=as_outsider)
    assert list_denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # Read from the event store: a leave shows at once.
    communities.LeaveCommunity(cp.LeaveCommunityRequest(name=f"communities/{open_id}"), metadata=as_member)
    assert refused(open_id, member, as_owner).code() == grpc.StatusCode.NOT_FOUND
    unknown = refused(unique("nowhere-"), owner, as_owner)
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(unknown) == ["name"]
    for bad in (f"communities/{open_id}", f"communities/{open_id}/members/", f"communities/{open_id}/owners/{owner}", f"profiles/{owner}", f"communities/{open_id}/members/{owner}/x"):
        invalid = rpc_error(communities.GetMembership, cp.GetMembershipRequest(name=bad), metadata=as_owner)
        assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(invalid) == ["name"], bad

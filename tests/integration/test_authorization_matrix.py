"""A representative slice of docs/authorization.md, walked through the real gRPC API:
for each write RPC family the owner succeeds, a stranger employee is refused
(PERMISSION_DENIED, or NOT_FOUND where the rule hides existence), alumni and guests are
refused as the document says, and a service succeeds where the document says so.
Every refusal is also checked to have changed nothing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.integration.helpers import rpc_error
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
OK, DENIED, NF = "OK", grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND


class World:
    """owner, stranger (employees), alumni, guest (of ``jam``), guest of another jam, service."""

    def __init__(self, platform):
        self.s = Stubs(platform)
        self.owner, self.as_owner = self.s.person("Owner Person")
        self.stranger, self.as_stranger = self.s.person("Stranger Person")
        self.alumni, _ = self.s.person("Former Person")
        self.s.profiles.LeaveCompany(prp.LeaveCompanyRequest(name=f"profiles/{self.alumni}", reason="moved on"), metadata=platform.metadata())
        self.as_alumni = platform.metadata(self.alumni, "alumni")
        self.guest = unique("g")
        self.as_service = platform.metadata()
        self.platform = platform

    def guest_of(self, *jams: str):
        return self.platform.metadata(self.guest, "guest", jams=tuple(jams))


@pytest.fixture(scope="module")
def world(platform) -> World:
    return World(platform)


def outcome(call, request, metadata) -> object:
    try:
        call(request, metadata=metadata, timeout=30)
        return OK
    except grpc.RpcError as error:
        return error.code()


def check(expected: dict[str, object], actual: dict[str, object]) -> None:
    assert actual == expected, "\n".join(f"{who}: expected {expected[who]}, got {actual[who]}" for who in expected if expected[who] != actual[who])


def test_profile_update(world: World):
    def update(title: str):
        return prp.UpdateProfileRequest(profile=prp.Profile(name=f"profiles/{world.owner}", title=title), update_mask=FieldMask(paths=["title"]))

    calls = world.s.profiles.UpdateProfile
    refused = {who: outcome(calls, update(f"by {who}"), md) for who, md in
               (("stranger", world.as_stranger), ("alumni", world.as_alumni), ("guest", world.guest_of()))}
    check({"stranger": DENIED, "alumni": DENIED, "guest": DENIED}, refused)
    assert world.s.profiles.GetProfile(prp.GetProfileRequest(name=f"profiles/{world.owner}"), metadata=world.as_owner).title == ""
    assert outcome(calls, update("by owner"), world.as_owner) == OK
    assert outcome(calls, update("by service"), world.as_service) == OK
    assert world.s.profiles.GetProfile(prp.GetProfileRequest(name=f"profiles/{world.owner}"), metadata=world.as_owner).title == "by service"


def test_community_invite_only(world: World):
    community = unique("c")
    world.s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Closed", access=cp.Community.INVITE_ONLY)),
                                        metadata=world.as_owner)
    name = f"communities/{community}"
    invitee, _ = world.s.person("Invitee")

    def invite(member: str):
        return cp.InviteMemberRequest(name=name, member=f"profiles/{member}")

    refused = {who: outcome(world.s.communities.InviteMember, invite(invitee), md) for who, md in
               (("stranger", world.as_stranger), ("alumni", world.as_alumni), ("guest", world.guest_of()))}
    check({"stranger": DENIED, "alumni": DENIED, "guest": DENIED}, refused)
    # Joining an invite-only community uninvited: refused, for a service too.
    assert outcome(world.s.communities.JoinCommunity, cp.JoinCommunityRequest(name=name), world.as_stranger) == DENIED
    assert outcome(world.s.communities.JoinCommunity, cp.JoinCommunityRequest(name=name, member=f"profiles/{world.stranger}"), world.as_service) == DENIED
    assert outcome(world.s.communities.InviteMember, invite(invitee), world.as_owner) == OK
    assert outcome(world.s.communities.InviteMember, invite(world.stranger), world.as_service) == OK
    # Removing: owners and services only.
    assert outcome(world.s.communities.RemoveMember, cp.RemoveMemberRequest(name=name, member=f"profiles/{invitee}"), world.as_stranger) == DENIED
    assert outcome(world.s.communities.RemoveMember, cp.RemoveMemberRequest(name=name, member=f"profiles/{invitee}"), world.as_owner) == OK


def test_status_updates(world: World):
    V = gp.StatusUpdate

    def create(author: str, visibility=V.INTERNAL):
        return gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(text="hello", visibility=visibility))

    calls = world.platform.stub(gg.GraphServiceStub, "profiles")
    refused = {
        "stranger as owner": outcome(calls.CreateStatusUpdate, create(world.owner), world.as_stranger),
        "alumni INTERNAL": outcome(calls.CreateStatusUpdate, create(world.alumni), world.as_alumni),
        "guest INTERNAL": outcome(calls.CreateStatusUpdate, create(world.guest), world.guest_of()),
    }
    check({"stranger as owner": DENIED, "alumni INTERNAL": DENIED, "guest INTERNAL": DENIED}, refused)
    assert outcome(calls.CreateStatusUpdate, create(world.alumni, V.PUBLIC), world.as_alumni) == OK
    mine = calls.CreateStatusUpdate(create(world.owner), metadata=world.as_owner)
    assert outcome(calls.DeleteStatusUpdate, gp.DeleteStatusUpdateRequest(name=mine.name), world.as_stranger) == DENIED
    assert outcome(calls.DeleteStatusUpdate, gp.DeleteStatusUpdateRequest(name=mine.name), world.as_service) == OK
    assert outcome(calls.CreateStatusUpdate, create(world.owner), world.as_service) == OK


def test_posts(world: World):
    s = world.s
    blog = s.blog(world.as_owner, visibility=pb.Audience.INTERNAL)
    post = s.post(world.as_owner, blog, "Internal news", "Only for us.", visibility=pb.Audience.INTERNAL)
    private = s.post(world.as_owner, blog, "Note to self", "Mine.", visibility=pb.Audience.PRIVATE)

    def edit(name: str, title: str):
        return pb.UpdatePostRequest(post=pb.Post(name=name, title=title), update_mask=FieldMask(paths=["title"]))

    # Changing: the author only; not even a service (see docs/authorization.md).
    refused = {who: outcome(s.posts.UpdatePost, edit(post, who), md) for who, md in
               (("stranger", world.as_stranger), ("alumni", world.as_alumni), ("guest", world.guest_of()), ("service", world.as_service))}
    check({"stranger": DENIED, "alumni": DENIED, "guest": DENIED, "service": DENIED}, refused)
    assert s.posts.GetPost(pb.GetPostRequest(name=post), metadata=world.as_owner).title == "Internal news"
    assert outcome(s.posts.UpdatePost, edit(post, "Internal news, edited"), world.as_owner) == OK
    # Reading: INTERNAL hidden from alumni and guests, PRIVATE from everyone but the author (and services).
    reads = {who: outcome(s.posts.GetPost, pb.GetPostRequest(name=name), md) for who, name, md in
             (("stranger", post, world.as_stranger), ("alumni", post, world.as_alumni), ("guest", post, world.guest_of()),
              ("stranger private", private, world.as_stranger), ("service private", private, world.as_service))}
    check({"stranger": OK, "alumni": NF, "guest": NF, "stranger private": NF, "service private": OK}, reads)
    # Commenting: whoever may read it, as a person; a service may not comment.
    comment = lambda: pb.CreateCommentRequest(comment=pb.Comment(target=post, body="Nice"))  # noqa: E731
    comments = {who: outcome(s.posts.CreateComment, comment(), md) for who, md in
                (("stranger", world.as_stranger), ("alumni", world.as_alumni), ("guest", world.guest_of()), ("service", world.as_service))}
    check({"stranger": OK, "alumni": NF, "guest": NF, "service": DENIED}, comments)
    # Alumni and guests may not publish internal content, even on their own blog.
    guest_blog = rpc_error(s.posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="G", visibility=pb.Audience.INTERNAL)), metadata=world.as_alumni)
    assert guest_blog.code() == DENIED


def test_wiki_and_media(world: World):
    s = world.s
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Team", visibility=wp.INTERNAL)), metadata=world.as_owner).name
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title="Howto", body="v1")), metadata=world.as_owner)
    restricted = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Secret", visibility=wp.RESTRICTED)), metadata=world.as_owner).name
    secret = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=restricted, title="Plans", body="v1")), metadata=world.as_owner)

    def edit(name: str, body: str):
        current = s.wiki.GetPage(wp.GetPageRequest(name=name), metadata=world.as_service).revision
        return wp.EditPageRequest(name=name, body=body, base_revision=current)

    edits = {who: outcome(s.wiki.EditPage, edit(name, f"by {who}"), md) for who, name, md in
             (("alumni", page.name, world.as_alumni), ("guest", page.name, world.guest_of()), ("stranger restricted", secret.name, world.as_stranger))}
    check({"alumni": NF, "guest": NF, "stranger restricted": NF}, edits)
    assert s.wiki.GetPage(wp.GetPageRequest(name=page.name), metadata=world.as_service).revision == 1
    # An INTERNAL space is edited by any employee (it is a wiki), and by services.
    assert {who: outcome(s.wiki.EditPage, edit(page.name, f"by {who}"), md) for who, md in
            (("owner", world.as_owner), ("stranger", world.as_stranger), ("service", world.as_service))} == {"owner": OK, "stranger": OK, "service": OK}
    # A PUBLIC space: alumni and guests see it but may not write.
    public = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Open", visibility=wp.PUBLIC)), metadata=world.as_owner).name
    open_page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=public, title="Welcome", body="hi")), metadata=world.as_owner)
    check({"alumni": DENIED, "guest": DENIED}, {who: outcome(s.wiki.EditPage, edit(open_page.name, "x"), md) for who, md in (("alumni", world.as_alumni), ("guest", world.guest_of()))})

    item = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title="Demo", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4",
                                                                                      visibility=wp.INTERNAL, storage_uri="s3://b/demo")), metadata=world.as_owner)

    def retitle(title: str):
        return mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=item.name, title=title), update_mask=FieldMask(paths=["title"]))

    media = {who: outcome(s.media.UpdateMediaItem, retitle(who), md) for who, md in
             (("stranger", world.as_stranger), ("alumni", world.as_alumni), ("guest", world.guest_of()))}
    check({"stranger": DENIED, "alumni": NF, "guest": NF}, media)
    assert s.media.GetMediaItem(mp.GetMediaItemRequest(name=item.name), metadata=world.as_owner).title == "Demo"
    assert outcome(s.media.UpdateMediaItem, retitle("owner"), world.as_owner) == OK
    assert outcome(s.media.UpdateMediaItem, retitle("service"), world.as_service) == OK
    register = mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title="X", kind=mp.MediaItem.VIDEO, size_bytes=1, content_type="video/mp4", visibility=wp.PUBLIC, storage_uri="s3://b/x"))
    check({"alumni": DENIED, "guest": DENIED}, {who: outcome(s.media.RegisterMediaItem, register, md) for who, md in (("alumni", world.as_alumni), ("guest", world.guest_of()))})


def test_jams(world: World):
    s = world.s
    jam_id, other_id = unique("jam-"), unique("jam-")
    for jam, visibility in ((jam_id, jp.Jam.INTERNAL), (other_id, jp.Jam.PUBLIC)):
        s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam, jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, visibility=visibility,
                                                                    open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=world.as_owner)
        # Created with a schedule (SCHEDULED); the host opens it now.
        s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam}", phase=jp.SCHEDULED), metadata=world.as_owner)
    guest_here, guest_elsewhere = world.guest_of(jam_id), world.guest_of(unique("jam-"))

    def forum(jam: str):
        return jp.CreateForumRequest(parent=f"jams/{jam}", forum_id=unique("f"), forum=jp.Forum(title="Ideas"))

    hosting = {who: outcome(s.jams.CreateForum, forum(jam_id), md) for who, md in
               (("stranger", world.as_stranger), ("guest here", guest_here), ("guest elsewhere", guest_elsewhere), ("alumni", world.as_alumni))}
    check({"stranger": DENIED, "guest here": DENIED, "guest elsewhere": NF, "alumni": NF}, hosting)
    assert outcome(s.jams.CreateForum, forum(jam_id), world.as_owner) == OK
    assert outcome(s.jams.CreateForum, forum(jam_id), world.as_service) == OK

    def idea(jam: str):
        return jp.CreateIdeaRequest(parent=f"jams/{jam}", idea=jp.Idea(title=f"Idea {unique('i')}"))

    taking_part = {who: outcome(s.jams.CreateIdea, idea(jam), md) for who, jam, md in
                   (("stranger", jam_id, world.as_stranger), ("guest here", jam_id, guest_here), ("guest elsewhere", jam_id, guest_elsewhere),
                    ("alumni", jam_id, world.as_alumni), ("alumni on PUBLIC", other_id, world.as_alumni), ("guest elsewhere on PUBLIC", other_id, guest_elsewhere),
                    ("service", jam_id, world.as_service))}
    check({"stranger": OK, "guest here": OK, "guest elsewhere": NF, "alumni": NF, "alumni on PUBLIC": DENIED, "guest elsewhere on PUBLIC": DENIED, "service": OK}, taking_part)
    assert outcome(s.jams.CreateJam, jp.CreateJamRequest(jam_id=unique("jam-"), jam=jp.Jam(title="Mine")), guest_here) == DENIED
    assert outcome(s.jams.RedeemInvitation, jp.RedeemInvitationRequest(code="x" * 20, jam=f"jams/{jam_id}"), world.as_stranger) == DENIED


def test_personal_feed(world: World):
    feed = world.s.search.GetNetworkFeed
    request = sp.GetNetworkFeedRequest(person=f"profiles/{world.owner}")
    check({"owner": OK, "stranger": DENIED, "guest": DENIED, "service": OK},
          {who: outcome(feed, request, md) for who, md in (("owner", world.as_owner), ("stranger", world.as_stranger), ("guest", world.guest_of()), ("service", world.as_service))})


def test_guests_and_alumni_stay_out_of_the_directory_and_the_graph(world: World):
    s = world.s
    guest, alumni, service = world.guest_of(), world.as_alumni, world.as_service
    newcomer = unique("e")
    creates = {
        "guest own": outcome(s.profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=world.guest, display_name="Guest")), guest),
        "alumni own": outcome(s.profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=world.alumni, display_name="Again")), alumni),
        "service": outcome(s.profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=newcomer, display_name="New Hire")), service),
    }
    check({"guest own": DENIED, "alumni own": DENIED, "service": OK}, creates)

    def community(by: str):
        return cp.CreateCommunityRequest(community=cp.Community(community_id=unique("c"), display_name=f"By {by}", access=cp.Community.OPEN))

    check({"guest": DENIED, "alumni": DENIED, "employee": OK},
          {who: outcome(s.communities.CreateCommunity, community(who), md) for who, md in (("guest", guest), ("alumni", alumni), ("employee", world.as_owner))})
    graph = gg.GraphServiceStub(world.platform.channel("profiles"))
    follow = gp.FollowRequest(parent=f"profiles/{world.guest}", target=f"profiles/{world.owner}")
    check({"guest": DENIED}, {"guest": outcome(graph.Follow, follow, guest)})
    directory = {
        "guest SearchPeople": outcome(s.search.SearchPeople, sp.SearchPeopleRequest(query="person"), guest),
        "guest ListCommunities": outcome(s.search.ListCommunities, sp.ListCommunitiesRequest(), guest),
        "alumni SearchPeople": outcome(s.search.SearchPeople, sp.SearchPeopleRequest(query="person"), alumni),
        "employee SearchPeople": outcome(s.search.SearchPeople, sp.SearchPeopleRequest(query="person"), world.as_stranger),
    }
    check({"guest SearchPeople": DENIED, "guest ListCommunities": DENIED, "alumni SearchPeople": OK, "employee SearchPeople": OK}, directory)

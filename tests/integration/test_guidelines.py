"""The participation guidelines: a person publishes only after accepting the current version."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from tests.integration.test_jams_api import open_jam
from tests.integration.test_posts_lifecycle import V, blog, person, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as ppg

pytestmark = pytest.mark.integration


def error_info(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


def refused_for_guidelines(error: grpc.RpcError, version: str) -> bool:
    return (
        error.code() == grpc.StatusCode.FAILED_PRECONDITION
        and version in error.details()
        and error_info(error) == {"guidelines_version": version}
    )


def test_a_person_writes_what_others_see_only_after_accepting_the_current_guidelines(platform):
    version = platform.settings.guidelines_version
    posts = platform.stub(pg.PostServiceStub, "posts")
    profiles = platform.stub(ppg.ProfileServiceStub, "profiles")
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    wiki, media = platform.stub(wg.WikiServiceStub, "posts"), platform.stub(mg.MediaServiceStub, "posts")
    jams = platform.stub(jg.JamServiceStub, "jams")
    ana, as_ana = person(platform, "Ana New", accepted=False)
    assert profiles.GetProfile(pp.GetProfileRequest(name=f"profiles/{ana}"), metadata=as_ana).guidelines_version == ""

    # Every kind of write others can see is refused, naming the version to accept.
    refusals = {
        "micropost": rpc_error(posts.CreateMicropost, pb.CreateMicropostRequest(micropost=pb.Micropost(text="hello", visibility=V.INTERNAL)), metadata=as_ana),
        "blog": rpc_error(posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Mine", visibility=V.INTERNAL)), metadata=as_ana),
        "bookmark": rpc_error(posts.CreateBookmark, pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('u')}", title="t", visibility=V.PUBLIC)), metadata=as_ana),
        "status": rpc_error(graph.CreateStatusUpdate, gp.CreateStatusUpdateRequest(parent=f"profiles/{ana}", status_update=gp.StatusUpdate(text="hi", visibility=gp.StatusUpdate.INTERNAL)), metadata=as_ana),
        "space": rpc_error(wiki.CreateSpace, wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="S", visibility=wp.INTERNAL)), metadata=as_ana),
        "media": rpc_error(media.RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
            title="clip", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri="s3://b/x")), metadata=as_ana),
    }
    host = platform.author(unique("host"))
    jam_id, _ = open_jam(jams, host, ideas=0)  # OPEN: ideas are welcome
    refusals["idea"] = rpc_error(jams.CreateIdea, jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title="An idea")), metadata=as_ana)
    assert {kind: refused_for_guidelines(error, version) for kind, error in refusals.items()} == dict.fromkeys(refusals, True), {k: (e.code(), e.details()) for k, e in refusals.items() if not refused_for_guidelines(e, version)}

    # What nobody else sees needs no acceptance: a private micropost, a draft; publishing it does.
    posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="note to self", visibility=V.PRIVATE)), metadata=as_ana)
    graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{ana}", status_update=gp.StatusUpdate(text="me", visibility=gp.StatusUpdate.PRIVATE)), metadata=as_ana)
    # A service (a platform job) is not asked: it writes the status of someone who has not accepted.
    graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{ana}", status_update=gp.StatusUpdate(text="by HR", visibility=gp.StatusUpdate.INTERNAL)), metadata=platform.metadata())

    # Only the person (or a service) accepts, only the current version, and a version is required.
    _, as_bob = person(platform, "Bob Other")
    accept = profiles.AcceptGuidelines
    assert rpc_error(accept, pp.AcceptGuidelinesRequest(name=f"profiles/{ana}", version=version), metadata=as_bob).code() == grpc.StatusCode.PERMISSION_DENIED
    old = rpc_error(accept, pp.AcceptGuidelinesRequest(name=f"profiles/{ana}", version="2009-01"), metadata=as_ana)
    assert old.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(old) == ["version"] and version in old.details()
    missing = rpc_error(accept, pp.AcceptGuidelinesRequest(name=f"profiles/{ana}"), metadata=as_ana)
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(missing) == ["version"]

    request_id = str(uuid.uuid4())
    accepted = accept(pp.AcceptGuidelinesRequest(name=f"profiles/{ana}", version=version, request_id=request_id), metadata=as_ana)
    again = accept(pp.AcceptGuidelinesRequest(name=f"profiles/{ana}", version=version, request_id=request_id), metadata=as_ana)
    once_more = accept(pp.AcceptGuidelinesRequest(name=f"profiles/{ana}", version=version), metadata=as_ana)
    assert accepted.guidelines_version == version and again.etag == accepted.etag == once_more.etag

    # Now every write passes, the refused ones included.
    mine = blog(posts, as_ana)
    draft = posts.CreatePost(pb.CreatePostRequest(parent=mine.name, post=pb.Post(title="First", body="b", visibility=V.INTERNAL)), metadata=as_ana)
    assert posts.PublishPost(pb.PublishPostRequest(name=draft.name), metadata=as_ana).state == pb.Post.PUBLISHED
    posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="hello", visibility=V.INTERNAL)), metadata=as_ana)
    jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title="An idea")), metadata=as_ana)
    graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{ana}", status_update=gp.StatusUpdate(text="hi", visibility=gp.StatusUpdate.INTERNAL)), metadata=as_ana)

    # The acceptance is one event on the person's profile.
    def accepted_events():
        events = read_events(platform.settings, "profiles")
        profile_id = next(e.aggregate_id for e in events if e.type_name == "ProfileCreated" and e.payload.employee_id == ana)
        return [e.payload.version for e in events if e.aggregate_id == profile_id and e.type_name == "GuidelinesAccepted"]

    assert eventually(accepted_events, message="GuidelinesAccepted published") == [version]


def test_a_private_draft_is_written_without_acceptance_and_refused_when_published(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    version = platform.settings.guidelines_version
    ana, as_ana = person(platform, "Ana Drafter", accepted=False)
    mine = blog(posts, as_ana, visibility=V.PRIVATE)
    draft = posts.CreatePost(pb.CreatePostRequest(parent=mine.name, post=pb.Post(title="Draft", body="b", visibility=V.INTERNAL)), metadata=as_ana)
    assert draft.state == pb.Post.DRAFT
    refused = rpc_error(posts.PublishPost, pb.PublishPostRequest(name=draft.name), metadata=as_ana)
    assert refused_for_guidelines(refused, version)
    assert posts.GetPost(pb.GetPostRequest(name=draft.name), metadata=as_ana).state == pb.Post.DRAFT  # nothing half-done
    platform.accept_guidelines(ana)
    assert posts.PublishPost(pb.PublishPostRequest(name=draft.name), metadata=as_ana).state == pb.Post.PUBLISHED


def test_a_guest_writes_in_a_jam_only_after_accepting_the_current_guidelines(platform):
    """Everyone who publishes answers for it: a guest has no profile, so the jams service, where
    guests write, records their acceptance."""
    version = platform.settings.guidelines_version
    jams = platform.stub(jg.JamServiceStub, "jams")
    host = platform.author(unique("host"))
    jam_id, _ = open_jam(jams, host, ideas=0)
    guest = unique("g")
    as_guest = platform.metadata(guest, "guest", jams=(jam_id,))
    idea = jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title="From a client"))
    refused = rpc_error(jams.CreateIdea, idea, metadata=as_guest)
    assert refused_for_guidelines(refused, version) and "JamService.AcceptGuestGuidelines" in refused.details(), (refused.code(), refused.details())

    # Only the guest (or a service) accepts, only the current version, and a version is required.
    accept = jams.AcceptGuestGuidelines
    _, as_employee = person(platform, "Not A Guest")
    assert rpc_error(accept, jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version=version), metadata=as_employee).code() == grpc.StatusCode.PERMISSION_DENIED
    other_guest = platform.metadata(unique("g"), "guest", jams=(jam_id,))
    assert rpc_error(accept, jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version=version), metadata=other_guest).code() == grpc.StatusCode.PERMISSION_DENIED
    old = rpc_error(accept, jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version="2009-01"), metadata=as_guest)
    assert old.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(old) == ["version"] and version in old.details()
    missing = rpc_error(accept, jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}"), metadata=as_guest)
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(missing) == ["version"]
    bad_name = rpc_error(accept, jp.AcceptGuestGuidelinesRequest(name=f"profiles/{guest}", version=version), metadata=as_guest)
    assert bad_name.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad_name) == ["name"]
    assert rpc_error(jams.CreateIdea, idea, metadata=as_guest).code() == grpc.StatusCode.FAILED_PRECONDITION  # nothing was recorded

    accepted = accept(jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version=version, request_id=str(uuid.uuid4())), metadata=as_guest)
    assert accepted == jp.GuestGuidelines(name=f"guests/{guest}", version=version)
    assert accept(jp.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version=version), metadata=as_guest) == accepted  # again: nothing new
    assert jams.CreateIdea(idea, metadata=as_guest).author == guest
    # A service accepts for a guest (an invitation desk, a seeder).
    helped = unique("g")
    accept(jp.AcceptGuestGuidelinesRequest(name=f"guests/{helped}", version=version), metadata=platform.metadata())
    jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title="Helped")), metadata=platform.metadata(helped, "guest", jams=(jam_id,)))

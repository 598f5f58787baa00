"""Communities that can be run: UpdateCommunity (field mask, etag), co-owners, a transfer of
ownership, a sole owner who may leave only once another owner exists, and archiving, after
which the community is read-only: every write into it (its own changes, membership, content
put into it in any service) is FAILED_PRECONDITION, while it stays readable."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_search_unified import Stubs, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
SC = grpc.StatusCode


def test_owners_run_transfer_and_archive_a_community(platform):
    s = Stubs(platform)
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    owner, as_owner = s.person("Orla Owner")
    member, as_member = s.person("Mads Member")
    heir, as_heir = s.person("Hal Heir")
    stranger, as_stranger = s.person("Stan Stranger")
    community = unique("run")
    name = f"communities/{community}"
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Runners", access=cp.Community.OPEN)), metadata=as_owner)
    for md in (as_member, as_heir):
        s.communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=md)
    micro = s.micro(as_member, "before the archive", visibility=pb.Audience.COMMUNITY, community=name)
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("rs"), display_name="Ours", visibility=wp.RESTRICTED, owner=name)), metadata=as_member).name

    # UpdateCommunity: owners only, by field mask, with the etag guarding races.
    update = lambda md, mask, etag="", **fields: s.communities.UpdateCommunity(  # noqa: E731
        cp.UpdateCommunityRequest(community=cp.Community(name=name, etag=etag, **fields), update_mask=FieldMask(paths=mask)), metadata=md)
    assert rpc_error(update, as_member, ["display_name"], display_name="Mine now").code() == SC.PERMISSION_DENIED
    bad = rpc_error(update, as_owner, ["owners"], display_name="x")
    assert bad.code() == SC.INVALID_ARGUMENT and "update_mask" in bad_request_fields(bad)
    empty = rpc_error(update, as_owner, ["display_name"])
    assert empty.code() == SC.INVALID_ARGUMENT and "community.display_name" in bad_request_fields(empty)
    renamed = update(as_owner, ["display_name", "access"], display_name="Runners Club", access=cp.Community.INVITE_ONLY)
    assert renamed.display_name == "Runners Club" and renamed.access == cp.Community.INVITE_ONLY and renamed.description == ""
    assert rpc_error(update, as_owner, ["description"], etag='"1"', description="stale").code() == SC.ABORTED
    assert update(as_owner, ["description"], etag=renamed.etag, description="We run").description == "We run"

    # Co-owners; a sole owner leaves only once another owner exists.
    leave = lambda md, who: s.communities.LeaveCommunity(cp.LeaveCommunityRequest(name=name, member=f"profiles/{who}"), metadata=md)  # noqa: E731
    assert rpc_error(leave, as_owner, owner).code() == SC.FAILED_PRECONDITION
    add = lambda md, who: s.communities.AddCommunityOwner(cp.AddCommunityOwnerRequest(name=name, owner=f"profiles/{who}"), metadata=md)  # noqa: E731
    assert rpc_error(add, as_owner, stranger).code() == SC.FAILED_PRECONDITION  # owners are members
    assert rpc_error(add, as_member, member).code() == SC.PERMISSION_DENIED
    assert set(add(as_owner, member).owners) == {f"profiles/{owner}", f"profiles/{member}"}
    assert rpc_error(add, as_owner, member).code() == SC.ALREADY_EXISTS
    remove = lambda md, who: s.communities.RemoveCommunityOwner(cp.RemoveCommunityOwnerRequest(name=name, owner=f"profiles/{who}"), metadata=md)  # noqa: E731
    assert list(remove(as_member, member).owners) == [f"profiles/{owner}"]  # stepped down, still a member
    assert rpc_error(remove, as_owner, owner).code() == SC.FAILED_PRECONDITION  # the last owner stays
    add(as_owner, member)
    leave(as_owner, owner)  # now another owner exists
    assert list(s.communities.GetCommunity(cp.GetCommunityRequest(name=name), metadata=as_member).owners) == [f"profiles/{member}"]

    # A transfer hands the caller's ownership over in one step.
    transfer = lambda md, who: s.communities.TransferCommunityOwnership(cp.TransferCommunityOwnershipRequest(name=name, new_owner=f"profiles/{who}"), metadata=md)  # noqa: E731
    assert rpc_error(transfer, as_heir, heir).code() == SC.PERMISSION_DENIED
    assert rpc_error(transfer, as_member, stranger).code() == SC.FAILED_PRECONDITION
    assert list(transfer(as_member, heir).owners) == [f"profiles/{heir}"]
    assert rpc_error(update, as_member, ["description"], description="no longer mine").code() == SC.PERMISSION_DENIED
    directory = lambda: {c.community: (c.display_name, list(c.owners)) for c in s.search.ListCommunities(sp.ListCommunitiesRequest(member=f"profiles/{heir}"), metadata=as_heir).communities}  # noqa: E731
    eventually(lambda: directory().get(name) == ("Runners Club", [f"profiles/{heir}"]), message=f"the directory follows the new name and owners: {directory()}")

    # Archived: read-only everywhere, still readable.
    assert rpc_error(s.communities.ArchiveCommunity, cp.ArchiveCommunityRequest(name=name), metadata=as_member).code() == SC.PERMISSION_DENIED
    assert s.communities.ArchiveCommunity(cp.ArchiveCommunityRequest(name=name), metadata=as_heir).archived
    writes = [
        lambda: s.communities.ArchiveCommunity(cp.ArchiveCommunityRequest(name=name), metadata=as_heir),
        lambda: update(as_heir, ["description"], description="after"),
        lambda: add(as_heir, member),
        lambda: leave(as_member, member),
        lambda: s.communities.InviteMember(cp.InviteMemberRequest(name=name, member=f"profiles/{stranger}"), metadata=as_heir),
        lambda: s.micro(as_member, "after the archive", visibility=pb.Audience.COMMUNITY, community=name),
        lambda: s.posts.UpdateMicropost(pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micro, text="edited after"), update_mask={"paths": ["text"]}), metadata=as_member),
        lambda: s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=micro, body="late")), metadata=as_heir),
        lambda: graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{member}", status_update=gp.StatusUpdate(
            text="late", visibility=gp.StatusUpdate.COMMUNITY, community=name)), metadata=as_member),
        lambda: s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title="Late page", body="x")), metadata=as_member),
        lambda: s.posts.Like(pb.LikeRequest(target=micro), metadata=as_heir),
    ]
    for n, write in enumerate(writes):
        error = rpc_error(write)
        assert error.code() == SC.FAILED_PRECONDITION and "archived" in error.details(), (n, error.details())
    assert s.posts.GetMicropost(pb.GetMicropostRequest(name=micro), metadata=as_heir).text == "before the archive"

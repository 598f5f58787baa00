"""What a caller may not see answers as if it did not exist: items hidden by community flags
(but to their author and services), another person's draft, a jam idea of a jam the guest was
not invited to, someone's invite-only memberships."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_blogs_directory import publish
from tests.integration.test_jams_api import open_jam
from tests.integration.test_posts_lifecycle import V, blog, person, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def status(call, request, metadata) -> tuple[grpc.StatusCode, list[str]]:
    error = rpc_error(call, request, metadata=metadata)
    return error.code(), bad_request_fields(error)


def test_a_flag_hidden_item_is_not_found_but_to_its_author_and_services_until_restored(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, as_ana = person(platform, "Ana Hidden")
    flaggers = [person(platform, f"Flagger {i}")[1] for i in range(3)]
    _, as_reader = person(platform, "Rita Reader")
    post = publish(posts, as_ana, blog(posts, as_ana).name, "hidden soon", visibility=V.PUBLIC)
    micro = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=f"{unique('m')} hidden soon", visibility=V.PUBLIC)), metadata=as_ana)
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=micro.name, body="hidden soon")), metadata=as_ana)
    bookmark = posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('b')}", title="hidden soon", visibility=V.PUBLIC)), metadata=as_ana)
    # The comment is flagged before its micropost: once the micropost is hidden, its comments
    # follow it and are nobody's to flag but its author's.
    names = [post.name, comment.name, micro.name, bookmark.name]
    for name in names:
        for md in flaggers:
            posts.FlagItem(pb.FlagItemRequest(name=name, reason="spam"), metadata=md)

    reads = {
        post.name: lambda md: posts.GetPost(pb.GetPostRequest(name=post.name), metadata=md),
        micro.name: lambda md: posts.GetMicropost(pb.GetMicropostRequest(name=micro.name), metadata=md),
        comment.name: lambda md: posts.GetComment(pb.GetCommentRequest(name=comment.name), metadata=md),
        bookmark.name: lambda md: posts.GetBookmark(pb.GetBookmarkRequest(name=bookmark.name), metadata=md),
    }
    made_up = status(posts.GetPost, pb.GetPostRequest(name="posts/00000000-0000-4000-8000-000000000000"), as_reader)
    for name, read in reads.items():
        for md in (as_reader, flaggers[0]):
            assert rpc_error(read, md).code() == NOT_FOUND, name
        assert read(as_ana).hidden, name  # the author sees it, marked hidden, to edit it
        assert read(platform.metadata()).hidden, name  # services moderate it
    assert status(posts.GetPost, pb.GetPostRequest(name=post.name), as_reader) == made_up
    assert rpc_error(posts.ListPostRevisions, pb.ListPostRevisionsRequest(parent=post.name), metadata=as_reader).code() == NOT_FOUND
    # Reached through another item: a comment on it, a rating, a like, a reply.
    assert rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="hi")), metadata=as_reader).code() == NOT_FOUND
    assert rpc_error(posts.RatePost, pb.RatePostRequest(post=post.name, value=3), metadata=as_reader).code() == NOT_FOUND
    assert rpc_error(posts.Like, pb.LikeRequest(target=micro.name), metadata=as_reader).code() == NOT_FOUND
    reply = pb.CreateMicropostRequest(micropost=pb.Micropost(text="re", reply_to=micro.name, visibility=V.PUBLIC))
    assert rpc_error(posts.CreateMicropost, reply, metadata=as_reader).code() == NOT_FOUND

    # Restored by the community's votes (they vote on the flag state, not the text): readable again.
    voters = [person(platform, f"Voter {i}")[1] for i in range(3)]
    for md in voters:
        posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=post.name), metadata=md)
    assert not posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_reader).hidden


def test_another_persons_draft_answers_not_found_to_comment_rate_and_flag(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, as_ana = person(platform, "Ana Drafting")
    _, as_bob = person(platform, "Bob Curious")
    b = blog(posts, as_ana, visibility=V.PUBLIC)
    draft = posts.CreatePost(pb.CreatePostRequest(parent=b.name, post=pb.Post(title="not yet", body="draft", visibility=V.PUBLIC)), metadata=as_ana)
    made_up = "posts/00000000-0000-4000-8000-000000000000"
    for name in (draft.name, made_up):
        assert status(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=name, body="hi")), as_bob) == (NOT_FOUND, ["comment.target"])
        assert status(posts.RatePost, pb.RatePostRequest(post=name, value=4), as_bob) == (NOT_FOUND, ["post"])
        assert status(posts.FlagItem, pb.FlagItemRequest(name=name, reason="spam"), as_bob) == (NOT_FOUND, ["name"])
    # The author's own draft still says why.
    assert rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=draft.name, body="hi")), metadata=as_ana).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_guest_voting_for_an_idea_of_another_jam_gets_what_a_made_up_idea_gets(platform):
    jams = platform.stub(jg.JamServiceStub, "jams")
    host = platform.author(unique("host"))
    jam_id, _ = open_jam(jams, host, ideas=1)
    _, other_ideas = open_jam(jams, host, ideas=1)
    guest = platform.metadata(unique("guest"), "guest", jams=(jam_id,))
    elsewhere = status(jams.CastVote, jp.CastVoteRequest(jam=f"jams/{jam_id}", idea=other_ideas[0]), guest)
    other_jam, idea_id = other_ideas[0].split("/")[1], other_ideas[0].split("/")[3]
    made_up = status(jams.CastVote, jp.CastVoteRequest(jam=f"jams/{jam_id}", idea=f"jams/{other_jam}/ideas/00000000-0000-4000-8000-000000000000"), guest)
    assert elsewhere == made_up == (NOT_FOUND, ["idea"])
    message = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=f"jams/{jam_id}", idea=other_ideas[0]), metadata=guest).details()
    assert other_jam not in message and idea_id in message


def test_someones_invite_only_communities_are_listed_to_their_members_and_services_only(platform):
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    search = platform.stub(sg.SearchServiceStub, "search")
    ana, as_ana = person(platform, "Ana Secret")
    _, as_olaf = person(platform, "Olaf Outside")
    closed, open_ = unique("closed-"), unique("open-")
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=closed, display_name="Closed", access=cp.Community.INVITE_ONLY)), metadata=as_ana)
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=open_, display_name="Open", access=cp.Community.OPEN)), metadata=as_ana)
    members_list = lambda md: {c.community for c in search.ListCommunities(sp.ListCommunitiesRequest(member=f"profiles/{ana}"), metadata=md).communities}  # noqa: E731
    both = {f"communities/{closed}", f"communities/{open_}"}
    eventually(lambda: members_list(as_ana) == both, message="indexed")
    assert members_list(platform.metadata()) == both
    assert members_list(as_olaf) == {f"communities/{open_}"}
    listing = search.ListCommunities(sp.ListCommunitiesRequest(member=f"profiles/{ana}"), metadata=as_olaf)
    assert listing.total_size == 1
    # The same answer as the member list itself.
    denied = rpc_error(communities.ListCommunityMembers, cp.ListCommunityMembersRequest(parent=f"communities/{closed}"), metadata=as_olaf)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


def test_guests_write_nothing_outside_their_jam_but_still_read_public_content(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    jams = platform.stub(jg.JamServiceStub, "jams")
    host = platform.author(unique("host"))
    jam_id, _ = open_jam(jams, host, ideas=0)
    guest_id = unique("guest")
    guest = platform.metadata(guest_id, "guest", jams=(jam_id,))
    platform.accept_guest_guidelines(guest_id)  # what they write in the jam, others read
    _, as_ana = person(platform, "Ana Public")
    post = publish(posts, as_ana, blog(posts, as_ana, visibility=V.PUBLIC).name, "open to all", visibility=V.PUBLIC)
    micro = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="open to all", visibility=V.PUBLIC)), metadata=as_ana)
    assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=guest).title == "open to all"
    writes = {
        "CreateMicropost": lambda: posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="hello", visibility=V.PUBLIC)), metadata=guest),
        "CreateBookmark": lambda: posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('g')}", title="x", visibility=V.PUBLIC)), metadata=guest),
        "CreateComment": lambda: posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="hi")), metadata=guest),
        "RatePost": lambda: posts.RatePost(pb.RatePostRequest(post=post.name, value=5), metadata=guest),
        "Like": lambda: posts.Like(pb.LikeRequest(target=micro.name), metadata=guest),
        "FlagItem": lambda: posts.FlagItem(pb.FlagItemRequest(name=post.name, reason="spam"), metadata=guest),
        "VoteRestoreItem": lambda: posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=post.name), metadata=guest),
        "CreateBlog": lambda: posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("g-"), title="x", visibility=V.PUBLIC)), metadata=guest),
    }
    for rpc, write in writes.items():
        error = rpc_error(write)
        assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["authorization"]), rpc
    # Inside the jam that invited them, they write.
    assert jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title="From a guest")), metadata=guest).name

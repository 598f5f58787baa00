"""COMMUNITY items read by name in the posts service (Get, comment, rate, like): members of
the item's community may, everyone else gets NOT_FOUND (existence hidden); membership is
asked of the profiles service and cached for WC_MEMBERSHIP_CACHE_SECONDS (default 10)."""

from __future__ import annotations

import time

import grpc
import pytest

from services.posts.membership import DEFAULT_CACHE_SECONDS, NEGATIVE_REFRESH_SECONDS
from tests.conftest import eventually
from tests.integration.helpers import read_events, rpc_error
from tests.integration.test_blogs_directory import publish
from tests.integration.test_posts_lifecycle import V, blog, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg

pytestmark = pytest.mark.integration


def test_members_read_comment_rate_and_like_community_items_non_members_get_not_found(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    _, as_ana = person(platform, "Ana Guild")
    mia, as_mia = person(platform, "Mia Member")
    olaf, as_olaf = person(platform, "Olaf Outsider")
    community_id = unique("guild-")
    communities.CreateCommunity(
        cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name="Guild", access=cp.Community.OPEN)), metadata=as_ana
    )
    communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{community_id}"), metadata=as_mia)
    community = f"communities/{community_id}"
    post = publish(posts, as_ana, blog(posts, as_ana).name, "guild plans", visibility=V.COMMUNITY, community=community)
    micro = posts.CreateMicropost(
        pb.CreateMicropostRequest(micropost=pb.Micropost(text="guild news", visibility=V.COMMUNITY, community=community)), metadata=as_ana
    )

    # A member reads, comments, rates and likes.
    assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_mia).title == "guild plans"
    assert posts.GetMicropost(pb.GetMicropostRequest(name=micro.name), metadata=as_mia).text == "guild news"
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="count me in")), metadata=as_mia)
    assert posts.GetComment(pb.GetCommentRequest(name=comment.name), metadata=as_mia).body == "count me in"
    assert posts.RatePost(pb.RatePostRequest(post=post.name, value=4), metadata=as_mia).value == 4
    assert posts.Like(pb.LikeRequest(target=micro.name), metadata=as_mia).liked
    assert posts.Like(pb.LikeRequest(target=comment.name), metadata=as_ana).liked

    # A non-member cannot tell the items exist; nothing of theirs is stored.
    attempts = [
        lambda: posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_olaf),
        lambda: posts.GetMicropost(pb.GetMicropostRequest(name=micro.name), metadata=as_olaf),
        lambda: posts.GetComment(pb.GetCommentRequest(name=comment.name), metadata=as_olaf),
        lambda: posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="let me in")), metadata=as_olaf),
        lambda: posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=micro.name, body="let me in")), metadata=as_olaf),
        lambda: posts.RatePost(pb.RatePostRequest(post=post.name, value=1), metadata=as_olaf),
        lambda: posts.Like(pb.LikeRequest(target=micro.name), metadata=as_olaf),
        lambda: posts.Like(pb.LikeRequest(target=comment.name), metadata=as_olaf),
    ]
    for attempt in attempts:
        assert rpc_error(attempt).code() == grpc.StatusCode.NOT_FOUND
    # Mia's like was the last thing accepted: once it is on Kafka, so would be anything before.
    eventually(lambda: [e for e in read_events(platform.settings, "posts") if e.envelope.actor.subject == mia], message="member's events relayed")
    assert [e for e in read_events(platform.settings, "posts") if e.envelope.actor.subject == olaf] == []

    # After leaving, access is gone within the cache lifetime (the cache was just filled).
    posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_mia)
    communities.LeaveCommunity(cp.LeaveCommunityRequest(name=community), metadata=as_mia)
    left = time.monotonic()

    def gone() -> bool:
        assert rpc_error(posts.GetPost, pb.GetPostRequest(name=post.name), metadata=as_mia).code() == grpc.StatusCode.NOT_FOUND
        return True

    eventually(gone, timeout=DEFAULT_CACHE_SECONDS + 10, message="a member who left loses access")
    assert time.monotonic() - left <= DEFAULT_CACHE_SECONDS + 3
    for attempt in (
        lambda: posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="still here?")), metadata=as_mia),
        lambda: posts.RatePost(pb.RatePostRequest(post=post.name, value=5), metadata=as_mia),
        lambda: posts.Like(pb.LikeRequest(target=micro.name), metadata=as_mia),
    ):
        assert rpc_error(attempt).code() == grpc.StatusCode.NOT_FOUND
    # Joining again shows at once (a miss refetches the member set, at most once a second per community).
    communities.JoinCommunity(cp.JoinCommunityRequest(name=community), metadata=as_mia)
    joined = time.monotonic()

    def readable() -> bool:
        try:
            return posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_mia).name == post.name
        except grpc.RpcError as error:
            raise AssertionError(error.code()) from error

    eventually(readable, timeout=5, message="rejoined")
    assert time.monotonic() - joined <= NEGATIVE_REFRESH_SECONDS + 2
    # The author always reads their own item.
    assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_ana).name == post.name

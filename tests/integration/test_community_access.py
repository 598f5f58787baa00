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
from tests.integration.test_observability import scrape
from tests.integration.test_posts_lifecycle import V, blog, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as ppg

pytestmark = pytest.mark.integration


def open_guild(platform, name: str) -> dict:
    """An OPEN community made by Ana, joined by Mia; Olaf stays outside."""
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    people = {who: person(platform, f"{who.title()} {name}") for who in ("ana", "mia", "olaf")}
    community_id = unique("guild-")
    communities.CreateCommunity(
        cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name=name, access=cp.Community.OPEN)), metadata=people["ana"][1]
    )
    communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{community_id}"), metadata=people["mia"][1])
    return {"community": f"communities/{community_id}", **people}



def test_members_read_comment_rate_and_like_community_items_non_members_get_not_found(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    guild = open_guild(platform, "Guild")
    (_, as_ana), (mia, as_mia), (olaf, as_olaf), community = guild["ana"], guild["mia"], guild["olaf"], guild["community"]
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


def test_a_community_owned_restricted_space_is_its_members_in_search_too(platform):
    """The wiki's rule (domainmodel.can_see: a community's members see its spaces) holds in
    the search service's library RPCs: view counts and top pages, for members only."""
    from watercooler.posts.v1 import wiki_pb2 as wp
    from watercooler.posts.v1 import wiki_pb2_grpc as wg
    from watercooler.search.v1 import search_pb2 as sp
    from watercooler.search.v1 import search_pb2_grpc as sg

    wiki = platform.stub(wg.WikiServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    guild = open_guild(platform, "Wiki Guild")
    as_ana, as_mia, as_olaf = guild["ana"][1], guild["mia"][1], guild["olaf"][1]
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("gs"), display_name="Guild handbook", visibility=wp.RESTRICTED,
                                                                  owner=guild["community"])), metadata=as_ana).name
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"Guild secrets {unique('t')}", body="x")), metadata=as_ana).name
    wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page)] * 3), metadata=as_mia)

    def member_counts() -> int:
        try:
            return search.GetViewCounts(sp.GetViewCountsRequest(name=page), metadata=as_mia).total
        except grpc.RpcError as error:  # NOT_FOUND until the page and the membership are projected
            assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
            return -1

    eventually(lambda: member_counts() == 3, timeout=60, message="member sees the counts")
    top = search.ListTopViewed(sp.ListTopViewedRequest(kind=sp.ListTopViewedRequest.PAGES, period=sp.ListTopViewedRequest.ALL_TIME, page_size=50), metadata=as_mia)
    assert page in [item.name for item in top.items]
    error = rpc_error(search.GetViewCounts, sp.GetViewCountsRequest(name=page), metadata=as_olaf)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    top = search.ListTopViewed(sp.ListTopViewedRequest(kind=sp.ListTopViewedRequest.PAGES, period=sp.ListTopViewedRequest.ALL_TIME, page_size=50), metadata=as_olaf)
    assert page not in [item.name for item in top.items]


def test_a_member_of_a_large_community_reads_its_item_with_a_bounded_number_of_profiles_calls(platform):
    """Reading a COMMUNITY item asks the profiles service one question (is this person a member),
    not for the community's whole member list: the calls do not grow with the community."""
    posts = platform.stub(pg.PostServiceStub, "posts")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    profiles = platform.stub(ppg.ProfileServiceStub, "profiles")
    service = platform.metadata()
    guild = open_guild(platform, "Large guild")
    (_, as_ana), (_, as_mia), (_, as_olaf), community = guild["ana"], guild["mia"], guild["olaf"], guild["community"]
    crowd = [unique("crowd") for _ in range(450)]  # five pages of the member list
    profiles.BatchCreateProfiles(pp.BatchCreateProfilesRequest(requests=[pp.CreateProfileRequest(profile=pp.Profile(employee_id=p, display_name="Crowd")) for p in crowd]), metadata=service)
    for member in crowd:
        communities.JoinCommunity(cp.JoinCommunityRequest(name=community, member=f"profiles/{member}"), metadata=service)
    post = publish(posts, as_ana, blog(posts, as_ana).name, "large guild plans", visibility=V.COMMUNITY, community=community)

    time.sleep(DEFAULT_CACHE_SECONDS + 0.5)  # whatever publishing cached has lapsed
    port = platform.settings.metrics_port("profiles")
    before = scrape(port)
    for _ in range(3):
        assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_mia).title == "large guild plans"
    assert rpc_error(posts.GetPost, pb.GetPostRequest(name=post.name), metadata=as_olaf).code() == grpc.StatusCode.NOT_FOUND
    after = scrape(port)
    calls = {name: after[name] - before.get(name, 0.0) for name in after if name.startswith("wc_grpc_requests_total{") and 'service="profiles"' in name}
    # One question for the member (then cached), one for the non-member.
    assert sum(calls.values()) <= 2, {name: n for name, n in calls.items() if n}

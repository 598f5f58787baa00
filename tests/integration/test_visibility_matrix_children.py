"""A comment follows its target's *current* audience on every read path.

A comment written on a PUBLIC post while everyone could read it is gone for strangers,
alumni and guests once the post is made PRIVATE or hidden by flags (GetComment, ListComments,
Search, GetStats(comments), GetPostStats and the HTTP /api/v1/search), and back once the
post is PUBLIC or restored again; a rebuild of the comments index keeps that. A comment on
a RESTRICTED wiki page is read by the space's members, not only by its writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import rpc_error
from tests.integration.test_blogs_directory import publish
from tests.integration.test_posts_lifecycle import blog, person, unique
from tests.integration.test_visibility_matrix import covers
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
V = pb.Audience


class Reads:
    """Every read path of one comment, as one caller sees it."""

    def __init__(self, platform, target: str, comment: str, word: str):
        self.platform = platform
        self.posts = platform.stub(pg.PostServiceStub, "posts")
        self.search = platform.stub(sg.SearchServiceStub, "search")
        self.target, self.comment, self.word = target, comment, word

    def get_comment(self, md) -> bool:
        try:
            return self.posts.GetComment(pb.GetCommentRequest(name=self.comment), metadata=md).name == self.comment
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
            return False

    def listed(self, md) -> bool:
        response = self.search.ListComments(sp.ListCommentsRequest(target=self.target), metadata=md)
        names = [c.name for c in response.comments]
        assert response.total_size == len(names)
        return self.comment in names

    def searched(self, md) -> bool:
        hits = self.search.Search(sp.SearchRequest(query=self.word, kinds=["comment"]), metadata=md).hits
        return self.comment in {h.name for h in hits}

    def counted(self, md) -> int:
        return int(self.search.GetStats(sp.GetStatsRequest(metric="comments", target=self.target), metadata=md).total)

    def post_stats(self, md) -> int | None:
        """The post's comment count, None when GetPostStats answers NOT_FOUND."""
        try:
            return self.search.GetPostStats(sp.GetPostStatsRequest(post=self.target), metadata=md).comment_count
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
            return None

    def http_searched(self, md) -> bool:
        token = dict(md)["authorization"].split()[-1]
        query = urllib.parse.urlencode({"query": self.word, "kinds": "comment"})
        request = urllib.request.Request(f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}/api/v1/search?{query}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return self.comment in {h["name"] for h in json.load(response).get("hits", [])}

    def everywhere(self, md, post: bool = True) -> dict[str, object]:
        """What each path shows: True/1 where the comment is seen."""
        seen: dict[str, object] = {"GetComment": self.get_comment(md), "ListComments": self.listed(md), "Search": self.searched(md),
                                   "GetStats": self.counted(md), "/api/v1/search": self.http_searched(md)}
        if post:
            seen["GetPostStats"] = self.post_stats(md)
        return seen


SEEN = {"GetComment": True, "ListComments": True, "Search": True, "GetStats": 1, "/api/v1/search": True, "GetPostStats": 1}
GONE = {"GetComment": False, "ListComments": False, "Search": False, "GetStats": 0, "/api/v1/search": False, "GetPostStats": None}


def expect(reads: Reads, readers: dict[str, object], wanted: dict[str, object], message: str, post: bool = True) -> None:
    def check():
        for who, md in readers.items():
            seen = reads.everywhere(md, post)
            want = {k: v for k, v in wanted.items() if post or k != "GetPostStats"}
            assert seen == want, f"{who}: {seen}"
        return True

    eventually(check, timeout=90, message=message)


def reindex_comments() -> None:
    env = {**os.environ, "COLUMNS": "200", "WC_LOG_FORMAT": "text"}
    result = subprocess.run([sys.executable, "-m", "tools.cli", "reindex", "comments"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def set_visibility(posts, md, name: str, visibility) -> None:
    current = posts.GetPost(pb.GetPostRequest(name=name), metadata=md)
    posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=name, visibility=visibility, etag=current.etag), update_mask={"paths": ["visibility"]}), metadata=md)


def commented_public_post(platform, label: str):
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, as_ana = person(platform, f"Ana {label}")
    _, as_bob = person(platform, f"Bob {label}")
    word = unique("childword")
    b = blog(posts, as_ana, visibility=V.PUBLIC)
    post = publish(posts, as_ana, b.name, f"{label} {word}", visibility=V.PUBLIC)
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body=f"a remark on {word}")), metadata=as_bob)
    readers = {
        "stranger": platform.metadata(person(platform, f"Stranger {label}")[0], "employee"),
        "alumni": platform.metadata(unique("al"), "alumni"),
        "guest": platform.metadata(unique("g"), "guest"),
    }
    return posts, as_ana, as_bob, post, Reads(platform, post.name, comment.name, word), readers


@covers("GetComment", "ListComments", "GetPostStats", "Search", "GetStats", "GET /api/v1/search", kind="parent_changed")
def test_comments_follow_their_post_made_private_and_public_again_also_after_a_rebuild(platform):
    posts, as_ana, as_bob, post, reads, readers = commented_public_post(platform, "Private")
    expect(reads, {**readers, "author": as_ana, "writer": as_bob}, SEEN, "the comment on the PUBLIC post is read by everyone")

    set_visibility(posts, as_ana, post.name, V.PRIVATE)
    expect(reads, readers, GONE, "gone for strangers, alumni and guests once the post is PRIVATE")
    # The comment is the post's audience's, its writer's included; the posts service decides at once.
    for who, md in {**readers, "writer": as_bob}.items():
        assert rpc_error(posts.GetComment, pb.GetCommentRequest(name=reads.comment), metadata=md).code() == grpc.StatusCode.NOT_FOUND, who
    assert posts.GetComment(pb.GetCommentRequest(name=reads.comment), metadata=as_ana).name == reads.comment
    expect(reads, {"author": as_ana}, SEEN, "the post's author still reads it")

    set_visibility(posts, as_ana, post.name, V.PUBLIC)
    expect(reads, readers, SEEN, "back once the post is PUBLIC again")

    set_visibility(posts, as_ana, post.name, V.PRIVATE)
    expect(reads, readers, GONE, "gone again")
    reindex_comments()
    expect(reads, readers, GONE, "a rebuild keeps it gone")
    expect(reads, {"author": as_ana}, SEEN, "and the author's")


@covers("GetComment", "ListComments", "GetPostStats", "Search", "GetStats", "GET /api/v1/search", kind="parent_changed")
@covers("ListComments", "GetComment", kind="hidden_by_flags")
def test_comments_of_a_post_hidden_by_flags_are_hidden_until_it_is_restored(platform):
    posts, as_ana, _, post, reads, readers = commented_public_post(platform, "Flagged")
    expect(reads, readers, SEEN, "the comment is read by everyone")
    flaggers = [person(platform, f"Flagger {i}")[1] for i in range(3)]
    for md in flaggers:
        posts.FlagItem(pb.FlagItemRequest(name=post.name, reason="off topic"), metadata=md)
    assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_ana).hidden
    expect(reads, readers, GONE, "the hidden post's comment is gone for everyone else")
    assert posts.GetComment(pb.GetCommentRequest(name=reads.comment), metadata=as_ana).name == reads.comment  # the post's author

    for md in [person(platform, f"Restorer {i}")[1] for i in range(3)]:
        posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=post.name), metadata=md)
    assert not posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_ana).hidden
    expect(reads, readers, SEEN, "back once the post is restored")


def test_a_comment_on_a_restricted_page_is_read_by_the_space_members(platform):
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    posts = platform.stub(pg.PostServiceStub, "posts")
    owner, writer, member = unique("o"), unique("w"), unique("m")
    md_owner, md_writer, md_member = (platform.author(p) for p in (owner, writer, member))
    space_id = unique("sp-")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=space_id, display_name=f"Space {space_id}", visibility=wp.RESTRICTED, members=[writer, member])), metadata=md_owner)
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Plans", body="x")), metadata=md_owner)
    word = unique("pageword")
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=page.name, body=f"about {word}")), metadata=md_writer)
    reads = Reads(platform, page.name, comment.name, word)
    members = {"writer": md_writer, "other member": md_member, "owner": md_owner}
    outsiders = {"stranger": platform.metadata(unique("x"), "employee"), "alumni": platform.metadata(unique("al"), "alumni"),
                 "guest": platform.metadata(unique("g"), "guest")}
    expect(reads, members, SEEN, "every member of the space reads the comment", post=False)
    expect(reads, outsiders, GONE, "nobody outside it does", post=False)


def test_a_comment_on_a_media_item_follows_the_item_made_restricted(platform):
    from watercooler.posts.v1 import media_pb2 as mp
    from watercooler.posts.v1 import media_pb2_grpc as mg

    media = platform.stub(mg.MediaServiceStub, "posts")
    posts = platform.stub(pg.PostServiceStub, "posts")
    owner, writer = unique("o"), unique("w")
    md_owner, md_writer = platform.author(owner), platform.author(writer)
    item = media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
        title="Clip", kind=mp.MediaItem.VIDEO, size_bytes=5, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri="s3://b/c")), metadata=md_owner)
    word = unique("mediaword")
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=item.name, body=f"about {word}")), metadata=md_writer)
    reads = Reads(platform, item.name, comment.name, word)
    stranger = {"stranger": platform.metadata(unique("x"), "employee")}
    expect(reads, {"writer": md_writer, **stranger}, SEEN, "the INTERNAL item's comment is read by employees", post=False)
    media.UpdateMediaItem(mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=item.name, visibility=wp.RESTRICTED, etag=item.etag),
                                                    update_mask={"paths": ["visibility"]}), metadata=md_owner)
    expect(reads, {"writer": md_writer, **stranger}, GONE, "the RESTRICTED item's comment is its owner's", post=False)
    expect(reads, {"owner": md_owner}, SEEN, "the owner still reads it", post=False)


def test_a_comment_on_a_page_of_a_community_space_is_read_by_the_community_members(platform):
    from tests.integration.test_community_access import open_guild

    wiki = platform.stub(wg.WikiServiceStub, "posts")
    posts = platform.stub(pg.PostServiceStub, "posts")
    guild = open_guild(platform, "Wiki guild")
    (_, as_ana), (_, as_mia), (_, as_olaf) = guild["ana"], guild["mia"], guild["olaf"]
    space_id = unique("sp-")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=space_id, display_name=f"Space {space_id}", visibility=wp.RESTRICTED,
                                                                  owner=guild["community"])), metadata=as_ana)
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Guild plans", body="x")), metadata=as_ana)
    word = unique("guildword")
    comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=page.name, body=f"about {word}")), metadata=as_mia)
    reads = Reads(platform, page.name, comment.name, word)
    expect(reads, {"writer": as_mia, "other member": as_ana}, SEEN, "the community's members read each other's comments", post=False)
    expect(reads, {"outsider": as_olaf}, GONE, "a non-member does not", post=False)


def test_post_stats_of_a_community_post_are_not_found_for_outsiders_as_the_post_is(platform):
    from watercooler.profiles.v1 import communities_pb2 as cp
    from watercooler.profiles.v1 import communities_pb2_grpc as cg

    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    (_, as_ana), (rater, as_rater), (_, as_outsider) = (person(platform, f"{who} Board") for who in ("Ana", "Rita", "Olaf"))
    board = f"communities/{unique('board-')}"
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=board.split("/")[1], display_name="Board", access=cp.Community.INVITE_ONLY)), metadata=as_ana)
    communities.InviteMember(cp.InviteMemberRequest(name=board, member=f"profiles/{rater}"), metadata=as_ana)
    communities.JoinCommunity(cp.JoinCommunityRequest(name=board), metadata=as_rater)
    post = publish(posts, as_ana, blog(posts, as_ana).name, "board minutes", visibility=V.COMMUNITY, community=board)
    posts.RatePost(pb.RatePostRequest(post=post.name, value=5), metadata=as_rater)

    def rated():
        try:
            stats = search.GetPostStats(sp.GetPostStatsRequest(post=post.name), metadata=as_rater)
        except grpc.RpcError as error:  # NOT_FOUND until the post is projected
            raise AssertionError(error.details()) from None
        assert (stats.rating_count, stats.rating_average) == (1, 5.0)
        return True

    eventually(rated, message="the member sees the rating")
    assert rpc_error(posts.GetPost, pb.GetPostRequest(name=post.name), metadata=as_outsider).code() == grpc.StatusCode.NOT_FOUND
    for md in (as_outsider, platform.metadata(unique("al"), "alumni"), platform.metadata(unique("g"), "guest")):
        assert rpc_error(search.GetPostStats, sp.GetPostStatsRequest(post=post.name), metadata=md).code() == grpc.StatusCode.NOT_FOUND


def reindex_wiki() -> None:
    env = {**os.environ, "COLUMNS": "200", "WC_LOG_FORMAT": "text"}
    result = subprocess.run([sys.executable, "-m", "tools.cli", "reindex", "wiki"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


@covers("Search", "Suggest", "GET /api/v1/search", "GetComment", "ListComments", "GetStats", kind="parent_changed")
def test_a_wiki_page_and_its_comment_follow_the_space_made_restricted_given_a_member_and_internal_again_also_after_rebuilds(platform):
    """Each page document, and each comment on a page, carries the space's audience (Search no
    longer lists the caller's spaces first): a change of the space reaches them on every read
    path, and a rebuild of either index keeps it."""
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    owner, member = unique("o"), unique("m")
    md_owner, md_member = platform.author(owner), platform.author(member)
    space_id = unique("sp-")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=space_id, display_name=f"Space {space_id}", visibility=wp.INTERNAL)), metadata=md_owner)
    word = unique("spaceword")
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"{word} handbook", body=f"all about {word}")), metadata=md_owner).name
    comment_word = unique("pagecomment")
    comment = platform.stub(pg.PostServiceStub, "posts").CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=page, body=f"about {comment_word}")), metadata=md_owner)
    reads = Reads(platform, page, comment.name, comment_word)
    stranger, alumni, guest = platform.metadata(unique("x"), "employee"), platform.metadata(unique("al"), "alumni"), platform.metadata(unique("g"), "guest")

    def paths(md) -> dict[str, bool]:
        token = dict(md)["authorization"].split()[-1]
        query = urllib.parse.urlencode({"query": word, "kinds": "wiki_page"})
        request = urllib.request.Request(f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}/api/v1/search?{query}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            http = page in {h["name"] for h in json.load(response).get("hits", [])}
        return {"Search": page in {h.name for h in search.Search(sp.SearchRequest(query=word, kinds=["wiki_page"]), metadata=md).hits},
                "Suggest": page in {s.name for s in search.Suggest(sp.SuggestRequest(prefix=word, kinds=["titles"]), metadata=md).suggestions},
                "/api/v1/search": http}

    def expect_seen(readers: dict[str, object], seen: bool, message: str) -> None:
        def check():
            for who, md in readers.items():
                assert paths(md) == dict.fromkeys(("Search", "Suggest", "/api/v1/search"), seen), who
                assert reads.everywhere(md, post=False) == {k: v for k, v in (SEEN if seen else GONE).items() if k != "GetPostStats"}, f"the comment, {who}"
            return True
        eventually(check, timeout=90, message=message)

    def update(**fields) -> None:
        current = wiki.GetSpace(wp.GetSpaceRequest(name=space.name), metadata=md_owner)
        wiki.UpdateSpace(wp.UpdateSpaceRequest(space=wp.Space(name=space.name, etag=current.etag, **fields), update_mask={"paths": list(fields)}), metadata=md_owner)

    employees = {"owner": md_owner, "member": md_member, "stranger": stranger}
    expect_seen(employees, True, "an INTERNAL space's page is found by every employee")
    expect_seen({"alumni": alumni, "guest": guest}, False, "and by no alumni or guest")
    update(visibility=wp.RESTRICTED)
    expect_seen({"owner": md_owner}, True, "the RESTRICTED space's page is its owner's")
    expect_seen({"member": md_member, "stranger": stranger, "alumni": alumni, "guest": guest}, False, "and nobody else's")
    update(members=[member])
    expect_seen({"owner": md_owner, "member": md_member}, True, "a member added finds it")
    expect_seen({"stranger": stranger}, False, "a stranger still does not")
    reindex_wiki()
    reindex_comments()
    expect_seen({"owner": md_owner, "member": md_member}, True, "a rebuild keeps the members'")
    expect_seen({"stranger": stranger, "alumni": alumni, "guest": guest}, False, "and the others out")
    update(visibility=wp.INTERNAL)
    expect_seen(employees, True, "INTERNAL again: every employee")

"""The visibility matrix: every read (every Get/List/Search/... RPC in protos/ and every read
route of the search HTTP view) × visibility levels (PUBLIC, INTERNAL, COMMUNITY, PRIVATE,
hidden by flags, draft; restricted wiki space and media; jams of one guest or another;
comments whose parent changed after they were written: made PRIVATE, hidden by flags) ×
every principal kind (employee member, employee non-member, alumni, guest of the jam,
guest of another jam, service). Nothing may leak anywhere, not even as a count.

How a case declares what it covers (tests/unit/test_read_gate.py reads this, without
running anything, and fails when a read has no case):

    @covers("GetPost", "GET /api/v1/search", kind="hidden_by_flags")
    def test_...(world, who): ...

- the positional arguments name the reads the test asserts on, as string literals: RPC
  names as in protos/ (``GetPost``), HTTP routes as registered in services/search/http.py
  (``GET /api/v1/jams/{jam}/pulse``);
- ``kind`` says which situation the case sets up, one of:
  ``levels``           items at the visibility levels, read by every principal kind;
  ``parent_changed``   a child item (comment, rating, like, reply) written while its parent
                       was visible, then the parent's visibility changed (e.g. PUBLIC ->
                       PRIVATE): the child follows its parent's current visibility;
  ``hidden_by_flags``  an item hidden by flags: absent / NOT_FOUND for everyone but its
                       author (and counted nowhere) until restored;
- a test may carry several ``@covers`` (one per kind); it must be a ``test_`` function
  that runs (no placeholders). The gate requires a case for every read, a
  ``parent_changed`` case for each read in CHILD_ITEM_READS and a ``hidden_by_flags`` case
  for each read in FLAGGABLE_READS (both listed in tests/unit/test_read_gate.py)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, far_word, unique, word
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


def covers(*reads: str, kind: str):
    """Declares the reads a case asserts on and the kind of case (see the module docstring)."""
    assert kind in ("levels", "parent_changed", "hidden_by_flags"), kind

    def mark(test):
        return test

    return mark


V = pb.Audience
PRINCIPALS = ("member", "non_member", "alumni", "guest_j1", "guest_j2", "service")
# item -> the principals who may see it
SEES = {
    "public": set(PRINCIPALS),
    "internal": {"member", "non_member", "service"},
    "community": {"member", "service"},
    "private": {"service"},  # the author is none of the principals; services see all but hidden
    "hidden": set(),
    "draft": set(),
    "micro_community": {"member", "service"},
    "restricted_page": {"member", "service"},
    # INTERNAL jams: employees, their invited guests, services; not alumni.
    "idea_j1": {"member", "non_member", "guest_j1", "service"},
    "idea_j2": {"member", "non_member", "guest_j2", "service"},
    # Comments written on PUBLIC posts, whose post then changed: a child follows its parent now.
    "comment_made_private": {"service"},
    "comment_parent_hidden": set(),
}


@pytest.fixture(scope="module")
def world(platform):
    s = Stubs(platform)
    common = far_word()
    author, as_author = s.person("Author Person")
    member, as_member = s.person("Member Person")
    community = unique("c")
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Inner circle", access=cp.Community.OPEN)), metadata=as_author)
    s.communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{community}"), metadata=as_member)
    eventually(lambda: platform.es.search(index=platform.alias("communities"), query={"term": {"members": member}})["hits"]["total"]["value"] == 1, message="membership")
    blog = s.blog(as_author, visibility=V.PUBLIC)
    words = {item: far_word() for item in SEES}  # each asked for below where it must find nothing
    names: dict[str, str] = {}
    levels = {"public": V.PUBLIC, "internal": V.INTERNAL, "community": V.COMMUNITY, "private": V.PRIVATE, "hidden": V.INTERNAL, "draft": V.INTERNAL}
    for item, level in levels.items():
        names[item] = s.post(as_author, blog, f"{words[item]} {common}", f"about {common}", tags=[common, words[item]], visibility=level,
                             community=f"communities/{community}" if level == V.COMMUNITY else "", publish=item != "draft")
    names["micro_community"] = s.micro(as_author, f"#{words['micro_community']} {common}", visibility=V.COMMUNITY, community=f"communities/{community}")
    for n in range(3):  # three distinct flags hide an item (WC_FLAG_THRESHOLD)
        _, flagger = s.person(f"Flagger {n}")
        s.posts.FlagItem(pb.FlagItemRequest(name=names["hidden"], reason="off topic"), metadata=flagger)
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Secret", visibility=wp.RESTRICTED, members=[member])), metadata=as_author).name
    names["restricted_page"] = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"{words['restricted_page']} {common}", body=common)), metadata=as_author).name
    jam_ids = {}
    for item in ("idea_j1", "idea_j2"):
        jam_id = jam_ids[item] = unique("j")
        s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=as_author)
        names[item] = s.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=f"{words[item]} {common}", description=common)), metadata=as_author).name
    # The parents of the comment items: in a blog of their own, without the common word, so
    # that only the comments count in the searches and stats below.
    parents_blog = s.blog(as_author, visibility=V.PUBLIC)
    parents = {}
    for item in ("comment_made_private", "comment_parent_hidden"):
        parents[item] = s.post(as_author, parents_blog, word(8), "a parent", visibility=V.PUBLIC)
        comment = pb.Comment(target=parents[item], body=f"{words[item]} {common}")
        names[item] = s.posts.CreateComment(pb.CreateCommentRequest(comment=comment), metadata=as_author).name
    comment_names = [names["comment_made_private"], names["comment_parent_hidden"]]
    eventually(lambda: platform.es.count(index=platform.alias("comments"), query={"terms": {"name": comment_names}})["count"] == 2, message="comments indexed")
    current = s.posts.GetPost(pb.GetPostRequest(name=parents["comment_made_private"]), metadata=as_author)
    s.posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=current.name, visibility=V.PRIVATE, etag=current.etag), update_mask={"paths": ["visibility"]}), metadata=as_author)
    for n in range(3):
        _, flagger = s.person(f"Parent flagger {n}")
        s.posts.FlagItem(pb.FlagItemRequest(name=parents["comment_parent_hidden"], reason="off topic"), metadata=flagger)
    principals = {
        "member": as_member,
        "non_member": s.person("Other Person")[1],
        "alumni": platform.metadata(unique("a"), "alumni"),
        "guest_j1": platform.metadata(unique("g"), "guest", jams=(jam_ids["idea_j1"],)),
        "guest_j2": platform.metadata(unique("g"), "guest", jams=(jam_ids["idea_j2"],)),
        "service": platform.metadata(),
    }
    # Wait until every item and the space that restricts its page are indexed, and the hidden post hidden.
    raw = platform.es

    def indexed():
        posts = raw.search(index=platform.alias("posts"), query={"term": {"tags": common}}, size=50)["hits"]["hits"]
        assert len(posts) == 6 and any(h["_source"]["hidden"] for h in posts)
        assert raw.count(index=platform.alias("jam-ideas"), query={"match": {"description": common}})["count"] == 2
        assert raw.count(index=platform.alias("wiki"), query={"match": {"body": common}})["count"] == 1
        # The space is another aggregate, so its document may land after its page's.
        space_doc = {"bool": {"filter": [{"term": {"kind": "space"}}, {"term": {"members": member}}]}}
        assert raw.count(index=platform.alias("wiki"), query=space_doc)["count"] == 1
        assert raw.count(index=platform.alias("posts"), query={"term": {"name": names["micro_community"]}})["count"] == 1
        # The comments have followed their parents' change.
        followed = {"bool": {"filter": [{"terms": {"name": comment_names}}], "should": [{"term": {"visibility": "PRIVATE"}}, {"term": {"target_hidden": True}}], "minimum_should_match": 1}}
        assert raw.count(index=platform.alias("comments"), query=followed)["count"] == 2
        return True

    eventually(indexed, timeout=90, message="matrix items indexed")
    return dict(s=s, common=common, words=words, names=names, principals=principals, blog=blog,
                as_author=as_author, author=author, member=member, community=f"communities/{community}", space=space, jam_ids=jam_ids)


@covers("Search", kind="levels")
@covers("Search", kind="hidden_by_flags")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_search_hits_snippets_and_facets_show_only_what_the_caller_may_see(world, who):
    s, md = world["s"], world["principals"][who]
    expected = {world["names"][item] for item, seers in SEES.items() if who in seers}
    found = s.find(md, query=world["common"], page_size=100, read_mask=FieldMask(paths=["*"]))  # facets included
    assert {h.name for h in found.hits} == expected
    assert found.total_size == len(expected)
    invisible_words = {world["words"][item] for item, seers in SEES.items() if who not in seers}
    for hit in found.hits:
        assert not any(w in hit.snippet or w in hit.title for w in invisible_words)
    facets = {f.field: {v.value: v.count for v in f.values} for f in found.facets}
    assert sum(facets["kind"].values()) == len(expected)
    tags = facets["tags"]
    assert not (set(tags) & invisible_words), tags
    posts_with_tag = [item for item in ("public", "internal", "community", "private", "hidden", "draft", "micro_community") if who in SEES[item]]
    assert tags.get(world["common"], 0) == len([i for i in posts_with_tag if i != "micro_community"])
    # Asking for each invisible item by its own word finds nothing either.
    for item, seers in SEES.items():
        if who not in seers:
            assert not s.find(md, query=world["words"][item]).hits, item


@covers("Suggest", "Trending", "GetStats", kind="levels")
@covers("Suggest", "Trending", "GetStats", kind="hidden_by_flags")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_suggest_trending_and_stats_count_only_what_the_caller_may_see(world, who):
    s, md, words = world["s"], world["principals"][who], world["words"]
    for item, seers in SEES.items():
        got = s.search.Suggest(sp.SuggestRequest(prefix=words[item][:6], page_size=20), metadata=md).suggestions
        texts = " ".join(g.text for g in got)
        if who in seers and item in ("public", "internal", "community", "private", "restricted_page", "idea_j1", "idea_j2"):
            assert words[item] in texts, (item, texts)  # titles (and tags) of visible items are suggested
        if who not in seers:
            assert words[item] not in texts, (item, texts)
    trending = {(i.kind, i.value): i.last_day for i in s.search.Trending(sp.TrendingRequest(page_size=50), metadata=md).items}
    for item in ("public", "internal", "community", "private", "hidden", "draft"):
        assert (("tag", words[item]) in trending) == (who in SEES[item]), (item, trending)
    assert (("tag", words["micro_community"]) in trending) == (who in SEES["micro_community"])  # a #hashtag is a tag
    visible_posts = sum(1 for i in ("public", "internal", "community", "private", "hidden", "draft") if who in SEES[i])
    assert trending.get(("tag", world["common"]), 0) == visible_posts
    posts = s.search.GetStats(sp.GetStatsRequest(metric="posts", blog=world["blog"]), metadata=md)
    assert posts.total == sum(1 for i in ("public", "internal", "community", "private", "hidden", "draft") if who in SEES[i])
    assert sum(p.value for p in posts.series) == posts.total


# --- every other read: the same principals, more items -------------------------------------------
# item -> the principals who may see it (the items of SEES keep their meaning).
EVERYONE, EMPLOYEES = set(PRINCIPALS), {"member", "non_member", "service"}
LEVELS = {"public": EVERYONE, "internal": EMPLOYEES, "community": {"member", "service"}, "private": {"service"}}
MORE_SEES = {
    **{f"comment_{level}": seers for level, seers in LEVELS.items()},  # a comment's audience is its post's
    **{f"bookmark_{level}": seers for level, seers in LEVELS.items()},
    **{f"status_{level}": LEVELS[level] for level in ("public", "internal", "community")},
    "blog_public": EVERYONE, "blog_internal": EMPLOYEES, "blog_community": {"member", "service"},
    "media_public": EVERYONE, "media_internal": EMPLOYEES, "media_restricted": {"service"},  # RESTRICTED media: its owner only
    "page_internal": EMPLOYEES, "page_restricted": SEES["restricted_page"],
    "jam_j1": SEES["idea_j1"], "jam_j2": SEES["idea_j2"],
    "profile": EVERYONE,
}
GUESTS = {"guest_j1", "guest_j2"}
SHOWN, HIDDEN, REFUSED = "shown", "hidden", "refused"


def seen(call, request, md, exists=(grpc.StatusCode.OK,)) -> str:
    """A read by name: shown (it answers), hidden (NOT_FOUND), refused (PERMISSION_DENIED)."""
    try:
        call(request, metadata=md, timeout=30)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    if code in exists:
        return SHOWN
    if code == grpc.StatusCode.NOT_FOUND:
        return HIDDEN
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return REFUSED
    raise AssertionError(f"{call._method if hasattr(call, '_method') else call}: {code.name}")


def listing(call, request, md, names) -> set[str] | str:
    """A list read: the names it shows, or REFUSED / HIDDEN when the whole call is refused."""
    try:
        return names(call(request, metadata=md, timeout=30))
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return HIDDEN
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:
            return REFUSED
        raise


def expect(who: str, item: str, refused: set[str] = frozenset()) -> str:
    if who in refused:
        return REFUSED
    return SHOWN if who in {**SEES, **MORE_SEES}[item] else HIDDEN


def check(outcomes: dict[tuple[str, str], tuple[str, str]]) -> None:
    wrong = [f"  {rpc} {item}: expected {want}, got {got}" for (rpc, item), (want, got) in sorted(outcomes.items()) if want != got]
    assert not wrong, "\n" + "\n".join(wrong)


@pytest.fixture(scope="module")
def more(world, platform):
    s, as_author, common = world["s"], world["as_author"], world["common"]
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    tag = word(8)  # the shared tag of this fixture's items (not ``common``: the tests above count that)
    names: dict[str, str] = {}
    for level in LEVELS:
        names[f"comment_{level}"] = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=world["names"][level], body=f"{word(8)} remark")),
                                                          metadata=as_author).name
        community = world["community"] if level == "community" else ""
        names[f"bookmark_{level}"] = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(
            url=f"https://example.com/{unique('l')}", title=word(8), tags=[tag], visibility=getattr(V, level.upper()), community=community)), metadata=as_author).name
    for level in ("public", "internal", "community"):
        community = world["community"] if level == "community" else ""
        names[f"status_{level}"] = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{world['author']}", status_update=gp.StatusUpdate(
            text=f"{word(8)} news", visibility=getattr(gp.StatusUpdate, level.upper()), community=community)), metadata=as_author).name
    names["blog_public"] = world["blog"]
    names["blog_internal"] = s.blog(as_author, visibility=V.INTERNAL)
    names["blog_community"] = s.blog(as_author, visibility=V.COMMUNITY, community=world["community"])
    for level in ("public", "internal", "restricted"):
        item = mp.MediaItem(title=f"{word(8)} clip", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", visibility=getattr(wp, level.upper()), storage_uri="s3://b/x")
        names[f"media_{level}"] = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=as_author).name
    internal_space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Open plan", visibility=wp.INTERNAL)), metadata=as_author).name
    names["page_internal"] = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=internal_space, title=f"{word(8)} notes", body="v1")), metadata=as_author).name
    names["page_restricted"] = world["names"]["restricted_page"]
    spaces = {"page_internal": internal_space, "page_restricted": world["space"]}
    titles = {}
    for page in ("page_internal", "page_restricted"):
        edited = s.wiki.EditPage(wp.EditPageRequest(name=names[page], body="v2 links nowhere", base_revision=1), metadata=as_author)
        titles[page] = edited.title
        s.wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=names[page], viewer=world["member"])), metadata=platform.metadata())
    names["jam_j1"], names["jam_j2"] = (f"jams/{world['jam_ids'][j]}" for j in ("idea_j1", "idea_j2"))
    names["profile"] = f"profiles/{world['author']}"
    # Two followers of the author, each with a feed of the author's status updates.
    follower = {"member": world["member"]}
    follower["non_member"], follower_md = s.person(f"Follower {tag}")
    for person in follower.values():
        graph.Follow(gp.FollowRequest(parent=f"profiles/{person}", target=names["profile"]), metadata=platform.metadata())
    service = platform.metadata()

    def ready():
        assert len(s.search.SearchBookmarks(sp.SearchBookmarksRequest(tag=tag, page_size=50), metadata=service).bookmarks) == 4
        assert {c.name for lv in LEVELS for c in s.search.ListComments(sp.ListCommentsRequest(target=world["names"][lv]), metadata=service).comments} >= {names[f"comment_{lv}"] for lv in LEVELS}
        assert len(s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=names["profile"], page_size=50), metadata=service).status_updates) == 3
        assert len(s.search.ListMediaItems(sp.ListMediaItemsRequest(owner=names["profile"], page_size=50), metadata=service).media_items) == 3
        for page in ("page_internal", "page_restricted"):
            assert s.search.GetViewCounts(sp.GetViewCountsRequest(name=names[page]), metadata=service).total == 1
        for jam in ("jam_j1", "jam_j2"):
            s.search.GetJamPulse(sp.GetJamPulseRequest(jam=names[jam]), metadata=service)
        assert s.search.GetNetworkCounts(sp.GetNetworkCountsRequest(person=names["profile"]), metadata=service).followers == 2
        return True

    eventually(ready, timeout=90, message="more matrix items indexed")
    # The non-member of these cases is this follower (an employee outside the community, like the world's).
    principals = {**world["principals"], "non_member": follower_md}
    return dict(names=names, tag=tag, spaces=spaces, titles=titles, follower=follower, graph=graph, common=common, principals=principals)


@covers("GetPost", "ListPostRevisions", "GetMicropost", "GetComment", "GetBookmark", "GetBlog", "GetMediaItem",
        "GetSpace", "GetPage", "LookupPage", "ListRevisions", "GetRevision", "DiffRevisions", kind="levels")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_reads_by_name_answer_not_found_for_what_the_caller_may_not_see(world, more, who):
    s, md, names = world["s"], more["principals"][who], {**world["names"], **more["names"]}
    outcomes = {}
    for item in LEVELS:
        outcomes[("GetPost", item)] = (expect(who, item), seen(s.posts.GetPost, pb.GetPostRequest(name=names[item]), md))
        outcomes[("ListPostRevisions", item)] = (expect(who, item), seen(s.posts.ListPostRevisions, pb.ListPostRevisionsRequest(parent=names[item]), md))
        outcomes[("GetComment", f"comment_{item}")] = (expect(who, f"comment_{item}"), seen(s.posts.GetComment, pb.GetCommentRequest(name=names[f"comment_{item}"]), md))
        outcomes[("GetBookmark", f"bookmark_{item}")] = (expect(who, f"bookmark_{item}"), seen(s.posts.GetBookmark, pb.GetBookmarkRequest(name=names[f"bookmark_{item}"]), md))
    outcomes[("GetMicropost", "micro_community")] = (expect(who, "micro_community"), seen(s.posts.GetMicropost, pb.GetMicropostRequest(name=names["micro_community"]), md))
    for item in ("blog_public", "blog_internal", "blog_community"):
        outcomes[("GetBlog", item)] = (expect(who, item), seen(s.posts.GetBlog, pb.GetBlogRequest(name=names[item]), md))
    for item in ("media_public", "media_internal", "media_restricted"):
        outcomes[("GetMediaItem", item)] = (expect(who, item), seen(s.media.GetMediaItem, mp.GetMediaItemRequest(name=names[item]), md))
    for item in ("page_internal", "page_restricted"):
        page, space = names[item], more["spaces"][item]
        reads = {
            "GetSpace": (s.wiki.GetSpace, wp.GetSpaceRequest(name=space)),
            "GetPage": (s.wiki.GetPage, wp.GetPageRequest(name=page)),
            "LookupPage": (s.wiki.LookupPage, wp.LookupPageRequest(space=space, title=more["titles"][item])),
            "ListRevisions": (s.wiki.ListRevisions, wp.ListRevisionsRequest(name=page)),
            "GetRevision": (s.wiki.GetRevision, wp.GetRevisionRequest(name=page, revision=1)),
            "DiffRevisions": (s.wiki.DiffRevisions, wp.DiffRevisionsRequest(name=page, from_revision=1, to_revision=2)),
        }
        for rpc, (call, request) in reads.items():
            outcomes[(rpc, item)] = (expect(who, item), seen(call, request, md))
    check(outcomes)


@covers("GetJam", "GetIdea", "ListJams", "GetBallot", "GetJamResults", "ExportJamResults", "GetJamLeaderboard", "GetJamPulse", "ExportJamStats",
        "SearchJamIdeas", "ListJamDiscussion", kind="levels")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_jam_reads_answer_only_those_the_jam_admits(world, more, who):
    s, md, names = world["s"], more["principals"][who], more["names"]
    listed_jams = set()
    token = ""
    while True:
        page = s.jams.ListJams(jp.ListJamsRequest(page_size=100, page_token=token), metadata=md)
        listed_jams |= {j.name for j in page.jams}
        token = page.next_page_token
        if not token:
            break
    outcomes = {}
    for item, idea in (("jam_j1", "idea_j1"), ("jam_j2", "idea_j2")):
        jam = names[item]
        unpublished = (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION)  # results before the jam closed: it exists, has none yet
        reads = {
            "GetJam": (s.jams.GetJam, jp.GetJamRequest(name=jam), (grpc.StatusCode.OK,)),
            "GetIdea": (s.jams.GetIdea, jp.GetIdeaRequest(name=world["names"][idea]), (grpc.StatusCode.OK,)),
            "GetBallot": (s.jams.GetBallot, jp.GetBallotRequest(name=f"{jam}/ballots/-"), (grpc.StatusCode.OK,)),
            "GetJamResults": (s.jams.GetJamResults, jp.GetJamResultsRequest(name=jam), unpublished),
            "ExportJamResults": (s.jams.ExportJamResults, jp.ExportJamResultsRequest(name=jam, format="json"), unpublished),
            "GetJamLeaderboard": (s.search.GetJamLeaderboard, sp.GetJamLeaderboardRequest(jam=jam), (grpc.StatusCode.OK,)),
            "GetJamPulse": (s.search.GetJamPulse, sp.GetJamPulseRequest(jam=jam), (grpc.StatusCode.OK,)),
            "ExportJamStats": (s.search.ExportJamStats, sp.ExportJamStatsRequest(jam=jam, format="json"), (grpc.StatusCode.OK,)),
        }
        for rpc, (call, request, exists) in reads.items():
            outcomes[(rpc, item)] = (expect(who, item), seen(call, request, md, exists))
        ideas = listing(s.search.SearchJamIdeas, sp.SearchJamIdeasRequest(jam=jam, page_size=50), md, lambda r: {i.idea for i in r.ideas})
        outcomes[("SearchJamIdeas", item)] = (expect(who, item), SHOWN if isinstance(ideas, set) and world["names"][idea] in ideas else HIDDEN)
        discussion = listing(s.search.ListJamDiscussion, sp.ListJamDiscussionRequest(jam=jam), md, lambda r: r)
        outcomes[("ListJamDiscussion", item)] = (expect(who, item), HIDDEN if isinstance(discussion, str) else SHOWN)
        outcomes[("ListJams", item)] = (expect(who, item), SHOWN if jam in listed_jams else HIDDEN)
    check(outcomes)


@covers("ListComments", "SearchPosts", "ListTimeline", "ListBlogDirectory", "SearchBookmarks", "ListPopularLinks", "ListStatusUpdates",
        "ListMediaItems", "GetPostStats", kind="levels")
@covers("SearchPosts", "GetPostStats", kind="hidden_by_flags")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_lists_and_counts_show_only_what_the_caller_may_see(world, more, who):
    s, md, names, tag = world["s"], more["principals"][who], {**world["names"], **more["names"]}, more["tag"]
    outcomes = {}

    def each(rpc: str, items, shown: set[str] | str) -> None:
        for item in items:
            got = shown if isinstance(shown, str) else SHOWN if names[item] in shown else HIDDEN
            outcomes[(rpc, item)] = (expect(who, item), HIDDEN if got == REFUSED else got)

    for level in LEVELS:
        each("ListComments", [f"comment_{level}"], listing(s.search.ListComments, sp.ListCommentsRequest(target=names[level], page_size=100), md, lambda r: {c.name for c in r.comments}))
    posts = ["public", "internal", "community", "private", "hidden", "draft"]
    each("SearchPosts", posts, listing(s.search.SearchPosts, sp.SearchPostsRequest(tag=world["common"], page_size=100), md, lambda r: {p.name for p in r.posts}))
    each("ListTimeline", ["micro_community"], listing(s.search.ListTimeline, sp.ListTimelineRequest(person=names["profile"], page_size=100), md, lambda r: {p.name for p in r.posts}))
    blogs: set[str] = set()
    token = ""
    while True:
        page = s.search.ListBlogDirectory(sp.ListBlogDirectoryRequest(page_size=100, page_token=token), metadata=md)
        blogs |= {b.blog for b in page.blogs}
        token = page.next_page_token
        if not token:
            break
    each("ListBlogDirectory", ["blog_public", "blog_internal", "blog_community"], blogs)
    bookmarks = [f"bookmark_{level}" for level in LEVELS]
    each("SearchBookmarks", bookmarks, listing(s.search.SearchBookmarks, sp.SearchBookmarksRequest(tag=tag, page_size=100), md, lambda r: {b.name for b in r.bookmarks}))
    urls = {s.posts.GetBookmark(pb.GetBookmarkRequest(name=names[b]), metadata=world["principals"]["service"]).url: b for b in bookmarks}
    links = listing(s.search.ListPopularLinks, sp.ListPopularLinksRequest(tag=tag), md, lambda r: {names[urls[link.url]] for link in r.links if link.url in urls})
    each("ListPopularLinks", bookmarks, links)
    each("ListStatusUpdates", [f"status_{lv}" for lv in ("public", "internal", "community")],
         listing(s.search.ListStatusUpdates, sp.ListStatusUpdatesRequest(person=names["profile"], page_size=100), md, lambda r: {u.name for u in r.status_updates}))
    each("ListMediaItems", ["media_public", "media_internal", "media_restricted"],
         listing(s.search.ListMediaItems, sp.ListMediaItemsRequest(owner=names["profile"], page_size=100), md, lambda r: {m.media_item for m in r.media_items}))
    # The world's blog holds the published posts of every level and the hidden one: its counts are of those the caller may see.
    stats = s.search.GetPostStats(sp.GetPostStatsRequest(blog=world["blog"]), metadata=md)
    visible_posts = sum(1 for item in ("public", "internal", "community", "private", "hidden") if who in SEES[item])
    outcomes[("GetPostStats", "posts")] = (str(visible_posts), str(sum(d.count for d in stats.posts_per_day)))
    for level in LEVELS:  # a post's comment count: its one comment, or nothing for a post the caller may not see
        counted = listing(s.search.GetPostStats, sp.GetPostStatsRequest(post=names[level]), md, lambda r, lv=level: {names[f"comment_{lv}"]} if r.comment_count == 1 else set())
        outcomes[("GetPostStats", f"comment_{level}")] = (expect(who, f"comment_{level}"), counted if isinstance(counted, str) else SHOWN if counted else HIDDEN)
    check(outcomes)


@covers("ListWikiBacklinks", "GetViewCounts", "ListTopViewed", kind="levels")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_wiki_library_reads_answer_only_for_pages_the_caller_may_see(world, more, who):
    s, md, names = world["s"], more["principals"][who], more["names"]
    outcomes = {}
    for item in ("page_internal", "page_restricted"):
        outcomes[("ListWikiBacklinks", item)] = (expect(who, item), seen(s.search.ListWikiBacklinks, sp.ListWikiBacklinksRequest(page=names[item]), md))
        outcomes[("GetViewCounts", item)] = (expect(who, item), seen(s.search.GetViewCounts, sp.GetViewCountsRequest(name=names[item]), md))
        top = listing(s.search.ListTopViewed, sp.ListTopViewedRequest(kind=sp.ListTopViewedRequest.PAGES, period=sp.ListTopViewedRequest.ALL_TIME,
                                                                       space=more["spaces"][item], page_size=50), md, lambda r: {i.name for i in r.items})
        outcomes[("ListTopViewed", item)] = (expect(who, item), SHOWN if isinstance(top, set) and names[item] in top else HIDDEN)
    check(outcomes)


@covers("GetProfile", "BatchGetProfiles", "GetManagementChain", "GetCommunity", "ListCommunityMembers", "GetMembership", "SearchPeople", "ListPeople", "FindExperts",
        "ListCommunities", "ListRelations", "GetNetworkCounts", "GetNetworkFeed", "ListPeopleYouMayKnow", kind="levels")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_people_and_the_graph_show_the_directory_to_employees_and_each_feed_to_its_owner(world, more, who):
    """Profiles and an OPEN community are every principal's to read by name; the directory
    (people, experts, communities, relations, counts) is the company's: guests are refused;
    a feed and its suggestions are their owner's (and a service's)."""
    s, md, names = world["s"], more["principals"][who], more["names"]
    profile, community = names["profile"], world["community"]
    outcomes = {}
    outcomes[("GetProfile", "profile")] = (SHOWN, seen(s.profiles.GetProfile, prp.GetProfileRequest(name=profile), md))
    batch = listing(s.profiles.BatchGetProfiles, prp.BatchGetProfilesRequest(names=[profile]), md, lambda r: {p.name for p in r.profiles})
    outcomes[("BatchGetProfiles", "profile")] = (SHOWN, SHOWN if isinstance(batch, set) and profile in batch else str(batch))
    outcomes[("GetManagementChain", "profile")] = (SHOWN, seen(s.profiles.GetManagementChain, prp.GetManagementChainRequest(name=profile), md))
    outcomes[("GetCommunity", "community")] = (SHOWN, seen(s.communities.GetCommunity, cp.GetCommunityRequest(name=community), md))
    members = listing(s.communities.ListCommunityMembers, cp.ListCommunityMembersRequest(parent=community, page_size=100), md, lambda r: set(r.members))
    outcomes[("ListCommunityMembers", "member")] = (SHOWN, SHOWN if isinstance(members, set) and any(world["member"] in m for m in members) else str(members))
    # One membership of the OPEN community: answered to whoever may read its member list.
    membership = cp.GetMembershipRequest(name=f"{community}/members/{world['member']}")
    outcomes[("GetMembership", "member")] = (SHOWN, seen(s.communities.GetMembership, membership, md))
    directory = {
        "SearchPeople": (s.search.SearchPeople, sp.SearchPeopleRequest(query="Author Person", page_size=100), lambda r: {p.profile for p in r.people}),
        "ListPeople": (s.search.ListPeople, sp.ListPeopleRequest(manager=profile, page_size=100), lambda r: {p.profile for p in r.people} | {profile}),
        "FindExperts": (s.search.FindExperts, sp.FindExpertsRequest(topic="Research", page_size=100), lambda r: {profile}),
        "ListCommunities": (s.search.ListCommunities, sp.ListCommunitiesRequest(page_size=100), lambda r: {profile} if any(c.community == community for c in r.communities) else set()),
        "ListRelations": (s.search.ListRelations, sp.ListRelationsRequest(person=profile, relation=sp.ListRelationsRequest.FOLLOWERS, page_size=100),
                          lambda r: {profile} if {p.profile for p in r.people} >= {f"profiles/{f}" for f in more["follower"].values()} else set()),
        "GetNetworkCounts": (s.search.GetNetworkCounts, sp.GetNetworkCountsRequest(person=profile), lambda r: {profile} if r.followers == 2 else set()),
    }
    for rpc, (call, request, names_of) in directory.items():
        shown = listing(call, request, md, names_of)
        outcomes[(rpc, "profile")] = (expect(who, "profile", refused=GUESTS), shown if isinstance(shown, str) else SHOWN if profile in shown else HIDDEN)
    # A feed is its owner's: the member's and the follower's show the author's updates each may see.
    owner = who if who in more["follower"] else "member"
    feed_of = f"profiles/{more['follower'][owner]}"
    feed = listing(s.search.GetNetworkFeed, sp.GetNetworkFeedRequest(person=feed_of, page_size=100), md, lambda r: {i.name for i in r.items})
    for level in ("public", "internal", "community"):
        item = f"status_{level}"
        if who in ("member", "non_member"):
            want = expect(who, item)
        elif who == "service":
            want = expect(owner, item)  # a service reads the feed as its owner sees it
        else:
            want = REFUSED
        outcomes[("GetNetworkFeed", item)] = (want, feed if isinstance(feed, str) else SHOWN if names[item] in feed else HIDDEN)
    suggestions = listing(s.search.ListPeopleYouMayKnow, sp.ListPeopleYouMayKnowRequest(person=feed_of), md, lambda r: {"answered"})
    outcomes[("ListPeopleYouMayKnow", "own")] = (SHOWN if who in ("member", "non_member", "service") else REFUSED, suggestions if isinstance(suggestions, str) else SHOWN)
    check(outcomes)


def http_get(path: str, md, **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode(params, doseq=True)
    request = urllib.request.Request(f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}{path}?{query}", headers={"Authorization": dict(md)["authorization"]})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@covers("GET /api/v1/search", "GET /api/v1/suggest", "GET /api/v1/trending", "GET /api/v1/stats", kind="levels")
@covers("GET /api/v1/search", "GET /api/v1/suggest", "GET /api/v1/trending", "GET /api/v1/stats", kind="hidden_by_flags")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_the_http_view_shows_only_what_the_caller_may_see(world, who):
    md, words, common = world["principals"][who], world["words"], world["common"]
    status, found = http_get("/api/v1/search", md, query=common, page_size=100)
    assert status == 200, found
    assert {h["name"] for h in found["hits"]} == {world["names"][item] for item, seers in SEES.items() if who in seers}
    for item, seers in SEES.items():
        status, suggested = http_get("/api/v1/suggest", md, prefix=words[item][:6], page_size=20)
        assert status == 200, suggested
        if who not in seers:
            assert words[item] not in " ".join(g["text"] for g in suggested["suggestions"]), item
    status, trending = http_get("/api/v1/trending", md, page_size=50)
    assert status == 200, trending
    tags = {i["value"] for i in trending["items"] if i["kind"] == "tag"}
    for item in ("public", "internal", "community", "private", "hidden", "draft"):
        assert (words[item] in tags) == (who in SEES[item]), item
    status, posts = http_get("/api/v1/stats", md, metric="posts", blog=world["blog"])
    assert status == 200, posts
    assert int(posts["total"]) == sum(1 for i in ("public", "internal", "community", "private", "hidden", "draft") if who in SEES[i])


@covers("GET /api/v1/jams", "GET /api/v1/jams/{jam}/leaderboard", "GET /api/v1/jams/{jam}/pulse", kind="levels")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_the_http_jam_board_shows_only_jams_the_caller_may_see(world, more, who):
    md, names = more["principals"][who], more["names"]
    # The board shows the 50 most recently active jams: make these two the most recent first.
    for item in ("jam_j1", "jam_j2"):
        world["s"].jams.CreateIdea(jp.CreateIdeaRequest(parent=names[item], idea=jp.Idea(title=unique("i"))), metadata=world["as_author"])
    eventually(lambda: {names["jam_j1"], names["jam_j2"]} <= {j["name"] for j in http_get("/api/v1/jams", world["principals"]["service"])[1]["jams"]}, message="jams on the board")
    status, board = http_get("/api/v1/jams", md)
    assert status == 200, board
    on_board = {j["name"] for j in board["jams"]}
    outcomes = {}
    for item in ("jam_j1", "jam_j2"):
        jam_id = names[item].split("/")[1]
        outcomes[("GET /api/v1/jams", item)] = (expect(who, item), SHOWN if names[item] in on_board else HIDDEN)
        for route in ("leaderboard", "pulse"):
            status, _ = http_get(f"/api/v1/jams/{jam_id}/{route}", md)
            outcomes[(f"GET /api/v1/jams/{{jam}}/{route}", item)] = (expect(who, item), {200: SHOWN, 404: HIDDEN, 403: REFUSED}.get(status, str(status)))
    check(outcomes)


# Read by name (GetPost, GetMicropost): the same rule, except that services read drafts and
# items hidden by flags (to moderate them), while lists and searches show those to nobody.
BY_NAME = {**SEES, "hidden": {"service"}, "draft": {"service"}}
BY_NAME_ITEMS = ("public", "internal", "community", "private", "hidden", "draft", "micro_community")


@covers("GetPost", "GetMicropost", kind="levels")
@covers("GetPost", "GetMicropost", kind="hidden_by_flags")
@pytest.mark.parametrize("who", PRINCIPALS)
def test_reads_by_name_follow_the_same_rule_including_items_hidden_by_flags(world, who):
    s, md = world["s"], world["principals"][who]
    for item in BY_NAME_ITEMS:
        name = world["names"][item]
        call, request = (s.posts.GetMicropost, pb.GetMicropostRequest(name=name)) if name.startswith("microposts/") else (s.posts.GetPost, pb.GetPostRequest(name=name))
        if who in BY_NAME[item]:
            assert call(request, metadata=md).name == name, item
        else:
            try:
                call(request, metadata=md)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, (item, error)
            else:
                raise AssertionError(f"{who} read the {item} item by name")

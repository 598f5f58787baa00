"""The visibility matrix: every search RPC of issue 7 (Search hits, snippets and facets;
Suggest; Trending; GetStats) × every visibility level (PUBLIC, INTERNAL, COMMUNITY,
PRIVATE, hidden by flags, draft; restricted wiki space; jams of one guest or another) ×
every principal kind (employee member, employee non-member, alumni, guest of the jam,
guest of another jam, service). Nothing may leak anywhere, not even as a count."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, unique, word
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
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
}


@pytest.fixture(scope="module")
def world(platform):
    s = Stubs(platform)
    common = word(8)
    author, as_author = s.person("Author Person")
    member, as_member = s.person("Member Person")
    community = unique("c")
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Inner circle", access=cp.Community.OPEN)), metadata=as_author)
    s.communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{community}"), metadata=as_member)
    eventually(lambda: platform.es.search(index=platform.alias("communities"), query={"term": {"members": member}})["hits"]["total"]["value"] == 1, message="membership")
    blog = s.blog(as_author, visibility=V.PUBLIC)
    words = {item: word(8) for item in SEES}
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
        return True

    eventually(indexed, timeout=90, message="matrix items indexed")
    return dict(s=s, common=common, words=words, names=names, principals=principals, blog=blog)


@pytest.mark.parametrize("who", PRINCIPALS)
def test_search_hits_snippets_and_facets_show_only_what_the_caller_may_see(world, who):
    s, md = world["s"], world["principals"][who]
    expected = {world["names"][item] for item, seers in SEES.items() if who in seers}
    found = s.find(md, query=world["common"], page_size=100)
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
    assert (("hashtag", words["micro_community"]) in trending) == (who in SEES["micro_community"])
    visible_posts = sum(1 for i in ("public", "internal", "community", "private", "hidden", "draft") if who in SEES[i])
    assert trending.get(("tag", world["common"]), 0) == visible_posts
    posts = s.search.GetStats(sp.GetStatsRequest(metric="posts", blog=world["blog"]), metadata=md)
    assert posts.total == sum(1 for i in ("public", "internal", "community", "private", "hidden", "draft") if who in SEES[i])
    assert sum(p.value for p in posts.series) == posts.total


# Read by name (GetPost, GetMicropost): the same rule, except that services read drafts and
# items hidden by flags (to moderate them), while lists and searches show those to nobody.
BY_NAME = {**SEES, "hidden": {"service"}, "draft": {"service"}}
BY_NAME_ITEMS = ("public", "internal", "community", "private", "hidden", "draft", "micro_community")


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

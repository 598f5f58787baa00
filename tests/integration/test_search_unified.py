"""One search over everything (Search, Suggest, Trending) through the real gRPC API, Kafka
and Elasticsearch: every kind found, filters, facets, snippets, relevance (title beats a
passing mention, accents, typos), paging stable while documents are added, bad input."""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually, free_port
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_jams_api import ts
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.profiles.v1 import profiles_pb2_grpc as prg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

# The search process serves its HTTP view here (set before the session's platform starts).
os.environ.setdefault("WC_SEARCH_HTTP_PORT", str(free_port()))

pytestmark = pytest.mark.integration
V = pb.Audience


def word(n: int = 6) -> str:
    """An invented word, so this run's documents are the only matches."""
    return "z" + "".join(random.choice("bcdfghjklmnpqrstvwx") + random.choice("aeiou") for _ in range(n // 2))


def far_word() -> str:
    """An invented word no other invented word is within two edits of. Search looks for typos
    (two edits in a word of eight letters or more) when a word is in nothing the caller may
    see, so asking for a hidden item's word must not reach a visible item one typo away: two
    nine-letter words from ``word(8)`` are that close once in about 21,000 pairs, and a suite
    holds thousands of pairs. Two of these are, once in about 10**8."""
    return word(12)


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Stubs:
    def __init__(self, platform):
        self.platform = platform
        self.profiles = platform.stub(prg.ProfileServiceStub, "profiles")
        self.communities = platform.stub(cg.CommunityServiceStub, "profiles")
        self.posts = platform.stub(pg.PostServiceStub, "posts")
        self.wiki = platform.stub(wg.WikiServiceStub, "posts")
        self.media = platform.stub(mg.MediaServiceStub, "posts")
        self.jams = platform.stub(jg.JamServiceStub, "jams")
        self.search = platform.stub(sg.SearchServiceStub, "search")

    def person(self, name: str, department: str = "Research", bio: str = "") -> tuple[str, tuple]:
        employee = unique("e")
        self.profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=employee, display_name=name, department=department, bio=bio)),
                                    metadata=self.platform.metadata())
        self.platform.accept_guidelines(employee)  # they write what others read
        return employee, self.platform.metadata(employee, "employee")

    def blog(self, md, visibility=V.INTERNAL, community="") -> str:
        return self.posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Notes", visibility=visibility, community=community)), metadata=md).name

    def post(self, md, blog: str, title: str, body: str, tags=(), visibility=V.INTERNAL, community="", publish=True) -> str:
        post = self.posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title=title, body=body, tags=list(tags), visibility=visibility, community=community)), metadata=md)
        if publish:
            self.posts.PublishPost(pb.PublishPostRequest(name=post.name), metadata=md)
        return post.name

    def micro(self, md, text: str, visibility=V.INTERNAL, community="") -> str:
        return self.posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=text, visibility=visibility, community=community)), metadata=md).name

    def find(self, md, **kwargs) -> sp.SearchResponse:
        return self.search.Search(sp.SearchRequest(**kwargs), metadata=md)


@pytest.fixture(scope="module")
def stubs(platform) -> Stubs:
    return Stubs(platform)


@pytest.fixture(scope="module")
def corpus(stubs: Stubs):
    """One item of every kind carrying the word ``w``, and a few around it."""
    w, accented_stem = word(), word()
    accented = accented_stem[:2] + "é" + accented_stem[3:]  # e.g. "zoé…": found as typed without the accent
    ana, as_ana = stubs.person(f"Ana {w.title()}", "Research", bio=f"physicist working on {w}")
    bob, as_bob = stubs.person("Bob Stone", "Sales")
    blog = stubs.blog(as_ana)
    titled = stubs.post(as_ana, blog, f"The {w} roadmap", "Where we go next.", tags=[w, "roadmap"])
    mention = stubs.post(as_bob, stubs.blog(as_bob), "Quarterly numbers", f"Sales grew; someone said {w} once in a long text about other things.", tags=["sales"])
    micro = stubs.micro(as_bob, f"#{w} is trending, and the {accented} too")
    comment = stubs.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=titled, body=f"Love the {w} plan")), metadata=as_bob).name
    bookmark = stubs.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{w}", title=f"{w} reading list", tags=[w], visibility=V.INTERNAL)), metadata=as_ana).name
    space = stubs.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Guides", visibility=wp.INTERNAL)), metadata=as_ana).name
    page = stubs.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"{w} guide", body=f"How to use {w} day to day.")), metadata=as_ana).name
    media = stubs.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title=f"{w} demo", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", tags=[w],
                                                                                             visibility=wp.INTERNAL, storage_uri="s3://b/demo")), metadata=as_ana).name
    community_id = unique("c")
    stubs.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name=f"{w.title()} Club", description="We meet on Fridays", access=cp.Community.OPEN)), metadata=as_ana)
    jam_id = unique("j")
    stubs.jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=as_ana)
    idea = stubs.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=f"Fund {w} research", description="Because.")), metadata=as_ana).name
    expected = {"post": {titled, mention}, "micropost": {micro}, "comment": {comment}, "bookmark": {bookmark}, "wiki_page": {page}, "media": {media},
                "person": {f"profiles/{ana}"}, "community": {f"communities/{community_id}"}, "jam_idea": {idea}}
    service = stubs.platform.metadata()

    def all_there():
        found = stubs.find(service, query=w, page_size=100)
        kinds = {}
        for hit in found.hits:
            kinds.setdefault(hit.kind, set()).add(hit.name)
        assert kinds == expected, kinds
        return found

    eventually(all_there, timeout=90, message="every kind indexed")
    return dict(w=w, accented=accented, ana=ana, as_ana=as_ana, bob=bob, as_bob=as_bob, blog=blog, titled=titled, mention=mention, micro=micro, page=page,
                space=space, media=media, jam=f"jams/{jam_id}", community=f"communities/{community_id}", expected=expected)


def department_facet(stubs, md, query: str) -> dict[str, int]:
    """The department facet of a Search for ``query``, as ``md``'s caller sees it."""
    found = stubs.find(md, query=query, read_mask=FieldMask(paths=["facets"]))
    return {v.value: v.count for f in found.facets if f.field == "department" for v in f.values}


def test_search_finds_every_kind_with_snippets_and_exact_facets(stubs, corpus):
    found = stubs.find(corpus["as_ana"], query=corpus["w"], page_size=100, read_mask=FieldMask(paths=["*"]))
    by_name = {hit.name: hit for hit in found.hits}
    assert set(by_name) == set().union(*corpus["expected"].values())
    assert found.total_size == len(by_name)
    for hit in found.hits:
        assert corpus["w"] in hit.snippet.lower().replace("<em>", "").replace("</em>", "") or corpus["w"] in hit.title.lower(), hit
        assert "<em>" in hit.snippet or hit.kind in ("person", "community"), hit
    page = by_name[corpus["page"]]
    assert page.title == f"{corpus['w']} guide" and page.parent == corpus["space"] and page.author == f"profiles/{corpus['ana']}"
    assert by_name[corpus["titled"]].parent == corpus["blog"] and corpus["w"] in by_name[corpus["titled"]].tags
    facets = {f.field: {v.value: v.count for v in f.values} for f in found.facets}
    assert facets["kind"] == {k: len(v) for k, v in corpus["expected"].items()}
    assert facets["tags"][corpus["w"]] == 4  # the post, the micropost's hashtag, the bookmark, the media item
    assert facets["author"][f"profiles/{corpus['ana']}"] == 5  # post, bookmark, page, media, idea (not the community)

    # The service keeps each author's department, and a person new to it arrives by its next poll
    # (departments.POLL_SECONDS): a Search just after the corpus was indexed may come before it.
    counted = eventually(lambda: (d := department_facet(stubs, corpus["as_ana"], corpus["w"])).get("Research") == 5 + 1 and d.get("Sales") == 3 and d,
                         timeout=20, interval=0.5,
                         message="Ana's items and Ana herself in Research, Bob's three in Sales")
    assert counted["Research"] == 5 + 1 and counted["Sales"] == 3


def test_a_move_between_departments_reaches_the_department_facet_within_seconds(stubs):
    """The facet counts an author's items under the department the search service keeps for
    them: kept until it changes, and changes polled every few seconds (it was kept a minute)."""
    w = word()
    dee, as_dee = stubs.person(f"Dee {w.title()}", "Research")
    stubs.post(as_dee, stubs.blog(as_dee), f"The {w} plan", "Where we go next.")

    def departments() -> dict[str, int]:
        return department_facet(stubs, as_dee, w)

    eventually(lambda: departments() == {"Research": 2}, timeout=60, message="Dee and her post counted in Research")
    stubs.profiles.UpdateProfile(prp.UpdateProfileRequest(profile=prp.Profile(name=f"profiles/{dee}", department="Sales"), update_mask={"paths": ["department"]}),
                                 metadata=stubs.platform.metadata())
    eventually(lambda: departments() == {"Sales": 2}, timeout=20, interval=0.5, message="Dee and her post counted in Sales after her move")


def test_typos_are_looked_for_only_when_a_word_is_in_nothing_the_caller_may_see(stubs, corpus):
    """Words that match nothing together are tried with typos only when one of them is in no
    document the caller may see: two words that both exist, only never together, are no typo.
    A word that only a document hidden from the caller holds counts as unknown, so the answer
    is the one the caller would get if that document did not exist."""
    md_ana, md_bob, w = corpus["as_ana"], corpus["as_bob"], corpus["w"]

    def one_off(text: str) -> str:  # not the typo the test below makes of `w`
        return text[:5] + ("a" if text[5] != "a" else "o") + text[6:]

    q = word()
    near = stubs.post(md_ana, corpus["blog"], f"{one_off(w)} {one_off(q)}", "Close to both.")  # one edit from each word
    draft = stubs.post(md_bob, stubs.blog(md_bob), f"{q} notes", "Not published.", publish=False)  # Bob's alone

    def indexed():
        assert [h.name for h in stubs.find(md_ana, query=one_off(q), kinds=["post"]).hits] == [near]
        assert [h.name for h in stubs.find(md_bob, query=q, kinds=["post"]).hits] == [draft]
        return True
    eventually(indexed, timeout=90, message="both posts indexed")
    # Ana cannot see the draft: for her `q` is in nothing, so typos are looked for and the
    # post one edit away from both words is found.
    assert [h.name for h in stubs.find(md_ana, query=f"{w} {q}", kinds=["post"]).hits] == [near]
    # Bob sees `w` (Ana's post) and `q` (his draft), never together: no typo is made up.
    assert not stubs.find(md_bob, query=f"{w} {q}", kinds=["post"]).hits


def test_a_callers_scope_is_read_in_two_round_trips(stubs, corpus):
    """Every part (as GetStats reads them): communities, public jams and hidden jam threads in
    one _msearch, then the wiki spaces (their audience needs the communities); they were four."""
    import asyncio

    from services.search import visibility
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    settings = stubs.platform.settings

    async def read():
        es = es_client(settings)
        calls: list[str] = []
        for name in ("search", "msearch", "mget", "count"):
            real = getattr(es, name)

            async def counted(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return await _real(*args, **kwargs)
            setattr(es, name, counted)
        try:
            scope, _ = await visibility._read_scope(es, settings, Principal(corpus["ana"], "employee"))
            return scope, calls
        finally:
            await es.close()

    scope, calls = asyncio.run(read())
    assert calls == ["msearch", "msearch"]
    assert corpus["community"].removeprefix("communities/") in scope.communities
    assert scope.spaces is not None and corpus["space"].removeprefix("spaces/") in scope.spaces
    assert scope.jams is None  # an employee: every jam


def test_every_list_of_a_scope_and_every_item_a_count_leaves_out_is_read_past_a_page(stubs, corpus, monkeypatch):
    """Elasticsearch answers at most 10,000 hits a request, and a company of 400,000 people has
    more wiki spaces than that: a scope cut at a page hid the pages of the spaces past it (and
    would have shown the replies of the hidden jam threads past it, or counted the downloads
    of the media items past it). With pages of two, every part of a scope read page by page is
    the part read at once, and so are the items GetStats leaves out (read through a point in
    time: they have no id field to sort on); a list longer than a terms query takes is several."""
    import asyncio

    from elasticsearch import BadRequestError

    from services.search import visibility
    from services.search.readmodels import indices
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    settings = stubs.platform.settings
    ana, as_ana, as_bob = corpus["ana"], corpus["as_ana"], corpus["as_bob"]
    spaces = [stubs.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Team", visibility=wp.INTERNAL)), metadata=as_ana).name
              for _ in range(5)]
    restricted = stubs.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Bob's", visibility=wp.RESTRICTED)), metadata=as_bob).name
    communities = [unique("c") for _ in range(3)]
    for community_id in communities:
        stubs.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name="Club", access=cp.Community.OPEN)), metadata=as_ana)
    space_ids = [name.removeprefix("spaces/") for name in [*spaces, restricted]]
    wiki, every_space = settings.index_alias(indices.WIKI), {"term": {"kind": "space"}}

    async def with_es(work):
        es = es_client(settings)
        try:
            return await work(es)
        finally:
            await es.close()

    async def indexed(es):
        found = await es.count(index=wiki, query={"bool": {"filter": [every_space, {"terms": {"space_id": space_ids}}]}})
        members = await es.count(index=settings.index_alias(indices.COMMUNITIES), query={"bool": {"filter": [{"terms": {"community_id": communities}}, {"term": {"members": ana}}]}})
        return found["count"] == len(space_ids) and members["count"] == len(communities)
    eventually(lambda: asyncio.run(with_es(indexed)), timeout=60, message="the spaces and communities indexed")

    async def read(es):
        calls: list[str] = []
        for name in ("search", "msearch", "open_point_in_time"):
            real = getattr(es, name)

            async def counted(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return await _real(*args, **kwargs)
            setattr(es, name, counted)
        scope, _ = await visibility._read_scope(es, settings, Principal(ana, "employee"))
        left_out = await visibility.ids_matching(es, wiki, every_space)
        return scope, sorted(left_out), calls

    visibility._shared.clear()
    at_once, left_out_at_once, calls = asyncio.run(with_es(read))
    assert calls == ["msearch", "msearch", "search"]
    monkeypatch.setattr(visibility, "SCOPE_PAGE", 2)
    visibility._shared.clear()
    paged, left_out_paged, paged_calls = asyncio.run(with_es(read))
    # The communities (four and more: a page of two and on) and the spaces (six and more) read on.
    assert paged_calls.count("msearch") > 2 and "open_point_in_time" in paged_calls, paged_calls
    assert paged == at_once
    assert set(communities) | {corpus["community"].removeprefix("communities/")} <= set(paged.communities)
    assert set(space_ids[:5]) <= set(paged.spaces) and space_ids[5] not in paged.spaces
    # (A space document's id is its aggregate's, not its space id.)
    assert left_out_paged == left_out_at_once and len(left_out_paged) >= len(space_ids)

    # More values than a terms query may hold: refused as one, found as several.
    many = [f"nobody-{n}" for n in range(visibility.MAX_TERMS + 10)] + [space_ids[0]]

    async def find_many(es):
        found = await es.search(index=wiki, query={"bool": {"filter": [every_space, visibility.any_of("space_id", many)]}}, source=["space_id"])
        with pytest.raises(BadRequestError) as refused:
            await es.search(index=wiki, query={"bool": {"filter": [every_space, {"terms": {"space_id": many}}]}})
        assert "max_terms_count" in str(refused.value.body)
        return [hit["_source"]["space_id"] for hit in found["hits"]["hits"]]
    assert asyncio.run(with_es(find_many)) == [space_ids[0]]


def test_a_new_callers_profile_languages_come_with_the_scope_and_every_callers_parts_are_read_once(stubs, corpus):
    """A text Search by a caller whose scope and languages are not kept: the caller's profile
    is read in the scope's _msearch (they were two requests at once), the only one: wiki pages
    and the comments on them carry their space's audience, so no Search reads the caller's
    spaces. The parts every caller reads alike (here the hidden jam threads) are read once for
    all callers within the second, and a scope made with kept ones lapses with the oldest."""
    import asyncio

    from services.search import departments, memberships, unified, visibility
    from services.search.readmodels import indices
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    settings = stubs.platform.settings
    lea, surname = unique("e"), far_word().title()
    stubs.profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=lea, display_name=f"Lea {surname}", department="QA", languages=["de", "fr"])),
                                 metadata=stubs.platform.metadata())
    people = settings.index_alias(indices.PEOPLE)

    def lea_indexed():
        found = stubs.search.SearchPeople(sp.SearchPeopleRequest(query=surname), metadata=stubs.platform.metadata())
        assert [p.profile for p in found.people] == [f"profiles/{lea}"]
        return True
    eventually(lea_indexed, timeout=60, message="Lea's profile indexed")
    # Kept values are keyed by the client's id(), which a client closed by an earlier test may have had.
    for kept in (visibility._scopes, visibility._shared):
        kept.clear()
    departments._deployments.clear()
    memberships._deployments.clear()
    q = unified.SearchQuery(text=corpus["w"], kinds=list(unified.KINDS), order="relevance", filters={}, start=None, end=None, wanted={"hits"})

    async def run():
        es = es_client(settings)
        calls: list[tuple[str, list[str]]] = []  # (method, the indices it searched)
        for name in ("search", "msearch", "mget", "count"):
            real = getattr(es, name)

            async def counted(*args, _real=real, _name=name, **kwargs):
                searched = [header["index"] for header in kwargs["searches"][0::2]] if _name == "msearch" else [kwargs.get("index", "")]
                calls.append((_name, searched))
                return await _real(*args, **kwargs)
            setattr(es, name, counted)
        search = unified.Search(es, settings)
        try:
            out = {}
            for who in (lea, corpus["bob"], lea):
                calls.clear()
                scope, languages = await search._scope_and_languages(Principal(who, "employee"), q)
                out.setdefault(who, []).append((scope, languages, list(calls)))
            key = (id(es), settings.namespace, "employee", corpus["bob"], ())
            bob_kept_from = visibility._scopes.stored(key)[0]
            shared_from = visibility._shared.stored((id(es), settings.namespace, "hidden_threads"))[0]
            return out, bob_kept_from, shared_from
        finally:
            await es.close()

    out, bob_kept_from, shared_from = asyncio.run(run())
    (lea_scope, lea_languages, lea_calls), (_, again_languages, again_calls) = out[lea]
    [(bob_scope, bob_languages, bob_calls)] = out[corpus["bob"]]
    assert lea_languages == ("de", "fr") and again_languages == ("de", "fr")
    assert bob_languages == ()  # no languages on his profile
    # Lea, the first caller: one _msearch for her communities, the hidden threads and her profile
    # (an employee may see every jam: no public jams are read), and nothing else.
    communities, threads = settings.index_alias(indices.COMMUNITIES), settings.index_alias(indices.JAM_THREADS)
    assert lea_calls == [("msearch", [communities, threads, people])], lea_calls
    # Bob, within the second: the shared parts are kept, his communities and profile are read.
    assert bob_calls == [("msearch", [communities, people])], bob_calls
    assert bob_scope.hidden_threads == lea_scope.hidden_threads and bob_scope.jams is None
    assert "spaces" not in bob_scope.parts
    # His scope lapses with the shared parts it was made with, not a second after his read.
    assert bob_kept_from == shared_from
    # Lea again: both kept, nothing sent.
    assert again_calls == []


def test_relevance_title_beats_mention_accents_and_typos(stubs, corpus):
    md, w = corpus["as_ana"], corpus["w"]
    posts = [h.name for h in stubs.find(md, query=w, kinds=["post"]).hits]
    assert posts == [corpus["titled"], corpus["mention"]]  # the exact title first, the passing mention after
    plain = corpus["accented"].replace("é", "e")
    assert [h.name for h in stubs.find(md, query=plain).hits] == [corpus["micro"]]  # folded: no accent needed
    assert [h.name for h in stubs.find(md, query=corpus["accented"].upper()).hits] == [corpus["micro"]]
    typo = w[:3] + ("a" if w[3] != "a" else "o") + w[4:]
    assert corpus["titled"] in {h.name for h in stubs.find(md, query=typo, kinds=["post"]).hits}
    phrase = stubs.find(md, query=f"{w} roadmap").hits
    assert phrase[0].name == corpus["titled"]
    # Query syntax is text: nothing here breaks the query or widens it.
    for nasty in (f'{w} OR *', f'title:{w}', '" AND ( [', '{"match_all": {}}', '\\'):
        stubs.find(md, query=nasty)
    assert not stubs.find(md, query="*").hits


def test_filters_order_and_time_range(stubs, corpus):
    md, w = corpus["as_ana"], corpus["w"]
    names = lambda **kw: {h.name for h in stubs.find(md, query=w, page_size=100, **kw).hits}  # noqa: E731
    assert names(kinds=["wiki_page", "media"]) == {corpus["page"], corpus["media"]}
    assert names(author=f"profiles/{corpus['bob']}") == {corpus["mention"], corpus["micro"], *corpus["expected"]["comment"]}
    assert names(tags=[w]) == {corpus["titled"], corpus["micro"], *corpus["expected"]["bookmark"], corpus["media"]}
    assert names(tags=[w, "roadmap"]) == {corpus["titled"]}
    assert names(blog=corpus["blog"]) == {corpus["titled"]}
    assert names(space=corpus["space"]) == {corpus["page"]}
    assert names(jam=corpus["jam"]) == corpus["expected"]["jam_idea"]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    start = sp.SearchRequest()
    start.start_time.FromDatetime(future.replace(tzinfo=None))
    assert not stubs.find(md, query=w, start_time=start.start_time).hits
    newest = [h.create_time.ToDatetime() for h in stubs.find(md, query=w, order_by="newest", page_size=100).hits]
    assert newest == sorted(newest, reverse=True)


def test_paging_is_stable_while_documents_are_added(stubs, corpus):
    md = corpus["as_ana"]
    w = word()
    blog = stubs.blog(md)
    first = [stubs.post(md, blog, f"{w} part {n}", "text") for n in range(5)]
    eventually(lambda: len(stubs.find(md, query=w, page_size=100).hits) == 5, message="5 posts indexed")
    seen, token = [], ""
    added = []
    while True:
        page = stubs.find(md, query=w, order_by="newest", page_size=2, page_token=token)
        seen += [h.name for h in page.hits]
        if not added:  # new documents arrive between pages: they sort first, so pages don't shift
            added = [stubs.post(md, blog, f"{w} late {n}", "text") for n in range(2)]
            eventually(lambda: len(stubs.find(md, query=w, page_size=100).hits) == 7, message="late posts indexed")
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert sorted(seen) == sorted(first) and len(seen) == len(set(seen))
    # The same paging with relevance order, and a token is bound to its query.
    page = stubs.find(md, query=w, page_size=3)
    other = rpc_error(stubs.search.Search, sp.SearchRequest(query=w + "x", page_size=3, page_token=page.next_page_token), metadata=md)
    assert other.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(other) == ["page_token"]


def test_read_mask_returns_only_the_fields_asked_for(stubs, corpus):
    """AIP-157: a Search names the response fields it shows; facets left out are not computed
    (a search box without them costs Elasticsearch far less), and a page token works whatever
    the mask of the page that gave it. Without a mask a Search returns every field but the
    facets (the costly one, which AIP-157 lets a default leave out); "*" returns them all."""
    md, w = corpus["as_ana"], corpus["w"]

    def facets(response):
        return {f.field: {v.value: v.count for v in f.values} for f in response.facets}

    full = stubs.find(md, query=w, page_size=3, read_mask=FieldMask(paths=["*"]))
    assert len(full.hits) == 3 and full.next_page_token and full.total_size > 3 and facets(full)["kind"]
    default = stubs.find(md, query=w, page_size=3)
    assert [h.name for h in default.hits] == [h.name for h in full.hits] and default.hits[0].snippet == full.hits[0].snippet
    assert not default.facets and default.total_size == full.total_size and default.next_page_token
    listed = stubs.find(md, query=w, page_size=3, read_mask=FieldMask(paths=["hits", "next_page_token"]))
    assert [h.name for h in listed.hits] == [h.name for h in full.hits] and listed.hits[0].snippet == full.hits[0].snippet
    assert not listed.facets and listed.total_size == 0 and listed.next_page_token
    counted = stubs.find(md, query=w, read_mask=FieldMask(paths=["total_size", "facets"]))
    assert not counted.hits and not counted.next_page_token
    assert counted.total_size == full.total_size and facets(counted) == facets(full)
    named = stubs.find(md, query=w, page_size=3, read_mask=FieldMask(paths=["hits", "total_size", "facets", "next_page_token"]))
    assert [h.name for h in named.hits] == [h.name for h in full.hits] and facets(named) == facets(full)  # scores move with "now": recency
    assert named.total_size == full.total_size and named.next_page_token
    # The second page is the same whichever mask the first page had.
    after_listed = stubs.find(md, query=w, page_size=3, page_token=listed.next_page_token)
    after_full = stubs.find(md, query=w, page_size=3, page_token=full.next_page_token)
    assert after_listed.hits and [h.name for h in after_listed.hits] == [h.name for h in after_full.hits]


def test_search_touches_only_the_indices_of_the_kinds_asked_for_and_aggregates_only_for_facets(stubs, corpus):
    """Elasticsearch's own per-index search counters (by the groups the search service tags its
    queries with) show what a Search cost: restricted to one kind it queried that kind's index
    and no other; without facets in its read mask no query computed an aggregation, with them
    the aggregations ran on that index only (the department facet's author lookup aside)."""
    from services.search.unified import STATS_FACETS, STATS_SEARCH

    es, settings, md, w = stubs.platform.es, stubs.platform.settings, corpus["as_ana"], corpus["w"]
    content = ("posts", "comments", "bookmarks", "wiki", "media", "people", "communities", "jam-ideas", "jam-threads")

    def counters() -> dict[tuple[str, str], int]:
        stats = es.indices.stats(index=",".join(settings.index_alias(a) for a in content), metric="search",
                                 groups=[STATS_SEARCH, STATS_FACETS])["indices"]
        out = {}
        for index, s in stats.items():
            alias = next(a for a in content if index.startswith(settings.index_alias(a) + "-v"))
            groups = s["total"]["search"].get("groups", {})
            for group in (STATS_SEARCH, STATS_FACETS):
                out[(alias, group)] = out.get((alias, group), 0) + groups.get(group, {}).get("query_total", 0)
        return out

    def spent(**request) -> dict[tuple[str, str], int]:
        before = counters()
        found = stubs.find(md, query=w, kinds=["bookmark"], **request)
        assert [h.kind for h in found.hits] == ["bookmark"]
        after = counters()
        return {key: after.get(key, 0) - before.get(key, 0) for key in after if after.get(key, 0) != before.get(key, 0)}

    # One shard per index here (WC_ES_SHARDS), so one query per index searched.
    for mask in (FieldMask(paths=["hits", "total_size"]), None):  # no mask: every field but the facets
        assert spent(read_mask=mask) == {("bookmarks", STATS_SEARCH): 1}
    for mask in (FieldMask(paths=["hits", "facets"]), FieldMask(paths=["*"])):
        faceted = spent(read_mask=mask)
        # The people index: the authors' departments for the department facet, when not kept,
        # and the poll for departments changed since the last (services/search/departments.py).
        assert faceted.pop(("people", STATS_FACETS), 0) <= 2
        assert faceted == {("bookmarks", STATS_SEARCH): 1, ("bookmarks", STATS_FACETS): 1}


def test_search_reads_only_the_parts_of_the_callers_scope_its_kinds_need(stubs, corpus):
    """A caller seen for the first time: a Search for bookmarks reads their communities (a
    bookmark may be shared with one) but neither their wiki spaces nor the hidden jam threads;
    a Search for wiki pages reads no spaces either: each page carries its space's audience."""
    es, settings = stubs.platform.es, stubs.platform.settings
    aliases = ("bookmarks", "wiki", "jam-threads", "communities")

    def queries() -> dict[str, int]:
        stats = es.indices.stats(index=",".join(settings.index_alias(a) for a in aliases), metric="search")["indices"]
        out = dict.fromkeys(aliases, 0)
        for index, s in stats.items():
            alias = next(a for a in aliases if index.startswith(settings.index_alias(a) + "-v"))
            out[alias] += s["total"]["search"]["query_total"]
        return out

    newcomer = stubs.platform.metadata(unique("e"), "employee")
    before = queries()
    found = stubs.find(newcomer, query=corpus["w"], kinds=["bookmark"], read_mask=FieldMask(paths=["hits"]))
    assert {h.name for h in found.hits} == corpus["expected"]["bookmark"]
    after = queries()
    assert after["bookmarks"] - before["bookmarks"] == 1 and after["communities"] - before["communities"] == 1
    assert after["wiki"] == before["wiki"] and after["jam-threads"] == before["jam-threads"]
    found = stubs.find(newcomer, query=corpus["w"], kinds=["wiki_page"], read_mask=FieldMask(paths=["hits"]))
    assert [h.name for h in found.hits] == [corpus["page"]]
    assert queries()["wiki"] - after["wiki"] == 1  # the pages alone (the caller's spaces were read first)


@pytest.mark.parametrize(
    "request_kwargs, field",
    [
        (dict(query="x" * 257), "query"),
        (dict(query="a\x00b"), "query"),
        (dict(kinds=["tweets"]), "kinds"),
        (dict(order_by="random"), "order_by"),
        (dict(page_size=101), "page_size"),
        (dict(page_size=-1), "page_size"),
        (dict(page_token="garbage!"), "page_token"),
        (dict(author="people/1"), "author"),
        (dict(blog="b"), "blog"),
        (dict(space="spaces/"), "space"),
        (dict(jam="jam/1"), "jam"),
        (dict(community="communities/a/b"), "community"),
        (dict(tags=[""]), "tags"),
        (dict(tags=["t"] * 11), "tags"),
        (dict(kinds=["person"], blog="blogs/x"), "blog"),
        (dict(kinds=["person"], order_by="top_rated"), "order_by"),
        (dict(read_mask=FieldMask(paths=["hits.title"])), "read_mask"),
        (dict(read_mask=FieldMask(paths=["hits", "facet"])), "read_mask"),
    ],
)
def test_bad_search_requests_name_the_field(stubs, platform, request_kwargs, field):
    error = rpc_error(stubs.search.Search, sp.SearchRequest(**request_kwargs), metadata=platform.metadata("e1", "employee"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_request_fields(error) == [field]


def test_time_range_must_be_ordered(stubs, platform):
    request = sp.SearchRequest()
    request.start_time.FromSeconds(2000)
    request.end_time.FromSeconds(1000)
    error = rpc_error(stubs.search.Search, request, metadata=platform.metadata("e1", "employee"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["end_time"]


def test_suggest_people_tags_titles_and_communities(stubs, corpus):
    md, w = corpus["as_bob"], corpus["w"]
    typed = w[:4]
    got = stubs.search.Suggest(sp.SuggestRequest(prefix=typed, page_size=10), metadata=md).suggestions
    pairs = {(s.kind, s.text, s.name) for s in got}
    assert ("tag", w, "") in pairs
    assert ("community", f"{w.title()} Club", corpus["community"]) in pairs
    assert ("person", f"Ana {w.title()}", f"profiles/{corpus['ana']}") in pairs
    assert {(s.kind, s.name) for s in got if s.kind == "title"} >= {("title", corpus["titled"]), ("title", corpus["page"]), ("title", corpus["media"])}
    only_people = stubs.search.Suggest(sp.SuggestRequest(prefix=f"ana {typed}", kinds=["people"]), metadata=md).suggestions
    assert [s.name for s in only_people] == [f"profiles/{corpus['ana']}"]
    for kwargs, field in ((dict(prefix=""), "prefix"), (dict(prefix="x" * 65), "prefix"), (dict(prefix="a", kinds=["x"]), "kinds"), (dict(prefix="a", page_size=21), "page_size")):
        error = rpc_error(stubs.search.Suggest, sp.SuggestRequest(**kwargs), metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == [field]
    # Regular-expression characters are literal text.
    stubs.search.Suggest(sp.SuggestRequest(prefix=".*[("), metadata=md)


def test_title_suggestions_ignore_accents_and_case_and_complete_any_word(stubs, corpus):
    md, other = corpus["as_bob"], word()
    page = stubs.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=corpus["space"], title=f"Café {other.title()} Été", body="Opening hours.")), metadata=corpus["as_ana"]).name

    def titles(typed: str) -> dict[str, str]:
        got = stubs.search.Suggest(sp.SuggestRequest(prefix=typed, kinds=["titles"], page_size=20), metadata=md).suggestions
        return {s.name: s.text for s in got}

    assert eventually(lambda: titles(f"cafe {other[:3]}").get(page), message="page title suggested") == f"Café {other.title()} Été"
    assert page in titles(f"CAFÉ {other[:2].upper()}")  # typed with accents and capitals
    assert page in titles(f"{other} ete")  # a later word of the title, then the next one begun
    assert page not in titles(f"cafe {other[::-1][:3]}x")


def test_trending_tags_hashtags_and_links(stubs, corpus):
    md, w = corpus["as_ana"], corpus["w"]
    got = stubs.search.Trending(sp.TrendingRequest(page_size=50), metadata=md).items
    items = {(i.kind, i.value): i for i in got}
    # One topic, one row: the post's and the bookmark's tag and the micropost's #hashtag.
    assert [(i.kind, i.value) for i in got].count(("tag", w)) == 1 and ("hashtag", w) not in items
    assert items[("tag", w)].last_day == 3 and items[("tag", w)].previous_week == 0
    for kinds in (["hashtags"], ["tags"], ["tags", "hashtags"]):  # the same topics, whichever name is asked
        asked = {(i.kind, i.value): i.last_day for i in stubs.search.Trending(sp.TrendingRequest(kinds=kinds, page_size=50), metadata=md).items}
        assert asked[("tag", w)] == 3 and ("link", f"https://example.com/{w}") not in asked, kinds
    assert items[("link", f"https://example.com/{w}")].last_day == 1
    week_ago = sp.TrendingRequest(kinds=["tags"])
    week_ago.time.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(tzinfo=None))
    later = {(i.kind, i.value) for i in stubs.search.Trending(week_ago, metadata=md).items}
    assert ("tag", w) not in later  # three days on, last week's use is no longer rising
    error = rpc_error(stubs.search.Trending, sp.TrendingRequest(kinds=["memes"]), metadata=md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["kinds"]


def test_equal_score_suggestions_keep_their_order_after_a_reindex(stubs, platform):
    """Equal names and titles score the same: a final tie-break by resource name orders them,
    not where a rebuilt index happened to store them."""
    from tests.integration.test_cli import cli

    w = word(8)
    _, as_ana = stubs.person(f"Ana {w.title()}")
    service = platform.metadata()
    people = [f"tie{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for employee in people:
        stubs.profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=employee, display_name=f"Tie {w.title()}")), metadata=service)
    clubs = [unique("tie-") for _ in range(5)]
    for club in clubs:
        stubs.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=club, display_name=f"Tie {w.title()} Club", access=cp.Community.OPEN)), metadata=as_ana)
    blog = stubs.blog(as_ana)
    posts = [stubs.post(as_ana, blog, f"Tie {w} plan", "Same title.") for _ in range(5)]

    def suggested() -> dict[str, list[str]]:
        got = stubs.search.Suggest(sp.SuggestRequest(prefix=f"tie {w[:5]}", kinds=["people", "communities", "titles"], page_size=20), metadata=as_ana).suggestions
        return {kind: [s.name for s in got if s.kind == kind] for kind in ("person", "community", "title")}

    expected = {"person": [f"profiles/{p}" for p in sorted(people)], "community": [f"communities/{c}" for c in sorted(clubs)], "title": sorted(posts)}
    eventually(lambda: {kind: len(names) for kind, names in suggested().items()} == {"person": 6, "community": 5, "title": 5}, message="all suggested")
    assert suggested() == expected
    result = cli("reindex", "people", "communities", "posts")
    assert result.returncode == 0, result.stderr
    assert suggested() == expected


def test_a_hit_of_a_long_text_shows_its_start_and_so_does_a_document_written_before_excerpts(stubs, platform):
    """A blog post of 100,000 characters and a comment of 10,000: with no words asked for (no
    highlight), a hit's snippet is the start of its text, and an untitled item's title too. The
    projections keep that start beside the text (``excerpt``, readmodels/indices.py) so a Search
    never fetches a body whole; a document written before it carried one (an index not yet
    rebuilt) is shown the same, from its text read for it alone."""
    w = far_word()
    author, md = stubs.person(f"Long {w.title()}")
    blog = stubs.blog(md)
    body = (f"Opening {w} paragraph,  with\n\n  spaced\twords & <marks> " + "filler text " * 10_000)[:100_000]
    post = stubs.post(md, blog, f"Long read {w}", body)
    reply = (f"Reply   {w}\nstarts here " + "more words " * 1_000)[:10_000]
    comment = stubs.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, body=reply)), metadata=md).name

    def shown(text: str, n: int) -> str:
        collapsed = " ".join(text.split())
        return collapsed if len(collapsed) <= n else collapsed[: n - 1] + "…"

    def hits() -> dict[str, sp.SearchHit]:
        found = stubs.find(md, author=f"profiles/{author}", page_size=10)
        assert {h.name for h in found.hits} == {post, comment}, found
        return {h.name: h for h in found.hits}

    by_name = eventually(hits, timeout=60, message="the long post and comment indexed")
    expected = {post: (f"Long read {w}", shown(body, 160)), comment: (shown(reply, 80), shown(reply, 160))}
    expected = {name: (title, snippet.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")) for name, (title, snippet) in expected.items()}
    assert {name: (h.title, h.snippet) for name, h in by_name.items()} == expected
    assert "&lt;marks&gt;" in by_name[post].snippet  # the start as written, HTML-escaped like every snippet

    # The same documents as an older projection wrote them: no excerpt.
    es, ids = platform.es, {"posts": post.split("/", 1)[1], "comments": comment.split("/", 1)[1]}
    for projection, doc_id in ids.items():
        alias = platform.alias(projection)
        stored = es.get(index=alias, id=doc_id)
        source = {k: v for k, v in stored["_source"].items() if k != "excerpt"}
        assert source != stored["_source"]  # it had one
        es.index(index=stored["_index"], id=doc_id, document=source, refresh="wait_for", version=stored["_version"] + 1, version_type="external")
    assert {name: (h.title, h.snippet) for name, h in hits().items()} == expected

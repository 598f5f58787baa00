"""Relevance and bad page tokens through the real gRPC Search API, Kafka and Elasticsearch:
English stemming by Elasticsearch's `english` analyzer, exact words above stems, an exact
title above a passing mention, accent folding on wiki pages, media items and comments (both
ways), expired and altered page tokens, and new fields added to an index that already exists."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.profiles.v1 import profiles_pb2_grpc as prg
from watercooler.projection import es_client
from watercooler.rpc import encode_page_token
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
V = pb.Audience
ACCENTS = str.maketrans("aeiou", "áéíóú")


def word() -> str:
    """An invented word (z + three consonant-vowel pairs), so this run's documents are the only matches."""
    return "z" + "".join(random.choice("bcdfghjklmnpqrstvwx") + random.choice("aeiou") for _ in range(3))


def accented(w: str) -> str:
    # Three accents: more than the one edit a typo match allows a 7-letter word, so only
    # folding (not typo tolerance) can match the accented and plain forms.
    return w.translate(ACCENTS)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world(platform):
    profiles = platform.stub(prg.ProfileServiceStub, "profiles")
    posts = platform.stub(pg.PostServiceStub, "posts")
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    media = platform.stub(mg.MediaServiceStub, "posts")
    me = unique("e")
    profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=me, display_name="Rel Tester", department="QA")), metadata=platform.metadata())
    platform.accept_guidelines(me)
    md = platform.metadata(me, "employee")
    w = {k: word() for k in ("stem", "title", "page", "media", "comment", "page_plain", "media_plain", "comment_plain")}

    blog = posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Log", visibility=V.INTERNAL)), metadata=md).name

    def post(title: str, body: str) -> str:
        name = posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title=title, body=body, visibility=V.INTERNAL)), metadata=md).name
        posts.PublishPost(pb.PublishPostRequest(name=name), metadata=md)
        return name

    # Stemming: "running" is exact in one post, "runs" (same stem) in another, "ran" (another stem) in a third.
    exact = post("Notes", f"Running {w['stem']} drills is fun.")
    stem_only = post("Training log", f"She runs {w['stem']} drills every morning.")
    other = post("Diary", f"He ran {w['stem']} drills once.")

    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Rel", visibility=wp.INTERNAL)), metadata=md).name

    def page(title: str, body: str) -> str:
        return wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=title, body=body)), metadata=md).name

    def item(title: str, description: str) -> str:
        return media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
            title=title, description=description, kind=mp.MediaItem.VIDEO, size_bytes=1, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri="s3://b/x")), metadata=md).name

    def comment(body: str) -> str:
        return posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=other, body=body)), metadata=md).name

    filler = " ".join(["Minutes of the weekly meeting, with many other topics discussed at length."] * 6)
    titled = page(f"{w['title'].title()} Handbook", "Start here.")
    mention = page("Meeting minutes", f"{filler} Someone mentioned {w['title']} once. {filler}")
    docs = {
        "exact": exact, "stem_only": stem_only, "other": other, "titled": titled, "mention": mention,
        # Accented in the document, searched without accents ...
        "page": page(f"Guide {accented(w['page'])}", "Connected systems."),
        "media": item(f"Démo {accented(w['media'])}", "A recording."),
        "comment": comment(f"Très {accented(w['comment'])}!"),
        # ... and plain in the document, searched with accents.
        "page_plain": page(f"Guide {w['page_plain']}", "x"),
        "media_plain": item(f"Demo {w['media_plain']}", "y"),
        "comment_plain": comment(f"Tres {w['comment_plain']}"),
    }
    search = platform.stub(sg.SearchServiceStub, "search")

    def indexed():
        for key in ("stem", "title", "page", "media", "comment", "page_plain", "media_plain", "comment_plain"):
            q = accented(w[key]) if key in ("page", "media", "comment") else w[key]  # as the document has it
            assert search.Search(sp.SearchRequest(query=q), metadata=md).hits, key
        return True

    eventually(indexed, timeout=60, message="documents indexed")
    return dict(md=md, w=w, search=search, **docs)


def names(world, **kwargs) -> list[str]:
    return [h.name for h in world["search"].Search(sp.SearchRequest(**kwargs), metadata=world["md"]).hits]


def test_stemming_finds_inflections_and_exact_words_rank_first(world):
    w = world["w"]["stem"]
    # "running" finds "runs" through the stem, below the exact word; "ran" is another stem.
    assert names(world, query=f"running {w}", kinds=["post"]) == [world["exact"], world["stem_only"]]
    assert names(world, query=f"runs {w}", kinds=["post"]) == [world["stem_only"], world["exact"]]
    # "run" finds both through the stem; "ran", one typo away, is matched only when the words
    # themselves match nothing (typo matching on every query was most of Search's cost).
    hits = names(world, query=f"{w} run")
    assert set(hits) == {world["exact"], world["stem_only"]}
    assert names(world, query=f"{w} rin") == [world["other"]]
    # The per-kind SearchPosts analyses the same way.
    posts = world["search"].SearchPosts(sp.SearchPostsRequest(query=f"RUNNING {w}"), metadata=world["md"]).posts
    assert [p.name for p in posts] == [world["exact"], world["stem_only"]]
    # Stems reach wiki pages too: "connecting" finds "Connected systems."
    assert names(world, query=f"connecting {accented(world['w']['page'])}") == [world["page"]]


def test_exact_title_beats_a_passing_mention(world):
    w = world["w"]["title"]
    assert names(world, query=w, kinds=["wiki_page"]) == [world["titled"], world["mention"]]
    assert names(world, query=w)[:2] == [world["titled"], world["mention"]]
    # A stem-only title match ("handbooks") still finds the page by its title.
    assert names(world, query=f"{w} handbooks") == [world["titled"]]


@pytest.mark.parametrize("kind, search_kind", [("page", "wiki_page"), ("media", "media"), ("comment", "comment")])
def test_accents_are_folded_both_ways_on_pages_media_and_comments(world, kind, search_kind):
    plain = world["w"][kind]
    # The document has the accents, the query has none (and shouting does not matter).
    assert names(world, query=plain, kinds=[search_kind]) == [world[kind]]
    assert names(world, query=plain.upper()) == [world[kind]]
    # The document has none, the query has them.
    plain_doc = world["w"][f"{kind}_plain"]
    assert names(world, query=accented(plain_doc), kinds=[search_kind]) == [world[f"{kind}_plain"]]


def _token_payload(token: str) -> dict:
    body = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_typos_one_edit_up_to_seven_letters_two_from_eight_and_in_a_bio(platform, world):
    """Search forgives one wrong letter in a word of 3 to 7 letters and two from 8 (two edits
    on shorter words cost Elasticsearch far more and match mostly noise); a person's bio, which
    has no folded copy, is searched for typos too."""
    posts, profiles = platform.stub(pg.PostServiceStub, "posts"), platform.stub(prg.ProfileServiceStub, "profiles")
    md = world["md"]
    seven, nine, in_bio = word(), word() + "ba", word()
    blog = posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Typos", visibility=V.INTERNAL)), metadata=md).name
    post = posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title="Spelling", body=f"{seven} and {nine}", visibility=V.INTERNAL)), metadata=md).name
    posts.PublishPost(pb.PublishPostRequest(name=post), metadata=md)
    person = profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(
        employee_id=unique("e"), display_name="Bio Person", department="QA", bio=f"Knows {in_bio} well.")), metadata=platform.metadata()).name

    def wrong(w: str, *positions: int) -> str:
        letters = list(w)
        for i in positions:
            letters[i] = "y" if letters[i] != "y" else "w"  # never in word(): consonants bcd..x, vowels aeiou
        return "".join(letters)

    eventually(lambda: names(world, query=nine) and names(world, query=in_bio, kinds=["person"]), timeout=60, message="indexed")
    assert names(world, query=wrong(seven, 3)) == [post]
    assert names(world, query=wrong(seven, 2, 4)) == []
    assert names(world, query=wrong(nine, 2, 6)) == [post]
    assert names(world, query=wrong(in_bio, 3), kinds=["person"]) == [person]
    # The snippets mark the word each typo stood for, in the text as written.
    [hit] = world["search"].Search(sp.SearchRequest(query=wrong(seven, 3)), metadata=world["md"]).hits
    assert f"<em>{seven}</em> and {nine}" in hit.snippet
    [hit] = world["search"].Search(sp.SearchRequest(query=wrong(nine, 2, 6)), metadata=world["md"]).hits
    assert f"{seven} and <em>{nine}</em>" in hit.snippet
    [hit] = world["search"].Search(sp.SearchRequest(query=wrong(in_bio, 3), kinds=["person"]), metadata=world["md"]).hits
    assert f"Knows <em>{in_bio}</em> well." in hit.snippet


def test_expired_and_altered_page_tokens_are_invalid_argument(world):
    w = world["w"]["stem"]
    request = dict(query=f"{w} drills", kinds=["post"], page_size=1)
    first = world["search"].Search(sp.SearchRequest(**request), metadata=world["md"])
    assert first.next_page_token
    payload = _token_payload(first.next_page_token)
    # This process signs with the servers' key (same environment): a token re-signed with a fresh
    # issue time is accepted, the same one issued two hours ago has expired.
    fresh = encode_page_token(payload["p"], payload["q"])
    assert names(world, **request, page_token=fresh) == names(world, **request, page_token=first.next_page_token)
    expired = encode_page_token(payload["p"], payload["q"], issued_at=time.time() - 7200)
    error = rpc_error(world["search"].Search, sp.SearchRequest(**request, page_token=expired), metadata=world["md"])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["page_token"] and "expired" in error.details()
    # Garbled, or edited to look newer without the key: not a token the service issued.
    stale = expired.split(".")
    renewed = base64.urlsafe_b64encode(json.dumps({**payload, "t": int(time.time())}, separators=(",", ":")).encode()).decode().rstrip("=")
    for bad in (first.next_page_token[:-3] + "xyz", f"{renewed}.{stale[1]}", "garbage!"):
        error = rpc_error(world["search"].Search, sp.SearchRequest(**request, page_token=bad), metadata=world["md"])
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["page_token"], bad
    # The per-kind searches use the same tokens.
    per_kind = world["search"].SearchPosts(sp.SearchPostsRequest(query=w, page_size=1), metadata=world["md"]).next_page_token
    payload = _token_payload(per_kind)
    expired = encode_page_token(payload["p"], payload["q"], issued_at=time.time() - 7200)
    error = rpc_error(world["search"].SearchPosts, sp.SearchPostsRequest(query=w, page_size=1, page_token=expired), metadata=world["md"])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["page_token"] and "expired" in error.details()


def test_an_existing_index_gains_new_fields_on_start(platform):
    """A projection whose mapping grew (as the content projections did with `lang`) adds the
    fields to the index it already has, so documents carrying them are not refused."""
    from services.search.readmodels.projections.comments import CommentsProjection

    class Upgraded(CommentsProjection):
        name = unique("relevance-upgrade-")

    projection = Upgraded(platform.settings)
    old = projection.index_body()
    for field in ("language", "lang"):
        del old["mappings"]["properties"][field]
    index = f"{projection.alias}-v1-initial"
    platform.es.indices.create(index=index, **old, aliases={projection.alias: {"is_write_index": True}})
    platform.es.index(index=projection.alias, id="before", document={"name": "comments/before", "body": "Running"}, refresh=True)

    async def start() -> tuple[str, list[str]]:
        es = es_client(platform.settings)
        try:
            return await projection.ensure_index(es), await projection.add_new_fields(es, index)
        finally:
            await es.close()

    try:
        assert asyncio.run(start()) == (index, [])  # added on the first call; nothing left the second time
        properties = platform.es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert properties["language"] == {"type": "keyword"} and properties["lang"]["properties"]["en"]["properties"]["body"] == {"type": "text", "analyzer": "english", "index_options": "offsets"}
        platform.es.index(index=projection.alias, id="after", document={"name": "comments/after", "body": "Runs", "language": "en", "lang": {"en": {"body": "Runs"}}}, refresh=True)
        found = platform.es.search(index=projection.alias, query={"match": {"lang.en.body": "run"}})["hits"]["hits"]
        assert [h["_id"] for h in found] == ["after"]  # the older document lacks the field until a reindex
    finally:
        platform.es.indices.delete(index=index, ignore_unavailable=True)

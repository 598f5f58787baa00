"""The company's languages, through the real gRPC API, Kafka and Elasticsearch: an item is
indexed in its own language (detected), a query is matched in the caller's languages and its
own, accents never matter (text, tags, expertise, a person's title), snippets are the engine's
highlights, and odd input gets a result or INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import random
import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.profiles.v1 import profiles_pb2_grpc as prg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
V = pb.Audience


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def word() -> str:
    """An invented word, so this run's items are the only ones carrying it."""
    return "z" + "".join(random.choice("bcdfghjklmnpqrstvwx") + random.choice("aeiou") for _ in range(3))


@pytest.fixture(scope="module")
def world(platform):
    profiles = platform.stub(prg.ProfileServiceStub, "profiles")
    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")

    def person(languages=(), **fields) -> tuple[str, tuple]:
        employee = unique("e")
        profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=employee, display_name=fields.pop("display_name", "Lang Tester"),
                                                                             department="QA", languages=list(languages), **fields)), metadata=platform.metadata())
        return employee, platform.author(employee)  # accepts the guidelines: their profile exists

    _, as_monolingual = person()  # no profile languages: a query is matched in English and its own language
    _, as_european = person(["de-DE", "fr"])
    tag = f"café{word()}"
    engineer, _ = person(display_name=f"Inés {word().title()}", title="Ingeniería de Datos", bio="Diseña canalizaciones en Bogotá", expertise=[f"Crème{tag}"])
    blog = posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Idiomas", visibility=V.INTERNAL)), metadata=as_monolingual).name

    def post(title: str, body: str, tags=()) -> str:
        name = posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title=title, body=body, tags=list(tags), visibility=V.INTERNAL)), metadata=as_monolingual).name
        posts.PublishPost(pb.PublishPostRequest(name=name), metadata=as_monolingual)
        return name

    items = {
        "es": post("Canción del verano", "Esta canción suena en todas las radios de la ciudad durante el verano."),
        "de": post("Unser Haus", "Das alte Haus am See wird im nächsten Sommer gründlich renoviert."),
        "fr": post("Le cheval", "Le cheval de mon grand-père court très vite dans le pré derrière la ferme."),
        "es_cafe": post("Nos vemos", "Nos vemos en el café de la esquina mañana por la tarde, después del trabajo.", tags=[tag]),
        "en_cafe": post("Meet up", "Meet me at the cafe on the corner tomorrow afternoon, after work."),
    }

    def indexed():
        found = search.Search(sp.SearchRequest(query="", blog=blog, page_size=20), metadata=as_monolingual)
        assert {h.name for h in found.hits} == set(items.values())
        assert search.SearchPeople(sp.SearchPeopleRequest(query="ines"), metadata=as_monolingual).people
        return True

    eventually(indexed, timeout=90, message="items indexed")
    return dict(search=search, blog=blog, tag=tag, engineer=engineer, mono=as_monolingual, euro=as_european, **items)


def hits(world, md, **kwargs) -> list[sp.SearchHit]:
    return list(world["search"].Search(sp.SearchRequest(blog=world["blog"], **kwargs), metadata=md).hits)


def names(world, md, **kwargs) -> list[str]:
    return [h.name for h in hits(world, md, **kwargs)]


def test_an_inflected_form_finds_an_item_in_its_language(world):
    # "canciones" is told Spanish by the detector: matched in Spanish as well as in English.
    assert names(world, world["mono"], query="canciones") == [world["es"]]
    # German and French: the caller's profile languages.
    assert names(world, world["euro"], query="Häuser") == [world["de"]]
    assert names(world, world["euro"], query="chevaux") == [world["fr"]]
    # The per-kind SearchPosts matches in the query's language too.
    found = world["search"].SearchPosts(sp.SearchPostsRequest(query="canciones", blog=world["blog"]), metadata=world["mono"]).posts
    assert [p.name for p in found] == [world["es"]]


def test_accents_do_not_matter_either_way(world):
    expected = {world["es_cafe"], world["en_cafe"]}
    assert set(names(world, world["mono"], query="cafe")) == expected
    assert set(names(world, world["mono"], query="CAFÉ")) == expected


def test_snippets_are_the_engines_highlights_of_the_matched_form(world):
    [hit] = hits(world, world["mono"], query="canciones")
    # The Spanish analyzer matched "canción" for "canciones": the engine marks the word as written.
    assert "<em>canción</em>" in hit.snippet.lower() and "canciones" not in hit.snippet
    [hit] = hits(world, world["euro"], query="Häuser")
    assert "<em>Haus</em>" in hit.snippet
    found = {h.name: h.snippet for h in hits(world, world["mono"], query="cafe")}
    assert "<em>café</em>" in found[world["es_cafe"]] and "<em>cafe</em>" in found[world["en_cafe"]]


def test_ranked_orders_show_the_engines_highlights_of_the_page(world, platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    posts.RatePost(pb.RatePostRequest(post=world["es"], value=5), metadata=world["euro"])

    def ranked():
        found = hits(world, world["mono"], query="canciones", order_by="top_rated")
        assert [(h.name, h.score) for h in found] == [(world["es"], 5.0)]
        return found[0]

    hit = eventually(ranked, timeout=60, message="rating indexed")
    assert "<em>canción</em>" in hit.snippet.lower()


def test_accented_tags_are_filtered_and_suggested_without_accents(world):
    tag = world["tag"]
    plain = tag.replace("é", "e")
    for typed in (tag, plain, plain.upper()):
        assert names(world, world["mono"], query="", tags=[typed]) == [world["es_cafe"]], typed
        suggested = world["search"].Suggest(sp.SuggestRequest(prefix=typed[:-2], kinds=["tags"]), metadata=world["mono"]).suggestions
        assert [s.text for s in suggested] == [plain], typed
    # The facet keeps the tag as it was written.
    facets = world["search"].Search(sp.SearchRequest(query="", blog=world["blog"], tags=[plain], read_mask=FieldMask(paths=["facets"])), metadata=world["mono"]).facets
    assert [v.value for f in facets if f.field == "tags" for v in f.values] == [tag]


def test_a_persons_title_bio_and_expertise_are_matched_without_accents(world):
    person = f"profiles/{world['engineer']}"
    assert [h.name for h in world["search"].Search(sp.SearchRequest(query="ingenieria", kinds=["person"]), metadata=world["mono"]).hits] == [person]
    assert [h.name for h in world["search"].Search(sp.SearchRequest(query="bogota", kinds=["person"]), metadata=world["mono"]).hits] == [person]
    expertise = "creme" + world["tag"].replace("é", "e")
    found = world["search"].SearchPeople(sp.SearchPeopleRequest(expertise=expertise), metadata=world["mono"]).people
    assert [p.profile for p in found] == [person]


ODD_QUERIES = {
    "emoji": "🙂🚀 café 🎉",
    "right-to-left": "مرحبا بالعالم",
    "only stop words": "the of and a",
    "only Spanish stop words": "de la el y",
    "mixed scripts": "café Москва 東京 canción हिन्दी",
    "punctuation": "!!! ... ??? (*) \"",
    "combining marks": "cafe\u0301 n\u0303",
}


@pytest.mark.parametrize("what", list(ODD_QUERIES))
def test_odd_queries_get_a_result_never_an_engine_error(world, what):
    query = ODD_QUERIES[what]
    search = world["search"]
    for md in (world["mono"], world["euro"]):
        search.Search(sp.SearchRequest(query=query), metadata=md)
        search.Search(sp.SearchRequest(query=query, blog=world["blog"]), metadata=md)
        search.SearchPosts(sp.SearchPostsRequest(query=query), metadata=md)
        search.SearchPeople(sp.SearchPeopleRequest(query=query, expertise=query), metadata=md)
        search.FindExperts(sp.FindExpertsRequest(topic=query), metadata=md)
        search.Suggest(sp.SuggestRequest(prefix=query[:64]), metadata=md)


def test_ten_thousand_characters_are_invalid_argument_naming_the_field(world):
    long = "canción " * 1250
    for call, request, field in (
        (world["search"].Search, sp.SearchRequest(query=long), "query"),
        (world["search"].SearchPosts, sp.SearchPostsRequest(query=long), "query"),
        (world["search"].SearchPeople, sp.SearchPeopleRequest(query=long), "query"),
        (world["search"].Suggest, sp.SuggestRequest(prefix=long), "prefix"),
        (world["search"].FindExperts, sp.FindExpertsRequest(topic=long), "topic"),
    ):
        error = rpc_error(call, request, metadata=world["mono"])
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == [field], (call, error.details())


def test_the_language_is_stored_and_results_are_the_same_after_a_reindex(world, platform):
    from tests.integration.test_cli import cli

    stored = platform.es.get(index=platform.settings.index_alias("posts"), id=world["es"].split("/", 1)[1])["_source"]
    assert stored["language"] == "es" and list(stored["lang"]) == ["es"]

    def seen() -> dict:
        out = {q: names(world, md, query=q) for q, md in (("canciones", world["mono"]), ("cafe", world["mono"]), ("Häuser", world["euro"]), ("", world["mono"]))}
        out["tags"] = [s.text for s in world["search"].Suggest(sp.SuggestRequest(prefix=world["tag"][:5], kinds=["tags"]), metadata=world["mono"]).suggestions]
        out["people"] = [h.name for h in world["search"].Search(sp.SearchRequest(query="ingenieria", kinds=["person"]), metadata=world["mono"]).hits]
        return out

    before = seen()
    result = cli("reindex", "posts", "people")
    assert result.returncode == 0, result.stderr
    assert seen() == before

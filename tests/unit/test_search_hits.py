"""A Search hit as the search service builds it from Elasticsearch's: its kind from the index it
came from, and its create time from the document's ``created_at``, whatever form that takes."""

from __future__ import annotations

import datetime as dt

import pytest

from services.search.unified import KINDS, Search, kind_of_hit
from watercooler.config import Settings
from watercooler.search.v1 import search_pb2 as sp


def test_the_kind_of_a_hit_is_read_from_its_index_in_each_deployment():
    for namespace in ("a", "b"):
        settings = Settings(namespace=namespace)
        for kind, (projection, _) in KINDS.items():
            index = f"{settings.index_alias(projection)}-v3-initial"
            doc = {"kind": "blog" if kind == "post" else "micro"}
            assert kind_of_hit(settings, {"_index": index, "_source": doc}) == kind
        # Another deployment's index, or an alias name without a version, is no kind of this one.
        other = Settings(namespace="c").index_alias("wiki")
        assert kind_of_hit(settings, {"_index": f"{other}-v3-initial", "_source": {}}) == "unknown"
        assert kind_of_hit(settings, {"_index": settings.index_alias("wiki"), "_source": {}}) == "unknown"


@pytest.mark.parametrize("created, expected", [
    ("2026-12-07T05:57:28.914930+00:00", dt.datetime(2026, 12, 7, 5, 57, 28, 914930)),
    ("2026-12-07T05:57:28Z", dt.datetime(2026, 12, 7, 5, 57, 28)),
    ("2026-12-07T07:57:28.5+02:00", dt.datetime(2026, 12, 7, 5, 57, 28, 500000)),
    ("1969-12-31T23:59:59.25+00:00", dt.datetime(1969, 12, 31, 23, 59, 59, 250000)),
    ("2026-12-07T05:57:28.000001", dt.datetime(2026, 12, 7, 5, 57, 28, 1)),  # no zone: UTC
])
def test_a_hits_create_time_is_its_documents_created_at_in_utc(created, expected):
    response = sp.SearchResponse()
    hit = {"_index": "x", "_id": "p1", "_source": {"name": "posts/p1", "author_id": "e1", "content": "hello", "created_at": created}}
    Search._add_hit(Search.__new__(Search), response, hit, "post", 1.0, [])
    assert response.hits[0].create_time.ToDatetime() == expected
    assert 0 <= response.hits[0].create_time.nanos < 1_000_000_000


def test_a_hit_without_created_at_has_no_create_time():
    response = sp.SearchResponse()
    Search._add_hit(Search.__new__(Search), response, {"_index": "x", "_id": "p1", "_source": {"name": "posts/p1", "author_id": "e1"}}, "post", 1.0, [])
    assert not response.hits[0].HasField("create_time")


# --- what a hit shows of a long text: the excerpt (services/search/readmodels/indices.py) --------
def _texts() -> list[str]:
    import random

    rng = random.Random(3)
    words = ["café", "roadmap", "x" * 300, "naïve", "東京", "", "a"]
    texts = ["", "   ", "short", " lead and trail ", "a\n\n\tb", "word " * 10_000, " " * 5_000 + "late start " * 50,
             "x" * 1_000, ("y" * 199) + " tail", ("z" * 200) + " tail", ("w" * 159) + " " + "v" * 10]
    for _ in range(300):
        texts.append("".join(rng.choice(words) + rng.choice([" ", "  ", "\n", "\t \n"]) for _ in range(rng.randint(0, 120))))
    return texts


def test_a_titles_and_a_snippets_cut_of_the_excerpt_is_the_cut_of_the_whole_text():
    from services.search.readmodels.indices import EXCERPT_CHARS, excerpt
    from services.search.unified import SNIPPET_CHARS, _short

    assert EXCERPT_CHARS > SNIPPET_CHARS  # both cuts are shorter than what is kept
    for text in _texts():
        kept = excerpt(text)
        assert len(kept) <= EXCERPT_CHARS
        assert kept == " ".join(text.split())[:EXCERPT_CHARS]
        for n in (80, SNIPPET_CHARS):
            assert _short(kept, n) == _short(text, n), (text[:60], n)


@pytest.mark.parametrize("kind", ["post", "micropost", "comment", "bookmark", "wiki_page", "media", "person", "community", "jam_idea", "jam_thread"])
def test_a_hit_is_described_alike_from_its_excerpt_and_from_its_whole_text(kind):
    from services.search.readmodels.indices import EXCERPT, excerpt
    from services.search.unified import TEXT_FIELDS, describe

    text = "Quarterly  roadmap\n\nreview " * 4_000  # about 100,000 characters
    source = {"name": "n/1", "author_id": "e1", "owner_id": "e1", "space_id": "s", "community_id": "c", "employee_id": "e1",
              "jam_id": "j", "idea_id": "i", "thread_id": "t", "kind": "blog" if kind == "post" else "micro"}
    whole = describe(kind, {"_id": "1", "_source": {**source, TEXT_FIELDS[kind]: text}})
    kept = describe(kind, {"_id": "1", "_source": {**source, EXCERPT: excerpt(text)}})
    assert len(whole["text"]) > 90_000 and len(kept["text"]) <= 200
    cut = {k: v for k, v in whole.items() if k != "text"}
    assert {k: v for k, v in kept.items() if k != "text"} == cut
    from services.search.unified import SNIPPET_CHARS, _short
    assert _short(kept["text"], SNIPPET_CHARS) == _short(whole["text"], SNIPPET_CHARS)


def test_every_projection_a_hit_describes_keeps_an_excerpt_of_its_text_and_an_erasure_empties_it():
    """Each content index maps the excerpt, each projection writes it from the text a hit shows,
    and wherever an erasure empties that text it empties the excerpt too (it is personal data)."""
    from services.search.readmodels.indices import EXCERPT
    from services.search.readmodels.projections import ALL
    from services.search.unified import KINDS, TEXT_FIELDS

    settings = Settings(namespace="t")
    projections = {p.name: p(settings) for p in ALL}
    for kind, field in TEXT_FIELDS.items():
        projection = projections[KINDS[kind][0]]
        properties = projection.index_body()["mappings"]["properties"]
        assert properties[EXCERPT] == {"type": "keyword", "index": False, "doc_values": False}, kind
        assert field in properties, (kind, field)
        # An erasure of the writer, as DocumentProjection.erase_people applies it to a stored document.
        source = {field: "secret words", EXCERPT: "secret words", "lang": {"en": {"body": "secret words"}}, "kind": "page", "title": "t",
                  **{name: "e1" for name in (*getattr(projection, "erased_by", ()), "author", "body_author")}}
        projection.tombstone(source, ["e1"])
        if source[field] == "":
            assert source[EXCERPT] == "", f"{projection.name} erases {field} but not its excerpt"



@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_hit_shows_the_same_from_the_fields_a_search_fetches_as_from_its_whole_document(kind):
    """A Search fetches only HIT_SOURCE_FIELDS of each hit (not a text, nor a member list): every
    field a hit is made of must be among them. The whole document here has every field its index
    maps, each with a value of its own, so a field read but not fetched changes the hit."""
    from services.search.readmodels.projections import ALL
    from services.search.unified import HIT_SOURCE_FIELDS, describe

    settings = Settings(namespace="t")
    projection = next(p(settings) for p in ALL if p.name == KINDS[kind][0])
    values = {"date": "2026-12-08T07:08:09.123456+00:00", "boolean": True, "long": 7, "integer": 7, "float": 0.5, "double": 0.5}
    whole = {name: values.get(spec.get("type"), f"{name}-value") for name, spec in projection.index_body()["mappings"]["properties"].items() if "properties" not in spec}
    whole["kind"] = {"post": "blog", "micropost": "micro", "wiki_page": "page", "jam_thread": "reply"}.get(kind, whole.get("kind"))
    fetched = {name: value for name, value in whole.items() if name in HIT_SOURCE_FIELDS}
    index = f"{settings.index_alias(KINDS[kind][0])}-v3-initial"
    hits = [{"_index": index, "_id": "d1", "_source": source} for source in (whole, fetched)]
    assert kind_of_hit(settings, hits[0]) == kind_of_hit(settings, hits[1]) == kind
    assert describe(kind, hits[0]) == describe(kind, hits[1])
    responses = [sp.SearchResponse(), sp.SearchResponse()]
    for response, hit in zip(responses, hits, strict=True):
        Search._add_hit(Search.__new__(Search), response, hit, kind, 1.0, [])
    assert responses[0] == responses[1] and responses[0].hits[0].create_time.seconds > 0

"""Search analysis declared to Elasticsearch (folded fields, each item's language, tags
normalised), the query and highlight built over it, the projections writing the language
copies, and page tokens that expire and detect tampering."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from types import SimpleNamespace

import pytest

from services.search import queries, unified
from services.search.queries import content_text_query
from services.search.readmodels.indices import classify_language
from services.search.readmodels.projections import ALL
from services.search.readmodels.projections.analysis import ANALYSIS, LANGUAGE_ANALYZERS, SURE_OF_LANGUAGE, detect_language, field_code, search_languages
from services.search.readmodels.projections.comments import CommentsProjection
from services.search.readmodels.projections.communities import CommunitiesProjection
from services.search.readmodels.projections.media import MediaProjection
from services.search.readmodels.projections.people import PeopleProjection
from services.search.readmodels.projections.posts import PostsProjection
from services.search.readmodels.projections.wiki import WikiProjection
from services.search.unified import highlight_request, snippet_fields, snippet_of, tag_pattern
from watercooler import text
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.rpc import decode_page_token, encode_page_token, page_token_ttl

CONTENT = ("posts", "comments", "bookmarks", "wiki", "media", "jam-ideas", "jam-threads", "communities")


def test_python_keeps_no_search_analysis():
    # Folding for matching, stemming and highlighting are Elasticsearch's now.
    assert not any(hasattr(text, name) for name in ("stemmed", "stem_words", "words", "highlight"))


def test_the_language_of_an_item_is_detected_offline():
    assert detect_language("La canción del verano suena en la radio") == "es"
    assert detect_language("Die Lieder des Sommers sind schön") == "de"
    assert detect_language("Les chansons de l'été passent à la radio") == "fr"
    assert detect_language("We ship the roadmap on Friday") == "en"
    assert detect_language("東京の会議は明日です") == "ja" and field_code("ja") == "cjk"
    # Too short or nothing to tell: no language (the item is indexed in the default one).
    assert detect_language("café") is None and detect_language("  ") is None and detect_language("🙂🙂") is None
    assert field_code("es-MX") == "es" and field_code("pt_BR") == "pt" and field_code("tlh") is None and field_code("") is None


def test_a_query_is_matched_in_the_default_the_callers_and_its_own_language():
    assert search_languages("canciones", ["de-CH", "xx"]) == ["en", "de", "es"]
    assert search_languages("roadmap") == ["en"]
    assert search_languages("the", ["en-GB"]) == ["en"]


def event(type_name: str, aggregate_id: str = "a1", **payload) -> SimpleNamespace:
    return SimpleNamespace(type_name=type_name, aggregate_id=aggregate_id, payload=SimpleNamespace(**payload),
                           occurred_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC), envelope=SimpleNamespace(aggregate_type="", event_type=type_name))


def test_projections_write_the_text_once_more_under_its_language_only():
    settings = Settings()
    post = PostsProjection(settings).apply(None, event("PostCreated", blog="b", author_id="e1", title="La canción", body="Las canciones del verano suenan en la radio",
                                                       tags=["Café"], visibility="INTERNAL", community="", classification=""))
    assert post["language"] == "es" and post["lang"] == {"es": {"title": "La canción", "body": "Las canciones del verano suenan en la radio"}}
    # Nothing folded or stemmed in Python: Elasticsearch copies and analyses the fields.
    assert not {"folded", "stemmed", "title_prefix"} & set(post)
    edited = PostsProjection(settings).apply(dict(post), event("PostEdited", title="Roadmap", body="We ship the new roadmap on Friday", tags=[],
                                                               visibility="INTERNAL", community="", revision=2, classification=""))
    assert edited["language"] == "en" and list(edited["lang"]) == ["en"]  # the Spanish copy is gone

    page = WikiProjection(settings).apply(None, event("PageCreated", space_id="s", title="Café", links=["Über uns"], body="Wir trinken jeden Morgen Kaffee im Büro", author="e1"))
    assert page["language"] == "de" and list(page["lang"]) == ["de"] and page["lang"]["de"]["body"].startswith("Wir trinken") and page["links"] == ["uber uns"]
    media = MediaProjection(settings).apply(None, event("MediaItemRegistered", owner="profiles/e1", title="Démo", description="", kind="VIDEO",
                                                        size_bytes=1, content_type="video/mp4", tags=[], visibility="INTERNAL", storage_uri="s3://x", classification=""))
    assert media["language"] == "en" and media["lang"] == {"en": {"title": "Démo"}}  # too short to tell: the default language
    comment = CommentsProjection(settings).apply(None, event("CommentCreated", target="posts/p", parent="", author_id="e1", body="Très bien, merci pour la présentation d'hier",
                                                             visibility="INTERNAL", community="", classification=""))
    assert comment["language"] == "fr" and comment["lang"] == {"fr": {"body": "Très bien, merci pour la présentation d'hier"}}
    community = CommunitiesProjection(settings).apply(None, event("CommunityCreated", community_id="c1", display_name="Café", description="", access="OPEN", owners=["e1"], members=["e1"]))
    assert "name_folded" not in community


def test_a_text_the_detector_is_not_sure_of_keeps_an_english_copy():
    # An invented word made this English sentence score as Dutch (0.71; about 1 in 100 such
    # words): indexed under Dutch only, it was missed by "runs" (the CI failure of 2026-12-06).
    post = PostsProjection(Settings()).apply(None, event("PostCreated", blog="b", author_id="e1", title="Notes", body="Running zwepeko drills is fun.",
                                                         tags=[], visibility="INTERNAL", community="", classification=""))
    assert post["language"] == "nl" and classify_language("Notes\nRunning zwepeko drills is fun.")[1] < SURE_OF_LANGUAGE
    assert post["lang"] == {"en": {"title": "Notes", "body": "Running zwepeko drills is fun."}, "nl": {"title": "Notes", "body": "Running zwepeko drills is fun."}}
    # A text surely in another language is analysed in it alone: an English copy would let English
    # stems match it as well as the English items (the judged set's false friends, "kind").
    german = PostsProjection(Settings()).apply(None, event("PostCreated", blog="b", author_id="e1", title="Das Kind", body="Das Kind spielt im Garten mit seinem Hund",
                                                           tags=[], visibility="INTERNAL", community="", classification=""))
    assert german["language"] == "de" and list(german["lang"]) == ["de"]


def test_every_searched_field_is_analysed_by_elasticsearch_without_case_or_accents():
    settings = Settings()
    for projection in ALL:
        body = projection(settings).index_body()
        props = body["mappings"]["properties"]
        if projection.name not in (*CONTENT, "people"):
            continue
        assert body["settings"]["analysis"] == ANALYSIS, projection.name
        assert not {"stemmed"} & set(props), projection.name
        for name in ("title", "content", "body", "notes", "description", "display_name", "bio"):
            if name in props:
                assert props[name]["analyzer"] == "folded", (projection.name, name)
        if projection.name in CONTENT:
            combined = "text_folded" if projection.name.startswith("jam-") else "folded"
            assert props[combined] == {"type": "text", "analyzer": "folded"}, projection.name
            assert props["language"] == {"type": "keyword"}
            languages = props["lang"]["properties"]
            assert {code: next(iter(fields["properties"].values()))["analyzer"] for code, fields in languages.items()} == LANGUAGE_ANALYZERS
        if "tags" in props:
            assert props["tags"]["fields"]["folded"] == {"type": "keyword", "normalizer": "folded"}, projection.name
    people = PeopleProjection(settings).index_body()["mappings"]["properties"]
    assert people["expertise"] == {"type": "keyword", "normalizer": "folded"}
    assert people["display_name"]["copy_to"] == ["name_folded"]
    assert ANALYSIS["analyzer"]["folded"] == {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}
    assert ANALYSIS["normalizer"]["folded"] == {"type": "custom", "filter": ["lowercase", "asciifolding"]}


def test_changed_projections_have_a_new_schema_version():
    # `make run` rebuilds an index whose stored schema version is older than its projection's.
    versions = {projection.name: projection.schema_version for projection in ALL}
    assert {name: versions[name] for name in (*CONTENT, "people")} == {
        "posts": 4, "comments": 5, "bookmarks": 4, "wiki": 4, "media": 4, "jam-ideas": 3, "jam-threads": 3, "communities": 3, "people": 3}


def test_every_field_a_snippet_comes_from_keeps_its_offsets_for_the_highlighter():
    # Without offsets in the postings the unified highlighter analyses each hit's text again.
    from services.search.unified import SNIPPET_TEXTS, SNIPPET_TITLES

    settings = Settings()
    checked = 0
    for projection in ALL:
        if projection.name not in (*CONTENT, "people"):
            continue
        props = projection(settings).index_body()["mappings"]["properties"]
        for field in (*SNIPPET_TEXTS, *SNIPPET_TITLES):
            if props.get(field, {}).get("type") == "text":
                assert props[field].get("index_options") == "offsets", (projection.name, field)
                checked += 1
        for code, parts in props.get("lang", {}).get("properties", {}).items():
            for part, mapping in parts["properties"].items():
                assert mapping.get("index_options") == "offsets", (projection.name, code, part)
                checked += 1
    assert checked > 100  # every content projection's texts and language copies were seen


def test_query_tiers_rank_exact_above_inflections_above_typos():
    should = content_text_query("Café Runs", raw_fields=("title^3",), languages=["en", "es"])["bool"]["should"]
    boosts = [(c["multi_match"].get("type", "best_fields"), tuple(c["multi_match"]["fields"]), c["multi_match"]["boost"]) for c in should]
    assert boosts == [
        ("phrase", ("folded", "title^3"), 4.0), ("best_fields", ("folded", "title^3"), 2.0),
        ("cross_fields", ("lang.en.title^3", "lang.en.body", "lang.es.title^3", "lang.es.body"), 1.0),
        ("best_fields", ("folded", "title^3"), 0.5),
    ]
    # The text goes as typed: Elasticsearch analyses it per field.
    assert {c["multi_match"]["query"] for c in should} == {"Café Runs"}
    assert should[-1]["multi_match"]["fuzziness"] == "AUTO:3,8"
    # Query syntax is only ever a match value.
    assert all("query_string" not in json.dumps(c) for c in should)
    assert len(content_text_query("x", typos=False)["bool"]["should"]) == 3


def test_the_typo_fields_each_index_is_asked_for_are_those_it_maps():
    """A typo pass asks each index's term suggester for the words nearest the typed ones, in the
    typo fields that index maps: one it lacks would fail the ask, one left out would go unmarked."""
    settings = Settings()
    typo_fields = {field.split("^")[0] for field in unified.TYPO_FIELDS}
    kept = {projection.name: projection(settings).index_body()["mappings"]["properties"] for projection in ALL}
    searched = {projection for projection, _ in unified.KINDS.values()}
    assert set(unified.TYPO_FIELDS_OF) == searched
    for projection in searched:
        assert set(unified.TYPO_FIELDS_OF[projection]) == typo_fields & set(kept[projection]), projection


def test_an_index_refusing_the_nearest_words_ask_only_leaves_its_words_unmarked():
    """During a rolling upgrade an index built before a typo field existed refuses the term
    suggester; the typo pass's Search goes on with the other indices' words (only marks)."""
    import asyncio

    asked: list = []

    class Engine:
        async def msearch(self, searches):
            asked.append(searches)
            return {"responses": [
                {"error": {"type": "illegal_argument_exception", "reason": "no mapping found for field [name_folded]"}, "status": 400},
                {"suggest": {"folded-0": [{"text": "kafak", "options": [{"text": "kafka", "score": 0.8, "freq": 3}]}]}},
            ]}

    search = unified.Search(Engine(), Settings())
    assert asyncio.run(search._nearest_words(["person", "post"], "kafak on")) == ["kafka"]  # "on": no edits allowed, not asked
    [operations] = asked
    assert [op["index"] for op in operations[0::2]] == [Settings().index_alias("people"), Settings().index_alias("posts")]
    people, posts = operations[1::2]
    assert sorted(people["suggest"]) == ["bio-0", "name_folded-0"] and sorted(posts["suggest"]) == ["folded-0"]
    assert posts["suggest"]["folded-0"]["term"] | {"field": None} == {
        "field": None, "suggest_mode": "always", "size": 10, "max_edits": 1, "prefix_length": 1, "min_word_length": 3}


def test_typo_edits_are_elasticsearchs_auto_3_8():
    assert queries.TYPO_FUZZINESS == "AUTO:3,8"
    assert [queries.typo_edits("x" * n) for n in range(1, 11)] == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]


def test_snippets_are_the_engines_highlights_of_the_text_in_the_languages_searched():
    request = highlight_request("canciones", ["en", "es"])
    assert request["encoder"] == "html" and request["number_of_fragments"] == 1 and request["max_analyzed_offset"] > 0
    assert list(request["fields"]) == snippet_fields(["en", "es"]) == [
        "lang.en.body", "lang.es.body", "content", "body", "notes", "description", "bio", "lang.en.title", "lang.es.title", "title", "display_name"]
    # After a typo pass the index's nearest words are marked too, never through a fuzzy query
    # (the highlighter would run its automaton over a field's every term for each hit).
    typo = json.dumps(highlight_request("cancoines", ["en"], nearest=["canciones", "cancion"])["highlight_query"])
    assert "fuzziness" not in typo and "cancoines canciones cancion" in typo
    hit = {"_source": {}, "highlight": {"title": ["La <em>canción</em>"], "lang.es.body": ["Las <em>canciones</em>   del\nverano"]}}
    assert snippet_of(hit, snippet_fields(["es"]), "fallback") == "Las <em>canciones</em> del verano"
    # Nothing highlighted (no words, or listing): the start of the text, escaped.
    assert snippet_of({"_source": {}}, snippet_fields(["en"]), "<b>x</b> & co") == "&lt;b&gt;x&lt;/b&gt; &amp; co"


def test_a_tag_prefix_matches_the_folded_tags_whatever_accents_were_typed():
    import re

    for typed, tag in (("caf", "cafe"), ("café", "cafe"), ("straß", "strasse"), ("c++", "c++"), ("москва", "москва")):
        assert re.fullmatch(tag_pattern(typed), tag), (typed, tag)
    assert not re.fullmatch(tag_pattern("café"), "cab")
    assert not re.fullmatch(tag_pattern("москва"), "moskva")


# --- page tokens ------------------------------------------------------------------------------------
def test_page_token_round_trip_binding_and_issue_time():
    now = time.time()
    token = encode_page_token([1.5, "abc", 3], "query-a")
    assert decode_page_token(token, "query-a") == [1.5, "abc", 3]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert abs(payload["t"] - now) < 5
    with pytest.raises(InvalidArgument) as err:
        decode_page_token(token, "query-b")
    assert err.value.field == "page_token" and "different query" in str(err.value)


def test_page_tokens_expire(monkeypatch):
    monkeypatch.delenv("WC_PAGE_TOKEN_TTL_SECONDS", raising=False)
    assert page_token_ttl() == 3600
    old = encode_page_token(["x"], "q", issued_at=time.time() - 3601)
    with pytest.raises(InvalidArgument) as err:
        decode_page_token(old, "q")
    assert err.value.field == "page_token" and "expired" in str(err.value)
    fresh = encode_page_token(["x"], "q", issued_at=time.time() - 3500)
    assert decode_page_token(fresh, "q") == ["x"]
    monkeypatch.setenv("WC_PAGE_TOKEN_TTL_SECONDS", "60")
    with pytest.raises(InvalidArgument):
        decode_page_token(fresh, "q")
    assert decode_page_token(fresh, "q", now=time.time() - 3500 + 59) == ["x"]
    monkeypatch.setenv("WC_PAGE_TOKEN_TTL_SECONDS", "soon")
    assert page_token_ttl() == 3600  # a bad setting keeps the default rather than failing requests


def test_altered_or_garbled_page_tokens_are_rejected(monkeypatch):
    token = encode_page_token([10, "n"], "q")
    body, tag = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    # Moving the issue time forward (to dodge expiry) or the position breaks the tag.
    for changed in ({**payload, "t": payload["t"] + 7200}, {**payload, "p": [99999, "n"]}):
        forged = base64.urlsafe_b64encode(json.dumps(changed, separators=(",", ":")).encode()).decode().rstrip("=") + "." + tag
        with pytest.raises(InvalidArgument) as err:
            decode_page_token(forged, "q")
        assert err.value.field == "page_token" and "not a token this service issued" in str(err.value)
    for garbage in ("%%%garbage", "garbage!", "a.b", "a.b.c", body, f"{body}.", "." + tag, "x" * 9000, token[:-2], token + "A"):
        with pytest.raises(InvalidArgument) as err:
            decode_page_token(garbage, "q")
        assert err.value.field == "page_token", garbage
    # A token from a server with another key is not ours either.
    monkeypatch.setenv("WC_PAGE_TOKEN_SECRET", "another deployment")
    with pytest.raises(InvalidArgument):
        decode_page_token(token, "q")
    # Issued in the future (beyond clock skew): not ours.
    with pytest.raises(InvalidArgument):
        decode_page_token(encode_page_token([1], "q", issued_at=time.time() + 3600), "q")

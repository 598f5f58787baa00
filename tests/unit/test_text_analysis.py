"""Search analysis done in Python (folding + English stemming), the query built from it, the
projections writing it, and page tokens that expire and detect tampering."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from types import SimpleNamespace

import pytest
from snowballstemmer.english_stemmer import EnglishStemmer

from services.search.projections import ALL
from services.search.projections.comments import CommentsProjection
from services.search.projections.media import MediaProjection
from services.search.projections.posts import PostsProjection
from services.search.projections.wiki import WikiProjection
from services.search.queries import content_text_query
from watercooler import text
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.rpc import decode_page_token, encode_page_token, page_token_ttl
from watercooler.text import fold, stem_words, stemmed, words


def test_inflections_share_a_stem():
    assert stem_words("running runs run") == ["run", "run", "run"]
    assert stem_words("Connections connected CONNECTING") == ["connect"] * 3
    assert stemmed("roadmaps") == stemmed("Roadmap") == "roadmap"
    # A different word keeps a different stem.
    assert stemmed("runner") != stemmed("run")


def test_words_are_folded_before_stemming():
    assert words("Café — naïve_idea, O’Neil's 3.5GHz") == ["cafe", "naive", "idea", "o'neil's", "3", "5ghz"]
    assert stemmed("Cafés") == stemmed("cafes") == stemmed("CAFE")
    assert stemmed("Organizações") == stemmed("organizacoes")
    # The possessive goes: "team's" is "team".
    assert stemmed("the team's goals") == "the team goal"
    assert stemmed("") == "" and stemmed("!!! ...") == ""


def test_other_scripts_and_long_tokens_survive():
    assert stemmed("東京 Москва") == "東京 москва"
    token = "a" * 60 + "ing"
    assert stemmed(token) == token  # not language: kept whole


def test_c_stemmer_agrees_with_the_pure_python_one():
    # PyStemmer (used) and snowballstemmer (the fallback) must give the same stems, or an index
    # written by one process and queried by another would disagree.
    sample = ["running", "generously", "organizations", "happiness", "universities", "lying", "cafes", "relational", "hopefully", "ponies", "caresses"]
    pure = EnglishStemmer()  # the pure-Python class (snowballstemmer.stemmer() would hand back PyStemmer)
    assert [pure.stemWord(w) for w in sample] == stem_words(" ".join(sample))


def event(type_name: str, aggregate_id: str = "a1", **payload) -> SimpleNamespace:
    return SimpleNamespace(type_name=type_name, aggregate_id=aggregate_id, payload=SimpleNamespace(**payload),
                           occurred_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC), envelope=SimpleNamespace(aggregate_type="", event_type=type_name))


def test_projections_write_the_same_analysis_the_query_uses():
    settings = Settings()
    page = WikiProjection(settings).apply(None, event("PageCreated", space_id="s", title="Café Runbook", links=[], body="Running the café", author="e1"))
    assert page["folded"] == fold("Café Runbook\nRunning the café") and page["stemmed"] == "cafe runbook run the cafe"
    renamed = WikiProjection(settings).apply(dict(page), event("PageRenamed", title="Résumés", old_title="Café Runbook", author="e1", revision=2))
    assert renamed["stemmed"] == stemmed("Résumés\nRunning the café") and "resume" in renamed["folded"]

    media = MediaProjection(settings).apply(None, event("MediaItemRegistered", owner="profiles/e1", title="Démo", description="Connecting things", kind="VIDEO",
                                                        size_bytes=1, content_type="video/mp4", tags=[], visibility="INTERNAL", storage_uri="s3://x"))
    assert media["folded"] == "demo\nconnecting things" and media["stemmed"] == "demo connect thing"
    updated = MediaProjection(settings).apply(dict(media), event("MediaItemUpdated", changed_fields=["description"], description="Runs"))
    assert updated["stemmed"] == "demo run"

    comment = CommentsProjection(settings).apply(None, event("CommentCreated", target="posts/p", parent="", author_id="e1", body="Très Bien, running!", visibility="INTERNAL", community=""))
    assert comment["folded"] == "tres bien, running!" and comment["stemmed"] == "tres bien run"
    edited = CommentsProjection(settings).apply(dict(comment), event("CommentEdited", body="ran"))
    assert edited["folded"] == "ran" and edited["stemmed"] == "ran"

    post = PostsProjection(settings).apply(None, event("PostCreated", blog="b", author_id="e1", title="Runs", body="Connected", tags=[], visibility="INTERNAL", community="", classification=""))
    assert post["stemmed"] == "run connect"
    # The query side sends the very same terms to the stemmed field.
    query = content_text_query("RUNNING connections")
    stems = [c["multi_match"]["query"] for c in query["bool"]["should"] if c["multi_match"]["fields"] == ["stemmed"]]
    assert stems == ["run connect"]


def test_every_content_projection_maps_its_analysed_fields():
    settings = Settings()
    for projection in ALL:
        props = projection(settings).index_body()["mappings"]["properties"]
        if projection.name in ("posts", "comments", "bookmarks", "wiki", "media", "jam-ideas", "jam-threads", "communities"):
            assert props["stemmed"] == {"type": "text", "analyzer": "whitespace"}, projection.name
        if projection.name in ("posts", "comments", "bookmarks", "wiki", "media", "communities"):
            assert props["folded"] == {"type": "text"}, projection.name


def test_query_tiers_rank_exact_above_stems_above_typos():
    should = content_text_query("Café Runs", raw_fields=("title^3",))["bool"]["should"]
    boosts = [(c["multi_match"].get("type", "best_fields"), tuple(c["multi_match"]["fields"]), c["multi_match"]["boost"]) for c in should]
    assert boosts == [
        ("phrase", ("folded",), 4.0), ("best_fields", ("folded",), 2.0),
        ("phrase", ("title^3",), 4.0), ("best_fields", ("title^3",), 2.0),
        ("best_fields", ("stemmed",), 1.0), ("best_fields", ("folded", "title^3"), 0.5),
    ]
    assert should[0]["multi_match"]["query"] == "cafe runs" and should[2]["multi_match"]["query"] == "café runs"
    # Query syntax is only ever a match value.
    assert all("query_string" not in json.dumps(c) for c in should)
    # Nothing to stem: no stemmed clause (it would match nothing anyway).
    assert all(c["multi_match"]["fields"] != ["stemmed"] for c in content_text_query("!!!")["bool"]["should"])


def test_the_fallback_stemmer_is_used_without_pystemmer(monkeypatch):
    monkeypatch.setattr(text, "_Stemmer", None)
    text._stemmer.cache_clear()
    try:
        assert isinstance(text._stemmer().__self__, EnglishStemmer)
        assert stemmed("Running connections") == "run connect"
    finally:
        text._stemmer.cache_clear()


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


def test_snippets_highlight_folded_and_stemmed_matches_in_the_text_as_written():
    from watercooler.text import highlight

    # The query's folded words and stems find the words as written, accents and case kept.
    assert highlight("Le Café de Paris", "cafe") == "Le <em>Café</em> de Paris"
    assert highlight("We were RUNNING late", "runs") == "We were <em>RUNNING</em> late"
    assert highlight("the team’s plan", "teams") == "the <em>team’s</em> plan"
    # Only HTML the highlighter adds survives; the text's own markup is escaped.
    assert highlight("<b>cafe</b> & co", "cafe") == "&lt;b&gt;<em>cafe</em>&lt;/b&gt; &amp; co"
    assert highlight("nothing here", "cafe") is None
    assert highlight("some text", "  ") is None
    # A match deep in a long text: the window starts shortly before it and is bounded.
    long = " ".join(["filler"] * 100 + ["needle"] + ["tail"] * 100)
    got = highlight(long, "needle", 160)
    assert got.startswith("…") and got.endswith("…") and "<em>needle</em>" in got
    assert len(got.replace("<em>", "").replace("</em>", "")) <= 160 + 4
    assert got.index("<em>") < 60

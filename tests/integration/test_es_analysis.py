"""The Elasticsearch we run analyses text as the full distribution does, under its names.

Locally that is the integ-test-zip with infra/es-analysis installed by the infra fixture; with
WC_INFRA=containers the official image, where the names are built in. Either way these are the
names the indices' settings use (tests/unit/test_analysis_names.py keeps them to the full
distribution's), and the same text must come out of them.
"""

from __future__ import annotations

import uuid

import pytest

from tests.unit.test_analysis_names import analysis_problems


@pytest.fixture(scope="module")
def es(infra):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(infra.es_url, request_timeout=60)
    yield client
    client.close()


def tokens(es, **request) -> list[str]:
    return [t["token"] for t in es.indices.analyze(**request)["tokens"]]


@pytest.mark.parametrize(("analyzer", "inflected", "base", "stem"), [
    ("spanish", "Las canciones", "la canción", "cancion"),  # stop words dropped, plural and accent
    ("german", "Die Häuser", "das Haus", "haus"),  # umlaut normalised
    ("french", "l'élève", "des élèves", "elev"),  # elision
    ("english", "dogs running", "the dog runs", None),
    ("portuguese", "as canções", "a canção", "canca"),
    ("italian", "le canzoni", "la canzone", "canzon"),
    ("dutch", "de fietsen", "de fiets", "fiets"),
    ("russian", "книги", "книга", "книг"),
    ("arabic", "الكتاب", "كتاب", "كتاب"),  # the article stripped
    ("hindi", "किताबें", "किताब", "किताब"),
])
def test_the_language_analyzers_stem_in_their_language(es, analyzer, inflected, base, stem):
    assert tokens(es, analyzer=analyzer, text=inflected) == tokens(es, analyzer=analyzer, text=base)
    if stem:
        assert tokens(es, analyzer=analyzer, text=inflected) == [stem]


def test_the_cjk_analyzer_indexes_bigrams(es):
    assert tokens(es, analyzer="cjk", text="東京都") == ["東京", "京都"]


def test_the_filters_take_the_full_distributions_parameters(es):
    folding = {"type": "asciifolding", "preserve_original": True}
    assert tokens(es, tokenizer="standard", filter=["lowercase", folding], text="Café") == ["cafe", "café"]
    assert tokens(es, tokenizer="standard", filter=[{"type": "elision", "articles": ["l", "d"]}], text="l'avion d'Air") == ["avion", "Air"]
    assert tokens(es, tokenizer="standard", filter=["elision"], text="qu'il") == ["il"]  # bare: the French articles
    assert tokens(es, tokenizer="standard", filter=["lowercase", {"type": "stop", "stopwords": "_spanish_"}], text="Las canciones de ella") == ["canciones"]
    assert tokens(es, tokenizer="standard", filter=["lowercase", {"type": "stemmer", "language": "light_german"}], text="Häuser") == ["haus"]
    assert tokens(es, tokenizer="standard", filter=[{"type": "snowball", "language": "Spanish"}], text="canciones") == ["cancion"]
    assert tokens(es, tokenizer="standard", filter=["cjk_width", "cjk_bigram"], text="ｶﾀｶﾅ 東京都") == ["カタ", "タカ", "カナ", "東京", "京都"]
    assert tokens(es, tokenizer="standard", filter=["german_normalization"], text="Größe") == ["Grosse"]
    assert tokens(es, tokenizer="standard", filter=["arabic_normalization"], text="أحمد") == ["احمد"]
    assert tokens(es, tokenizer="standard", filter=["word_delimiter_graph"], text="PowerShot500") == ["Power", "Shot", "500"]


def test_a_parameter_the_full_distribution_refuses_is_refused(es):
    from elasticsearch import BadRequestError

    with pytest.raises(BadRequestError, match="elision filter requires"):
        es.indices.analyze(tokenizer="standard", filter=[{"type": "elision"}], text="l'avion")


def test_an_index_folds_with_a_custom_analyzer_and_a_normalizer(es, infra):
    """The shapes the projections use: a custom folded analyzer, a folded keyword normalizer
    (only filters the full distribution marks as normalizing may sit there), a language analyzer."""
    index = f"{infra.index_alias('analysis-probe')}-{uuid.uuid4().hex[:8]}"
    settings = {"number_of_shards": 1, "number_of_replicas": 0, "analysis": {
        "analyzer": {"folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}},
        "normalizer": {"folded": {"type": "custom", "filter": ["lowercase", "asciifolding", "elision"]}},
    }}
    mappings = {"properties": {
        "title": {"type": "text", "analyzer": "folded", "fields": {"es": {"type": "text", "analyzer": "spanish"}}},
        "tag": {"type": "keyword", "normalizer": "folded"},
    }}
    assert analysis_problems(settings, mappings) == []
    es.indices.create(index=index, settings=settings, mappings=mappings)
    try:
        es.index(index=index, id="1", document={"title": "Las Canciones del Café", "tag": "Café"}, refresh=True)

        def hits(query) -> int:
            return es.search(index=index, query=query)["hits"]["total"]["value"]

        assert hits({"match": {"title": "cafe"}}) == 1
        assert hits({"match": {"title.es": "canción"}}) == 1
        assert hits({"term": {"tag": "CAFE"}}) == 1
        assert hits({"match": {"title": "canción"}}) == 0  # the folded field is not stemmed
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)


def test_every_index_the_platform_made_uses_only_built_in_names(platform):
    """What the projections and stats workers really created, read back from Elasticsearch."""
    es = platform.es
    prefix = f"{platform.settings.index_alias('')}*"
    found_settings = es.indices.get_settings(index=prefix, allow_no_indices=True).body
    found_mappings = es.indices.get_mapping(index=prefix, allow_no_indices=True).body
    assert len(found_settings) >= 13
    problems = [f"{index}: {problem}" for index, body in found_settings.items()
                for problem in analysis_problems(body["settings"], found_mappings[index]["mappings"])]
    assert problems == []


def test_the_local_node_runs_the_current_build_of_the_plugin(infra):
    """Locally the infra fixture built infra/es-analysis, installed it and (re)started the node."""
    from watercooler.infra import local

    if infra.infra_mode != "local":
        pytest.skip("only the local integ-test-zip gets the plugin (external and containers: full distributions)")
    wanted = local.analysis_plugin_version(local.analysis_plugin_source_hash())
    assert local.loaded_analysis_plugin(infra.es_url) == wanted

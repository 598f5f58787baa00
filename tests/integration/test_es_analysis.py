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
    from tools.infra import elasticsearch

    if infra.infra_mode != "local":
        pytest.skip("only a node this setup starts gets the plugin from it (external: any cluster; containers: the full distribution)")
    wanted = elasticsearch.analysis_plugin_version(elasticsearch.analysis_plugin_source_hash())
    assert elasticsearch.loaded_analysis_plugin(infra.es_url) == wanted


# The stemmer filter's languages, from the reference page (analysis-stemmer-tokenfilter.html).
STEMMER_LANGUAGES = (
    "arabic", "armenian", "basque", "bengali", "brazilian", "bulgarian", "catalan", "czech", "danish", "dutch",
    "dutch_kp", "english", "light_english", "lovins", "minimal_english", "porter2", "possessive_english", "estonian",
    "finnish", "light_finnish", "french", "light_french", "minimal_french", "galician", "minimal_galician", "german",
    "german2", "light_german", "minimal_german", "greek", "hindi", "hungarian", "light_hungarian", "indonesian", "irish",
    "italian", "light_italian", "sorani", "latvian", "lithuanian", "norwegian", "light_norwegian", "minimal_norwegian",
    "light_nynorsk", "minimal_nynorsk", "portuguese", "light_portuguese", "minimal_portuguese", "portuguese_rslp",
    "romanian", "russian", "light_russian", "serbian", "spanish", "light_spanish", "spanish_plural", "swedish",
    "light_swedish", "turkish",
)


def test_every_stemmer_language_of_the_reference_stems(es):
    failed = {}
    for language in STEMMER_LANGUAGES:
        try:
            tokens(es, tokenizer="standard", filter=[{"type": "stemmer", "language": language}], text="words")
        except Exception as exc:  # noqa: BLE001 - collected to name every failing language at once
            failed[language] = str(exc)[:200]
    assert failed == {}


def test_an_index_can_use_every_component_with_its_parameters(es, infra):
    """Each component the local plugin registers, configured as the reference documents it, in one
    index: what a mapping could name is accepted (and built) by the node."""
    index = f"{infra.index_alias('analysis-all')}-{uuid.uuid4().hex[:8]}"
    filters = {
        "f_fold": {"type": "asciifolding", "preserve_original": True}, "f_lower": {"type": "lowercase", "language": "greek"},
        "f_elision": {"type": "elision", "articles": ["l"], "articles_case": True},
        "f_bigram": {"type": "cjk_bigram", "ignored_scripts": ["hangul"], "output_unigrams": True},
        "f_stem": {"type": "stemmer", "language": "light_spanish"}, "f_snow": {"type": "snowball", "language": "Dutch"},
        "f_override": {"type": "stemmer_override", "rules": ["ran => run"]}, "f_marker": {"type": "keyword_marker", "keywords": ["x"]},
        "f_wdg": {"type": "word_delimiter_graph", "catenate_all": True, "protected_words": ["wi-fi"]},
        "f_truncate": {"type": "truncate", "length": 5}, "f_length": {"type": "length", "min": 1, "max": 40},
        "f_limit": {"type": "limit", "max_token_count": 100}, "f_unique": {"type": "unique", "only_on_same_position": True},
        "f_keep": {"type": "keep", "keep_words": ["a"], "keep_words_case": True}, "f_types": {"type": "keep_types", "types": ["<NUM>"], "mode": "exclude"},
        "f_replace": {"type": "pattern_replace", "pattern": "a", "replacement": "b"}, "f_capture": {"type": "pattern_capture", "patterns": ["(\\d+)"]},
        "f_grams": {"type": "common_grams", "common_words": "_english_", "query_mode": True},
        "f_compound": {"type": "dictionary_decompounder", "word_list": ["dampf", "schiff"]},
        "f_edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": 3}, "f_ngram": {"type": "ngram", "min_gram": 2, "max_gram": 3},
        "f_syn": {"type": "synonym", "synonyms": ["i-pod, i pod => ipod"], "lenient": True},
        "f_syn_graph": {"type": "synonym_graph", "synonyms": ["Café, coffee shop"], "expand": True, "format": "solr"},
    }
    plain = ["uppercase", "cjk_width", "porter_stem", "kstem", "keyword_repeat", "remove_duplicates", "flatten_graph",
             "arabic_normalization", "bengali_normalization", "german_normalization", "hindi_normalization", "indic_normalization",
             "persian_normalization", "scandinavian_folding", "scandinavian_normalization", "serbian_normalization",
             "sorani_normalization", "decimal_digit", "apostrophe", "classic", "trim", "reverse", "elision"]
    tokenizers = {
        "t_ws": {"type": "whitespace", "max_token_length": 100}, "t_kw": {"type": "keyword", "buffer_size": 512},
        "t_classic": {"type": "classic", "max_token_length": 100}, "t_url": {"type": "uax_url_email", "max_token_length": 100},
        "t_pattern": {"type": "pattern", "pattern": ",", "flags": "CASE_INSENSITIVE"}, "t_sp": {"type": "simple_pattern", "pattern": "[a-z]+"},
        "t_sps": {"type": "simple_pattern_split", "pattern": "_"}, "t_group": {"type": "char_group", "tokenize_on_chars": ["whitespace", "-"]},
        "t_path": {"type": "path_hierarchy", "delimiter": "-", "reverse": True},
        "t_ngram": {"type": "ngram", "min_gram": 2, "max_gram": 3, "token_chars": ["letter", "custom"], "custom_token_chars": "+"},
        "t_edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": 10, "token_chars": ["letter", "digit", "punctuation", "symbol", "whitespace"]},
    }
    char_filters = {
        "c_html": {"type": "html_strip", "escaped_tags": ["b"]}, "c_map": {"type": "mapping", "mappings": ["ß => ss", "\\u0041 => a"]},
        "c_pattern": {"type": "pattern_replace", "pattern": "(\\d+)-", "replacement": "$1_"},
    }
    analyzers = {
        f"a_{name}": {"type": "custom", "tokenizer": name, "char_filter": list(char_filters)} for name in [*tokenizers, "letter", "thai"]
    } | {
        # (the synonym filters analyse their rules with the filters before them: not after keep and limit)
        "a_filters": {"type": "custom", "tokenizer": "standard", "filter": [*(f for f in filters if not f.startswith("f_syn")), *plain]},
        "a_syn": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "f_syn"]},
        "a_spanish": {"type": "spanish", "stopwords": "_none_", "stem_exclusion": ["canciones"]},
        "a_cjk": {"type": "cjk", "stopwords": ["の"]}, "a_stop": {"type": "stop", "stopwords": "_german_"},
        "a_pattern": {"type": "pattern", "pattern": "\\s+", "lowercase": False}, "a_fingerprint": {"type": "fingerprint", "separator": "+"},
        "a_synonyms": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding", "f_syn_graph"]},
        "a_simple": {"type": "simple"}, "a_ws": {"type": "whitespace"}, "a_kw": {"type": "keyword"},
    }
    settings = {"number_of_shards": 1, "number_of_replicas": 0, "max_ngram_diff": 9, "analysis": {
        "filter": filters, "tokenizer": tokenizers, "char_filter": char_filters, "analyzer": analyzers,
        "normalizer": {"n": {"type": "custom", "char_filter": ["c_map"], "filter": ["lowercase", "asciifolding", "f_elision", "german_normalization", "cjk_width", "f_replace"]}},
    }}
    mappings = {"properties": {name: {"type": "text", "analyzer": name} for name in analyzers} | {"k": {"type": "keyword", "normalizer": "n"}}}
    assert analysis_problems(settings, mappings) == []
    es.indices.create(index=index, settings=settings, mappings=mappings)
    try:
        es.index(index=index, id="1", document={**{name: "Wi-Fi l'Avion 東京都 2024-canciones ran" for name in analyzers}, "k": "L'ÉTÉ"}, refresh=True)
        assert es.search(index=index, query={"term": {"k": "l'ete"}})["hits"]["total"]["value"] == 1
        assert tokens(es, index=index, analyzer="a_spanish", text="canciones canción") == ["canciones", "cancion"]
        assert tokens(es, index=index, analyzer="a_fingerprint", text="B a b") == ["a+b"]
        # the synonym rules went through the chain before them: "Café" matches the folded "cafe"
        assert tokens(es, index=index, analyzer="a_synonyms", text="the CAFÉ") == ["the", "coffee", "cafe", "shop"]
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)

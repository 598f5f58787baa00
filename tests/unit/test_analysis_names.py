"""Every analyzer, tokenizer, char filter, token filter and normalizer our indices name is one the
full Elasticsearch distribution provides, so the settings we create locally (where
infra/es-analysis registers those names on the integ-test-zip) are what a platform team runs
unchanged on a full Elasticsearch under ECK.

The names below are the full 8.19 distribution's built-ins (the server plus its analysis-common
module), from the reference pages:

- analyzers: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-analyzers.html
  and the language analyzers: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-lang-analyzer.html
- tokenizers: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-tokenizers.html
- token filters: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-tokenfilters.html
- character filters: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-charfilters.html
- normalizers: https://www.elastic.co/guide/en/elasticsearch/reference/8.19/analysis-normalizers.html

Plugins' names (analysis-icu, analysis-kuromoji, analysis-phonetic...) are not built in and so not
listed: a mapping using one would need a plugin installed in production too.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watercooler import config
from watercooler.projection import DocumentProjection

REPO = Path(__file__).resolve().parents[2]

LANGUAGE_ANALYZERS = frozenset({
    "arabic", "armenian", "basque", "bengali", "brazilian", "bulgarian", "catalan", "cjk", "czech", "danish",
    "dutch", "english", "estonian", "finnish", "french", "galician", "german", "greek", "hindi", "hungarian",
    "indonesian", "irish", "italian", "latvian", "lithuanian", "norwegian", "persian", "portuguese", "romanian",
    "russian", "sorani", "spanish", "swedish", "turkish", "thai",
})

FULL_DISTRIBUTION: dict[str, frozenset[str]] = {
    "analyzer": frozenset({"fingerprint", "keyword", "pattern", "simple", "standard", "stop", "whitespace"}) | LANGUAGE_ANALYZERS,
    "tokenizer": frozenset({
        "char_group", "classic", "edge_ngram", "keyword", "letter", "lowercase", "ngram", "path_hierarchy", "pattern",
        "simple_pattern", "simple_pattern_split", "standard", "thai", "uax_url_email", "whitespace",
    }),
    "filter": frozenset({
        "apostrophe", "asciifolding", "cjk_bigram", "cjk_width", "classic", "common_grams", "condition", "decimal_digit",
        "delimited_payload", "dictionary_decompounder", "edge_ngram", "elision", "fingerprint", "flatten_graph",
        "hunspell", "hyphenation_decompounder", "keep_types", "keep", "keyword_marker", "keyword_repeat", "kstem",
        "length", "limit", "lowercase", "min_hash", "multiplexer", "ngram",
        # the normalization filters
        "arabic_normalization", "bengali_normalization", "german_normalization", "hindi_normalization",
        "indic_normalization", "persian_normalization", "scandinavian_normalization", "scandinavian_folding",
        "serbian_normalization", "sorani_normalization",
        "pattern_capture", "pattern_replace", "porter_stem", "predicate_token_filter", "remove_duplicates", "reverse",
        "shingle", "snowball", "stemmer", "stemmer_override", "stop", "synonym", "synonym_graph", "trim", "truncate",
        "unique", "uppercase", "word_delimiter", "word_delimiter_graph",
    }),
    "char_filter": frozenset({"html_strip", "mapping", "pattern_replace"}),
    "normalizer": frozenset({"lowercase"}),
}

ANALYZER_KEYS = ("analyzer", "search_analyzer", "search_quote_analyzer")


# --------------------------------------------------------------------------------------------
# The check: one index's settings and mappings
# --------------------------------------------------------------------------------------------
def _expand_dotted(value: Any) -> Any:
    """Settings as Elasticsearch reads them: {"index.analysis.analyzer.x.type": ...} nested."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        node = out
        *parents, last = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        existing = node.get(last)
        item = _expand_dotted(item)
        node[last] = {**existing, **item} if isinstance(existing, dict) and isinstance(item, dict) else item
    return out


def analysis_of(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The ``analysis`` section of index settings, in any of the forms Elasticsearch accepts."""
    expanded = _expand_dotted(settings or {})
    return expanded.get("analysis") or expanded.get("index", {}).get("analysis") or {}


def _names(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def analysis_problems(settings: dict[str, Any] | None, mappings: dict[str, Any] | None) -> list[str]:
    """Each name used by these settings and mappings that the full distribution does not provide."""
    analysis = analysis_of(settings)
    defined = {kind: analysis.get(kind) or {} for kind in FULL_DISTRIBUTION}
    problems: list[str] = []

    def check(kind: str, ref: Any, where: str) -> None:
        if isinstance(ref, dict):  # an inline definition
            if ref.get("type") not in FULL_DISTRIBUTION[kind]:
                problems.append(f"{where}: inline {kind} of type {ref.get('type')!r} is not built in")
        elif ref not in defined[kind] and ref not in FULL_DISTRIBUTION[kind]:
            problems.append(f"{where}: {kind} {ref!r} is neither defined in the index nor built in")

    for name, spec in defined["analyzer"].items():
        kind = spec.get("type", "custom")
        if kind == "custom":
            if "tokenizer" not in spec:
                problems.append(f"analyzer {name!r}: a custom analyzer needs a tokenizer")
            else:
                check("tokenizer", spec["tokenizer"], f"analyzer {name!r}")
        elif kind not in FULL_DISTRIBUTION["analyzer"]:
            problems.append(f"analyzer {name!r}: type {kind!r} is not built in")
        for ref in _names(spec.get("filter")):
            check("filter", ref, f"analyzer {name!r}")
        for ref in _names(spec.get("char_filter")):
            check("char_filter", ref, f"analyzer {name!r}")
    for name, spec in defined["normalizer"].items():
        if spec.get("type", "custom") != "custom":
            problems.append(f"normalizer {name!r}: type {spec.get('type')!r} is not built in (only custom)")
        for ref in _names(spec.get("filter")):
            check("filter", ref, f"normalizer {name!r}")
        for ref in _names(spec.get("char_filter")):
            check("char_filter", ref, f"normalizer {name!r}")
    for kind in ("tokenizer", "filter", "char_filter"):
        for name, spec in defined[kind].items():
            if spec.get("type") not in FULL_DISTRIBUTION[kind]:
                problems.append(f"{kind} {name!r}: type {spec.get('type')!r} is not built in")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "_meta":
                continue
            if key in ANALYZER_KEYS and isinstance(value, str):
                check("analyzer", value, f"mapping {path or '<root>'}")
            elif key == "normalizer" and isinstance(value, str):
                check("normalizer", value, f"mapping {path or '<root>'}")
            else:
                walk(value, f"{path}.{key}" if path else key)

    walk(mappings or {}, "")
    return problems


# --------------------------------------------------------------------------------------------
# Every index the read side creates, rendered
# --------------------------------------------------------------------------------------------
# The files that create indices or templates: each one's bodies are rendered below. A new one
# must be added (and rendered) here, or this test cannot say its names are built in.
INDEX_CREATORS = {
    "deploy/bootstrap.py",  # the index template: bootstrap.index_template()
    "libs/watercooler/projection.py",  # every DocumentProjection, from index_body()
    "services/search/readmodels/projections/blogs.py",  # the blog owners index: BlogsProjection.owner_mappings
    "services/search/readmodels/projections/notifications.py",  # the facts index: NotificationsProjection.facts_mappings
    "services/search/readmodels/counters/__init__.py",  # create_counter_index(), with the MAPPINGS and index_settings() of the modules below
    "services/search/readmodels/counters/jams.py",  # MAPPINGS
    "services/search/readmodels/counters/views.py",  # MAPPINGS, SEEN_MAPPINGS
    "services/search/readmodels/rebuild.py",  # the counters' MAPPINGS and index_settings() (rendered from their modules above)
}
CREATES_INDEX = re.compile(r"\.indices\.(create|put_index_template|put_template|put_component_template|put_settings|put_mapping)\(")


def _read_side_modules() -> list[Any]:
    import services.search

    modules = [services.search]
    for info in pkgutil.walk_packages(services.search.__path__, "services.search."):
        if info.name.endswith("__main__"):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _projection_classes() -> list[type[DocumentProjection]]:
    found: list[type[DocumentProjection]] = []
    pending = list(DocumentProjection.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not inspect.isabstract(cls) and "mappings" in {k for c in cls.__mro__ for k in vars(c)} and getattr(cls, "name", None):
            found.append(cls)
    return sorted(set(found), key=lambda c: c.__qualname__)


def rendered_indices() -> Iterator[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """(what, settings, mappings) of every index body the read side defines."""
    modules = _read_side_modules()
    settings = config.Settings()
    for cls in _projection_classes():
        body = cls(settings).index_body()
        yield f"{cls.__module__}.{cls.__qualname__}", body["settings"], body["mappings"]
        for attr, value in vars(cls).items():
            if attr != "mappings" and isinstance(value, dict) and "properties" in value:
                yield f"{cls.__qualname__}.{attr}", body["settings"], value
    for module in modules:
        for attr, value in vars(module).items():
            if isinstance(value, dict) and ("properties" in value or "analysis" in value):
                yield f"{module.__name__}.{attr}", value if "analysis" in value else None, value if "properties" in value else {}
    spec = importlib.util.spec_from_file_location("deploy_bootstrap", REPO / "deploy" / "bootstrap.py")
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    template = bootstrap.index_template(settings)["template"]
    yield "deploy/bootstrap.py index_template", template.get("settings"), template.get("mappings") or {}


def test_every_index_uses_only_the_full_distributions_analysis_names() -> None:
    rendered = list(rendered_indices())
    projections = {what for what, _, _ in rendered if "Projection" in what}
    assert len(projections) >= 13, f"expected every projection to be rendered, got {sorted(projections)}"
    assert any(what.endswith("counters.views.SEEN_MAPPINGS") for what, _, _ in rendered)
    assert any(what.endswith("counters.jams.MAPPINGS") for what, _, _ in rendered)
    assert any(what.endswith("index_template") for what, _, _ in rendered)
    problems = [f"{what}: {problem}" for what, settings, mappings in rendered for problem in analysis_problems(settings, mappings)]
    assert problems == []


def test_every_file_that_creates_an_index_is_rendered_here() -> None:
    creators = set()
    for root in ("libs", "services", "deploy"):
        for path in (REPO / root).rglob("*.py"):
            if "/v1/" not in path.as_posix() and CREATES_INDEX.search(path.read_text(encoding="utf-8")):
                creators.add(path.relative_to(REPO).as_posix())
    assert creators <= INDEX_CREATORS, f"render these files' index bodies in this test: {sorted(creators - INDEX_CREATORS)}"


# --------------------------------------------------------------------------------------------
# The check itself, and the plugin that stands in for the built-ins locally
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("settings", "mappings", "expected"), [
    # a plugin's filter (analysis-icu) in a custom analyzer
    ({"analysis": {"analyzer": {"x": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "icu_folding"]}}}},
     {}, ["analyzer 'x': filter 'icu_folding' is neither defined in the index nor built in"]),
    # a mapping naming an analyzer nobody defined
    (None, {"properties": {"t": {"type": "text", "analyzer": "folded"}}},
     ["mapping properties.t: analyzer 'folded' is neither defined in the index nor built in"]),
    # a normalizer whose filter only a plugin has, in the flattened form Elasticsearch returns
    ({"index.analysis.normalizer.n.type": "custom", "index.analysis.normalizer.n.filter": ["icu_normalizer"]},
     {"properties": {"k": {"type": "keyword", "normalizer": "n"}}},
     ["normalizer 'n': filter 'icu_normalizer' is neither defined in the index nor built in"]),
    # an analyzer of a type the full distribution lacks (it has no "serbian" analyzer, only the filter)
    ({"analysis": {"analyzer": {"sr": {"type": "serbian"}}}}, {}, ["analyzer 'sr': type 'serbian' is not built in"]),
    # all built in: defined folded analyzer and normalizer, language analyzers, an inline stemmer
    ({"index": {"analysis": {
        "analyzer": {"folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
                     "es": {"type": "custom", "tokenizer": "standard",
                            "filter": ["lowercase", {"type": "stemmer", "language": "light_spanish"}, "my_elision"]}},
        "filter": {"my_elision": {"type": "elision", "articles": ["l"]}},
        "normalizer": {"folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]}}}}},
     {"properties": {"t": {"type": "text", "analyzer": "folded", "search_analyzer": "spanish",
                           "fields": {"k": {"type": "keyword", "normalizer": "folded"}, "c": {"type": "text", "analyzer": "cjk"}}}}},
     []),
])
def test_the_check_names_what_is_not_built_in(settings, mappings, expected) -> None:
    assert analysis_problems(settings, mappings) == expected


PLUGIN_SOURCE = REPO / "infra" / "es-analysis" / "src" / "main" / "java" / "io" / "watercooler" / "analysis" / "WatercoolerAnalysisPlugin.java"


def registered_by_plugin() -> dict[str, set[str]]:
    text = PLUGIN_SOURCE.read_text(encoding="utf-8")
    kinds = {"f": "filter", "t": "tokenizer", "c": "char_filter", "a": "analyzer"}
    names: dict[str, set[str]] = {kind: set() for kind in kinds.values()}
    for var, name in re.findall(r"\b([ftca])\.put\(\"([^\"]+)\"", text):
        names[kinds[var]].add(name)
    names["filter"].update(re.findall(r"PreConfiguredTokenFilter\.singleton\(\"([^\"]+)\"", text))
    return names


def test_the_local_plugin_registers_only_names_the_full_distribution_has() -> None:
    registered = registered_by_plugin()
    assert {"english", "spanish", "german", "french", "portuguese", "italian", "dutch", "russian", "arabic", "hindi", "cjk"} <= registered["analyzer"]
    assert {"asciifolding", "elision", "cjk_bigram", "stemmer", "snowball"} <= registered["filter"]
    extra = {kind: sorted(names - FULL_DISTRIBUTION[kind]) for kind, names in registered.items() if names - FULL_DISTRIBUTION[kind]}
    assert extra == {}, "a name production lacks would let a local mapping work that fails under ECK"

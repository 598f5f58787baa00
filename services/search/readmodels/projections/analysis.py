"""How the search indices analyse text: Elasticsearch's own analysis, declared here once.

Every analyzer, normalizer and filter named here is a built-in of the full Elasticsearch
distribution (under ECK the built-ins serve; locally infra/es-analysis registers the same
names), so these settings are what a platform team runs unchanged.

- ``folded``: the standard tokenizer, ``lowercase`` and ``asciifolding``: the exact words
  without case or accents ("Café" is matched by "cafe" and by "café"). Titles, bodies, names,
  a person's title and bio are analysed by it, and copied into the combined ``folded`` field
  (title and body together) that the phrase, all-words and typo tiers of a query match.
- the ``folded`` normalizer does the same to keyword values (tags, hashtags, expertise).
- the language analyzers (``english``, ``spanish``...): a content item's title and body are
  also indexed under its language, in ``lang.<code>.title`` / ``lang.<code>.body``, so an
  inflected form finds it ("canciones" finds "canción"). Only the item's own language is
  filled, and English too when the detector is not sure of another one (``SURE_OF_LANGUAGE``):
  an item is analysed two or three times, not once per language.

The language of an item is detected from its text (``detect_language``) with py3langid (BSD
licence, a 4.6 MB wheel carrying its model, offline, about 30 microseconds per text on this
machine). The author's profile languages say what a person speaks, not what one post is
written in, and reading them would cost the projection a lookup per batch: they are not used.
A text too short or too mixed to tell is indexed as English (the company's working language,
and the only one stemmed before).
"""

from __future__ import annotations

from typing import Any

# The language names and the detector are shared with the queries: declared in ..indices.
from ..indices import (
    DEFAULT_LANGUAGE,
    EXCERPT,
    EXCERPT_MAPPING,
    FIELD_CODE,
    LANGUAGE_ANALYZERS,
    classify_language,
    detect_language,
    excerpt,
    field_code,
    language_field_names,
    search_languages,
    warm_up,
)

__all__ = ["DEFAULT_LANGUAGE", "EXCERPT", "EXCERPT_MAPPING", "FIELD_CODE", "LANGUAGE_ANALYZERS", "detect_language", "excerpt", "field_code", "language_field_names", "search_languages", "warm_up"]

FOLDED = "folded"

ANALYSIS: dict[str, Any] = {
    "analyzer": {FOLDED: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}},
    "normalizer": {FOLDED: {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
}

# An item shorter than this is indexed in the default language whatever the detector says: a
# title like "Démo" scores 0.7 as French. (A query is told by the probability alone: a wrong
# guess there only adds a language to those searched.)
MIN_ITEM_CHARS = 16

# A text field matched without case or accents.
FOLDED_TEXT: dict[str, Any] = {"type": "text", "analyzer": FOLDED}
# Text a snippet may be cut from also keeps each word's character offsets in its postings:
# Elasticsearch's unified highlighter then reads where the query's words are from the index
# rather than analysing every hit's text again (its documented fastest mode). Over a million
# documents highlighting was about a fifth of a Search's Elasticsearch CPU.
SHOWN = {"index_options": "offsets"}
SHOWN_TEXT: dict[str, Any] = {**FOLDED_TEXT, **SHOWN}
# The combined title-and-body field: filled by `copy_to` from the fields that name it, never
# written by a projection nor kept in _source.
FOLDED_FIELD: dict[str, Any] = {"type": "text", "analyzer": FOLDED}
# ``title_prefix`` holds the folded title for Suggest's type-ahead (by `copy_to` from the
# title); its `index_prefixes` index every word's first 1-10 letters, so a typed prefix is one
# term rather than an expansion over the title vocabulary. Over a million documents the titles
# sub-search took 2.4 -> 1.2 ms (mean) and 5.0 -> 3.1 ms of Elasticsearch CPU.
TITLE_PREFIX_FIELD: dict[str, Any] = {"type": "text", "analyzer": FOLDED, "index_prefixes": {"min_chars": 1, "max_chars": 10}}
# Tags, hashtags: kept as written (facets and trending show them so); ``.folded`` is what a
# filter or a type-ahead matches, so "cafe" and "café" find the tag "café".
TAGS_FIELD: dict[str, Any] = {"type": "keyword", "fields": {FOLDED: {"type": "keyword", "normalizer": FOLDED}}}
LANGUAGE_FIELD: dict[str, Any] = {"type": "keyword"}


def folded_text(*copy_to: str, **more: Any) -> dict[str, Any]:
    """A folded text field, shown as a snippet, that also feeds the ``copy_to`` fields named."""
    return {**SHOWN_TEXT, **({"copy_to": list(copy_to)} if copy_to else {}), **more}


def language_fields(parts: tuple[str, ...] = ("title", "body")) -> dict[str, Any]:
    """The ``lang`` object: one sub-object per language, its ``parts`` analysed in it."""
    return {"properties": {code: {"properties": {part: {"type": "text", "analyzer": analyzer, **SHOWN} for part in parts}}
                           for code, analyzer in LANGUAGE_ANALYZERS.items()}}


def copies_mapping(parts: tuple[str, ...] = ("title", "body")) -> dict[str, Any]:
    """The mapping of what ``language_copies`` writes: ``language``, ``lang`` (its ``parts``
    analysed in each language) and ``excerpt``."""
    return {"language": LANGUAGE_FIELD, "lang": language_fields(parts), EXCERPT: EXCERPT_MAPPING}


# An item detected as another language below this probability is also indexed in English. The
# detector can take a short English text holding an unknown word for another language: over
# 5,000 invented words, "Running <word> drills is fun." scored as Dutch at 0.70-0.90 about one
# time in a hundred, and "runs" then missed it (a CI failure of 2026-12-06). Texts really in
# another language score higher: 90 of the judged corpus's 91 non-English items 0.9 or more,
# most above 0.95. Keeping an English copy of every item instead made English stems match
# German and Italian items as well as English ones, and the false friends of the judged set
# ("kind", "burro") ranked the wrong language first (nDCG@10 0.9136 -> 0.9103).
SURE_OF_LANGUAGE = 0.95


def _detected(*texts: str) -> tuple[str, float]:
    """The language an item made of ``texts`` is indexed in (DEFAULT_LANGUAGE when unclear),
    and how sure the detector is of it."""
    text = "\n".join(t for t in texts if t)
    if len(text.strip()) < MIN_ITEM_CHARS:
        return DEFAULT_LANGUAGE, 0.0
    code, probability = classify_language(text)
    return code or DEFAULT_LANGUAGE, probability


def language_copies(**parts: str) -> dict[str, Any]:
    """``language``, ``lang`` and ``excerpt`` of a document whose text is ``parts`` (title=...,
    body=...): the text under its language, and under English too unless the detector is sure
    of another (SURE_OF_LANGUAGE); the start of the body, which a hit shows (indices.EXCERPT)."""
    language, probability = _detected(*parts.values())
    own = field_code(language) or DEFAULT_LANGUAGE
    codes = [own] if probability >= SURE_OF_LANGUAGE else list(dict.fromkeys((DEFAULT_LANGUAGE, own)))
    text = {k: v for k, v in parts.items() if v}
    return {"language": language, "lang": {code: dict(text) for code in codes}, EXCERPT: excerpt(parts.get("body"))}


# What an erasure leaves of the copies language_copies made (a projection's erased_fields).
ERASED_COPIES: dict[str, Any] = {"lang": {}, EXCERPT: ""}

"""Elasticsearch queries behind the search RPCs. User text is only ever passed as
the value of a match query, never as query syntax (no query-string injection)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .readmodels.indices import language_field_names

# Relevance tiers of content text (each clause requires every word in some form, so the
# tiers rank rather than widen): the phrase as typed (without case or accents) first, then all
# the words exactly, then the same words as the languages searched inflect them ("canciones"
# finds "canción" in a Spanish item), then with a typo each. The field boosts (title^3) keep an
# exact title above a passing mention. Elasticsearch analyses the query for each field as it
# analysed the field's text (``folded``, or the item's language analyzer): nothing is folded or
# stemmed here.
PHRASE_BOOST = 4.0
WORDS_BOOST = 2.0
STEMS_BOOST = 1.0
TYPO_BOOST = 0.5
# Edits a word may be off by and still match: none up to 2 letters, one up to 7, two from 8
# (Elasticsearch's AUTO gives two from 6). A Levenshtein automaton for two edits costs far
# more to build and to run over every term dictionary: over a million documents Search's typo
# query cost 18.0 ms of Elasticsearch CPU with AUTO, 13.2 ms with this (same four fields).
TYPO_ONE_EDIT_FROM, TYPO_TWO_EDITS_FROM = 3, 8  # letters
TYPO_FUZZINESS = f"AUTO:{TYPO_ONE_EDIT_FROM},{TYPO_TWO_EDITS_FROM}"
# The typo tier's other limits: the first letter is never wrong, and a word stands for at most
# this many of the index's words (per field and shard, the nearest first).
TYPO_PREFIX_LENGTH = 1
TYPO_MAX_EXPANSIONS = 10


def typo_edits(word: str) -> int:
    """The edits TYPO_FUZZINESS allows a word of this length (Elasticsearch's AUTO:3,8), for the
    APIs that take a number: the term suggester's ``max_edits``."""
    return 0 if len(word) < TYPO_ONE_EDIT_FROM else 1 if len(word) < TYPO_TWO_EDITS_FROM else 2


def content_text_query(
    text: str,
    folded_fields: Sequence[str] = ("folded",),
    raw_fields: Sequence[str] = (),
    languages: Sequence[str] = ("en",),
    typos: bool = True,
    typo_fields: Sequence[str] | None = None,
    language_parts: Sequence[str] = ("title^3", "body"),
) -> dict[str, Any]:
    """Match ``text`` against the content projections' fields.

    ``folded_fields`` and ``raw_fields`` are analysed without case or accents (the combined
    title-and-body copies, and the fields as written that carry the title boosts); the item's
    language copies ``lang.<code>.<part>`` are matched for each of ``languages`` (field codes,
    see projections/analysis.py). ``typo_fields`` are where a word with a typo may match
    (default: the folded and raw fields). User text is only ever a match value, never query
    syntax."""
    text = text.strip()
    should: list[dict[str, Any]] = []
    fields = [*folded_fields, *raw_fields]
    if fields:
        should.append({"multi_match": {"query": text, "fields": fields, "type": "phrase", "boost": PHRASE_BOOST}})
        should.append({"multi_match": {"query": text, "fields": fields, "operator": "and", "boost": WORDS_BOOST}})
    stemmed_fields = language_field_names(languages, language_parts)
    if stemmed_fields:
        # cross_fields: the words may be split between title and body ("connecting" in the body
        # of the page titled "Guide"), as in the combined folded field. The fields are grouped
        # by analyzer, so each language is matched as a whole, with the query analysed in it.
        should.append({"multi_match": {"query": text, "fields": stemmed_fields, "type": "cross_fields", "operator": "and", "boost": STEMS_BOOST}})
    if typos:
        fuzzy_fields = list(typo_fields) if typo_fields is not None else fields
        should.append({"multi_match": {"query": text, "fields": fuzzy_fields, "operator": "and", "fuzziness": TYPO_FUZZINESS,
                                       "prefix_length": TYPO_PREFIX_LENGTH, "max_expansions": TYPO_MAX_EXPANSIONS, "boost": TYPO_BOOST}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def people_query(query: str, department: str, country: str, expertise: str) -> tuple[dict[str, Any], list[Any]]:
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if department:
        filters.append({"term": {"department": department}})
    if country:
        filters.append({"term": {"country": country.upper()}})
    if expertise:
        filters.append({"term": {"expertise": expertise.strip()}})  # normalised by the field (without case or accents)
    folded = query.strip()  # analysed by name_folded's analyzer: without case or accents
    if folded:
        must = {
            "bool": {
                "should": [
                    {"match_phrase": {"name_folded": {"query": folded, "boost": 4}}},
                    {"match": {"name_folded": {"query": folded, "operator": "and", "boost": 2}}},
                    {"match": {"name_folded": {"query": folded, "fuzziness": "AUTO", "prefix_length": 1, "operator": "and"}}},
                    # The last word as typed so far: a prefix of a word of the name.
                    {"match_bool_prefix": {"name_folded": {"query": folded.split()[-1], "boost": 0.5}}},
                ],
                "minimum_should_match": 1,
            }
        }
        sort: list[Any] = [{"_score": "desc"}, {"sort_key": "asc"}, {"employee_id": "asc"}]
    else:
        must = {"match_all": {}}
        sort = [{"sort_key": "asc"}, {"employee_id": "asc"}]
    return {"bool": {"must": [must], "filter": filters}}, sort

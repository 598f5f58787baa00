"""Elasticsearch queries behind the search RPCs. User text is only ever passed as
the value of a match query, never as query syntax (no query-string injection)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watercooler.text import fold, stemmed

# Relevance tiers of content text (each clause requires every word in some form, so the
# tiers rank rather than widen): the phrase as typed (folded) first, then all the words
# exactly, then the same words by their English stems ("running" finds "runs"), then with
# a typo each. The field boosts (title^3) keep an exact title above a passing mention.
PHRASE_BOOST = 4.0
WORDS_BOOST = 2.0
STEMS_BOOST = 1.0
TYPO_BOOST = 0.5
# Edits a word may be off by and still match: none up to 2 letters, one up to 7, two from 8
# (Elasticsearch's AUTO gives two from 6). A Levenshtein automaton for two edits costs far
# more to build and to run over every term dictionary: over a million documents Search's typo
# query cost 18.0 ms of Elasticsearch CPU with AUTO, 13.2 ms with this (same four fields).
TYPO_FUZZINESS = "AUTO:3,8"


def content_text_query(
    text: str,
    folded_fields: Sequence[str] = ("folded",),
    raw_fields: Sequence[str] = (),
    stemmed_fields: Sequence[str] = ("stemmed",),
    typos: bool = True,
    typo_fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Match ``text`` against the Python-analysed fields of the content projections.

    ``folded_fields`` hold ``watercooler.text.fold`` output, ``stemmed_fields`` hold
    ``watercooler.text.stemmed`` output (the query gets the same treatment here), and
    ``raw_fields`` the text as written (matched lowercased; carry the title boosts).
    ``typo_fields`` are where a word with a typo may match (default: the folded and raw
    fields). User text is only ever a match value, never query syntax."""
    folded, lowered, stems = fold(text), text.lower(), stemmed(text)
    should: list[dict[str, Any]] = []
    for query, fields in ((folded, folded_fields), (lowered, raw_fields)):
        if fields:
            should.append({"multi_match": {"query": query, "fields": list(fields), "type": "phrase", "boost": PHRASE_BOOST}})
            should.append({"multi_match": {"query": query, "fields": list(fields), "operator": "and", "boost": WORDS_BOOST}})
    if stems and stemmed_fields:
        should.append({"multi_match": {"query": stems, "fields": list(stemmed_fields), "operator": "and", "boost": STEMS_BOOST}})
    if typos:
        fields = list(typo_fields) if typo_fields is not None else [*folded_fields, *raw_fields]
        should.append({"multi_match": {"query": folded, "fields": fields, "operator": "and", "fuzziness": TYPO_FUZZINESS,
                                       "prefix_length": 1, "max_expansions": 10, "boost": TYPO_BOOST}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def people_query(query: str, department: str, country: str, expertise: str) -> tuple[dict[str, Any], list[Any]]:
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if department:
        filters.append({"term": {"department": department}})
    if country:
        filters.append({"term": {"country": country.upper()}})
    if expertise:
        filters.append({"term": {"expertise": expertise.strip().lower()}})
    folded = fold(query.strip())
    if folded:
        must = {
            "bool": {
                "should": [
                    {"match_phrase": {"name_folded": {"query": folded, "boost": 4}}},
                    {"match": {"name_folded": {"query": folded, "operator": "and", "boost": 2}}},
                    {"match": {"name_folded": {"query": folded, "fuzziness": "AUTO", "prefix_length": 1, "operator": "and"}}},
                    {"prefix": {"name_folded": {"value": folded.split()[-1], "boost": 0.5}}},
                ],
                "minimum_should_match": 1,
            }
        }
        sort: list[Any] = [{"_score": "desc"}, {"sort_key": "asc"}, {"employee_id": "asc"}]
    else:
        must = {"match_all": {}}
        sort = [{"sort_key": "asc"}, {"employee_id": "asc"}]
    return {"bool": {"must": [must], "filter": filters}}, sort

"""Elasticsearch queries behind the search RPCs. User text is only ever passed as
the value of a match query, never as query syntax (no query-string injection)."""

from __future__ import annotations

from typing import Any

from watercooler.text import fold


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

"""The people directory and find-an-expert, from the `people` index (and, for
expertise shown by writing, the `posts` index)."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.search.v1 import search_pb2

from .queries import people_query
from .readmodels import indices
from .visibility import caller_communities, content_filter

MAX_TOPIC_LENGTH = 100
DIRECTORY_SORT = [{"sort_key": "asc"}, {"employee_id": "asc"}]


def person_hit(doc: dict[str, Any], score: float = 0.0) -> search_pb2.PersonHit:
    return search_pb2.PersonHit(
        profile=f"profiles/{doc['employee_id']}",
        display_name=doc["display_name"],
        title=doc.get("title", ""),
        department=doc.get("department", ""),
        country=doc.get("country", ""),
        expertise=doc.get("expertise", []),
        alumni=doc.get("alumni", False),
        score=score,
        manager=f"profiles/{doc['manager_id']}" if doc.get("manager_id") else "",
        sort_name=doc.get("sort_name", ""),
    )


async def search_people(
    es: AsyncElasticsearch, settings: Settings, text: str, department: str, country: str, expertise: str, size: int, after: list[Any] | None
) -> tuple[list[tuple[dict[str, Any], float]], int, list[Any] | None]:
    """SearchPeople: (each hit's document and score, the total, the last hit's sort values when
    the page is full, for the next page's token)."""
    query, sort = people_query(text, department, country, expertise)
    return await _page(es, settings, query, sort, size, after)


async def _page(es, settings, query, sort, size, after) -> tuple[list[tuple[dict[str, Any], float]], int, list[Any] | None]:
    body: dict[str, Any] = {"query": query, "sort": sort, "size": size, "track_total_hits": True}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.PEOPLE), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [(hit["_source"], hit.get("_score") or 0.0) for hit in hits], result["hits"]["total"]["value"], last


async def list_people(
    es: AsyncElasticsearch, settings: Settings, department: str, country: str, manager_id: str, alumni: bool | None, size: int, after: list[Any] | None
) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """ListPeople in directory order, filtered; ``alumni`` None lists both. (Each person's
    document, the total, the last hit's sort values when the page is full.)"""
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if department:
        filters.append({"term": {"department": department}})
    if country:
        filters.append({"term": {"country": country.upper()}})
    if manager_id:
        filters.append({"term": {"manager_id": manager_id}})
    if alumni is not None:
        filters.append({"term": {"alumni": alumni}})
    hits, total, last = await _page(es, settings, {"bool": {"filter": filters}}, DIRECTORY_SORT, size, after)
    return [doc for doc, _ in hits], total, last


MAX_WRITERS = 100


async def _writers_on(es: AsyncElasticsearch, settings: Settings, principal: Principal, topic: str, words: list[str]) -> dict[str, float]:
    """Authors of visible posts tagged with or mentioning the topic, weighted by how many."""
    communities = await caller_communities(es, settings, principal)
    about = {"bool": {"should": [{"term": {"tags.folded": topic.lstrip("#")}}, {"match": {"folded": {"query": " ".join(words), "operator": "and"}}}], "minimum_should_match": 1}}
    try:
        result = await es.search(
            index=settings.index_alias(indices.POSTS),
            query={"bool": {"filter": [about, *content_filter(principal, communities)]}},
            size=0,
            aggs={"authors": {"terms": {"field": "author_id", "size": MAX_WRITERS}}},
        )
    except NotFoundError:  # no posts index yet
        return {}
    buckets = result["aggregations"]["authors"]["buckets"]
    if not buckets:
        return {}
    top = buckets[0]["doc_count"]
    return {b["key"]: 4.0 * b["doc_count"] / top for b in buckets}


async def find_experts(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, topic: str, country: str, include_alumni: bool, size: int, after: list[Any] | None
) -> tuple[list[tuple[dict[str, Any], float]], int, list[Any] | None]:
    """FindExperts on a stripped, non-empty ``topic``: (each person's document and score, the
    total, the last hit's sort values when the page is full)."""
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if not include_alumni:
        filters.append({"term": {"alumni": False}})
    if country:
        filters.append({"term": {"country": country.upper()}})
    # Declared expertise (an exact tag) outranks a mention in the title or bio.
    should = [
        # constant_score: a tag is worth the same however rare it is (no idf).
        {"constant_score": {"filter": {"term": {"expertise": topic}}, "boost": 10}},
        {"match": {"title": {"query": topic, "boost": 2}}},
        {"match": {"bio": {"query": topic}}},
    ]
    # Words as typed: the expertise field's normalizer and the folded fields' analyzer take case
    # and accents off ("Café" finds "cafe").
    words = topic.split()
    if len(words) > 1:
        should.append({"constant_score": {"filter": {"terms": {"expertise": words}}, "boost": 3}})
    # What they have written about it (posts and microposts the caller may see) counts too,
    # below a declared tag: up to 4 points for the most prolific writers.
    for author, weight in (await _writers_on(es, settings, principal, topic, words)).items():
        should.append({"constant_score": {"filter": {"term": {"employee_id": author}}, "boost": weight}})
    query = {"bool": {"should": should, "minimum_should_match": 1, "filter": filters}}
    sort = [{"_score": "desc"}, *DIRECTORY_SORT]
    return await _page(es, settings, query, sort, size, after)

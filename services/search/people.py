"""The people directory and find-an-expert, from the `people` index (and, for
expertise shown by writing, the `posts` index)."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler.auth import current_principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.eventstore import fingerprint
from watercooler.rpc import decode_page_token, encode_page_token, page_size, parse_name
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
    body: dict[str, Any] = {"query": query, "sort": sort, "size": size, "track_total_hits": True}
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.PEOPLE), **body)
    hits = result["hits"]["hits"]
    last = hits[-1]["sort"] if len(hits) == size else None
    return [(hit["_source"], hit.get("_score") or 0.0) for hit in hits], result["hits"]["total"]["value"], last


async def _page(es, settings, query, sort, size, key, token) -> tuple[list[dict[str, Any]], int, str]:
    body: dict[str, Any] = {"query": query, "sort": sort, "size": size, "track_total_hits": True}
    after = decode_page_token(token, key)
    if after is not None:
        body["search_after"] = after
    result = await es.search(index=settings.index_alias(indices.PEOPLE), **body)
    hits = result["hits"]["hits"]
    next_token = encode_page_token(hits[-1]["sort"], key) if len(hits) == size else ""
    return hits, result["hits"]["total"]["value"], next_token


async def list_people(es: AsyncElasticsearch, settings: Settings, request: search_pb2.ListPeopleRequest) -> search_pb2.ListPeopleResponse:
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if request.department:
        filters.append({"term": {"department": request.department}})
    if request.country:
        filters.append({"term": {"country": request.country.upper()}})
    if request.manager:
        filters.append({"term": {"manager_id": parse_name(request.manager, "profiles", field="manager")}})
    if request.state == search_pb2.ListPeopleRequest.ACTIVE_ONLY:
        filters.append({"term": {"alumni": False}})
    elif request.state == search_pb2.ListPeopleRequest.ALUMNI_ONLY:
        filters.append({"term": {"alumni": True}})
    elif request.state:
        raise InvalidArgument("unknown state filter", field="state")
    size = page_size(request.page_size)
    key = fingerprint("people", request.department, request.country, request.manager, str(request.state))[:16]
    hits, total, next_token = await _page(es, settings, {"bool": {"filter": filters}}, DIRECTORY_SORT, size, key, request.page_token)
    return search_pb2.ListPeopleResponse(people=[person_hit(h["_source"]) for h in hits], total_size=total, next_page_token=next_token)


MAX_WRITERS = 100


async def _writers_on(es: AsyncElasticsearch, settings: Settings, topic: str, words: list[str]) -> dict[str, float]:
    """Authors of visible posts tagged with or mentioning the topic, weighted by how many."""
    principal = current_principal()
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


async def find_experts(es: AsyncElasticsearch, settings: Settings, request: search_pb2.FindExpertsRequest) -> search_pb2.SearchPeopleResponse:
    topic = request.topic.strip()
    if not topic:
        raise InvalidArgument("is required", field="topic")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise InvalidArgument(f"must be at most {MAX_TOPIC_LENGTH} characters", field="topic")
    filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
    if not request.include_alumni:
        filters.append({"term": {"alumni": False}})
    if request.country:
        filters.append({"term": {"country": request.country.upper()}})
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
    for author, weight in (await _writers_on(es, settings, topic, words)).items():
        should.append({"constant_score": {"filter": {"term": {"employee_id": author}}, "boost": weight}})
    query = {"bool": {"should": should, "minimum_should_match": 1, "filter": filters}}
    size = page_size(request.page_size)
    key = fingerprint("experts", topic, request.country, str(request.include_alumni))[:16]
    sort = [{"_score": "desc"}, *DIRECTORY_SORT]
    hits, total, next_token = await _page(es, settings, query, sort, size, key, request.page_token)
    return search_pb2.SearchPeopleResponse(people=[person_hit(h["_source"], h.get("_score") or 0.0) for h in hits], total_size=total, next_page_token=next_token)

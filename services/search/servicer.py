"""gRPC face of search: checks the request's shape, runs the query, converts hits."""

from __future__ import annotations

import grpc
from elasticsearch import AsyncElasticsearch

from watercooler.auth import current_principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.eventstore import fingerprint
from watercooler.rpc import decode_page_token, encode_page_token, page_size
from watercooler.search.v1 import search_pb2, search_pb2_grpc

from .queries import people_query

MAX_QUERY_LENGTH = 256


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    async def SearchPeople(self, request, context):
        current_principal()  # every query runs as an authenticated caller
        if len(request.query) > MAX_QUERY_LENGTH:
            raise InvalidArgument(f"must be at most {MAX_QUERY_LENGTH} characters", field="query")
        size = page_size(request.page_size)
        query_key = fingerprint(request.query, request.department, request.country, request.expertise)[:16]
        search_after = decode_page_token(request.page_token, query_key)
        query, sort = people_query(request.query, request.department, request.country, request.expertise)
        body = {"query": query, "sort": sort, "size": size, "track_total_hits": True}
        if search_after is not None:
            body["search_after"] = search_after
        result = await self.es.search(index=self.settings.index_alias("people"), **body)
        hits = result["hits"]["hits"]
        response = search_pb2.SearchPeopleResponse(total_size=result["hits"]["total"]["value"])
        for hit in hits:
            doc = hit["_source"]
            response.people.add(
                profile=f"profiles/{doc['employee_id']}",
                display_name=doc["display_name"],
                title=doc.get("title", ""),
                department=doc.get("department", ""),
                country=doc.get("country", ""),
                expertise=doc.get("expertise", []),
                alumni=doc.get("alumni", False),
                score=hit.get("_score") or 0.0,
            )
        if len(hits) == size:
            response.next_page_token = encode_page_token(hits[-1]["sort"], query_key)
        return response


def register(server: grpc.aio.Server, es: AsyncElasticsearch, settings: Settings) -> list[str]:
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(es, settings), server)
    return [search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name]

"""ListAuditEvents: the audit projection (services/search/readmodels/projections/audit.py) for services."""

from __future__ import annotations

import datetime as dt
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, PermissionDenied
from watercooler.eventstore import fingerprint
from watercooler.rpc import decode_page_token, encode_page_token, page_size
from watercooler.search.v1 import search_pb2

MAX_FILTER_LENGTH = 512
# Newest first; the event id (unique) breaks ties, so pages never skip or repeat an event.
ORDER = [{"occurred_at": "desc"}, {"event_id": "asc"}]


def _text(value: str, field: str) -> str:
    if len(value) > MAX_FILTER_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"must be at most {MAX_FILTER_LENGTH} characters without spaces", field=field)
    return value


async def list_audit_events(es: AsyncElasticsearch, settings: Settings, principal: Principal, request: Any) -> search_pb2.ListAuditEventsResponse:
    if not principal.is_service:
        raise PermissionDenied("the audit trail is for services", field="authorization")
    filters: list[dict[str, Any]] = []
    if request.actor:
        filters.append({"term": {"actor": _text(request.actor, "actor").removeprefix("profiles/")}})
    if request.target_owner:
        owner = _text(request.target_owner, "target_owner")
        if not owner.startswith("profiles/") or owner.count("/") != 1 or owner == "profiles/":
            raise InvalidArgument("must look like 'profiles/{employee_id}'", field="target_owner")
        filters.append({"term": {"target_owner": owner}})
    if request.resource:
        filters.append({"term": {"resource": _text(request.resource, "resource")}})
    start = request.start_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("end_time") else None
    if start and end and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    if start or end:
        bounds = {**({"gte": start.isoformat()} if start else {}), **({"lt": end.isoformat()} if end else {})}
        filters.append({"range": {"occurred_at": bounds}})
    size = page_size(request.page_size)
    query_key = fingerprint("audit", request.actor, request.target_owner, request.resource, str(start), str(end))[:16]
    after = decode_page_token(request.page_token, query_key)
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}, "sort": ORDER, "size": size}
    if after is not None:
        body["search_after"] = after
    try:
        result = await es.search(index=settings.index_alias("audit"), **body)
    except NotFoundError:
        return search_pb2.ListAuditEventsResponse()
    hits = result["hits"]["hits"]
    response = search_pb2.ListAuditEventsResponse()
    for hit in hits:
        d = hit["_source"]
        event = response.audit_events.add(
            event_id=d["event_id"], event_type=d["event_type"], actor=d["actor"], actor_kind=d["actor_kind"], correlation_id=d["correlation_id"],
            causation_id=d["causation_id"], source=d["source"], aggregate_type=d["aggregate_type"], aggregate_id=d["aggregate_id"],
            resource=d.get("resource", ""), target_owner=d.get("target_owner", ""),
        )
        event.occur_time.FromDatetime(dt.datetime.fromisoformat(d["occurred_at"]).astimezone(dt.UTC).replace(tzinfo=None))
    if len(hits) == size:
        response.next_page_token = encode_page_token(hits[-1]["sort"], query_key)
    return response

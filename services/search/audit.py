"""ListAuditEvents: the audit projection (services/search/readmodels/projections/audit.py) for services."""

from __future__ import annotations

import datetime as dt
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, PermissionDenied

from .readmodels import indices

MAX_FILTER_LENGTH = 512
# Newest first; the event id (unique) breaks ties, so pages never skip or repeat an event.
ORDER = [{"occurred_at": "desc"}, {"event_id": "asc"}]


def _text(value: str, field: str) -> str:
    if len(value) > MAX_FILTER_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"must be at most {MAX_FILTER_LENGTH} characters without spaces", field=field)
    return value


def require_reader(principal: Principal) -> None:
    if not principal.is_service:
        raise PermissionDenied("the audit trail is for services", field="authorization")


async def list_audit_events(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, actor: str, target_owner: str, resource: str,
    start: dt.datetime | None, end: dt.datetime | None, size: int, after: list[Any] | None,
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """(the page's audit documents, newest first; the last one's sort values when the page is full)."""
    require_reader(principal)
    filters: list[dict[str, Any]] = []
    if actor:
        filters.append({"term": {"actor": _text(actor, "actor").removeprefix("profiles/")}})
    if target_owner:
        owner = _text(target_owner, "target_owner")
        if not owner.startswith("profiles/") or owner.count("/") != 1 or owner == "profiles/":
            raise InvalidArgument("must look like 'profiles/{employee_id}'", field="target_owner")
        filters.append({"term": {"target_owner": owner}})
    if resource:
        filters.append({"term": {"resource": _text(resource, "resource")}})
    if start and end and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    if start or end:
        bounds = {**({"gte": start.isoformat()} if start else {}), **({"lt": end.isoformat()} if end else {})}
        filters.append({"range": {"occurred_at": bounds}})
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}, "sort": ORDER, "size": size}
    if after is not None:
        body["search_after"] = after
    try:
        result = await es.search(index=settings.index_alias(indices.AUDIT), **body)
    except NotFoundError:
        return [], None
    hits = result["hits"]["hits"]
    return [hit["_source"] for hit in hits], hits[-1]["sort"] if len(hits) == size else None

"""The JSON-over-HTTP view of the search queries, for dashboards that do not speak gRPC,
and the dashboard itself (static files under services/search/dashboard/).

Same queries, same rules: the caller's bearer JWT (``Authorization: Bearer <jwt>``) is
verified into the principal every query runs as; query parameters are the fields of the
gRPC request (an unknown parameter is a 400 naming it); errors carry the gRPC status
name and the field. Documented in docs/search.md."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web
from elasticsearch import AsyncElasticsearch
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from watercooler.auth import Principal, TokenVerifier, set_current_principal
from watercooler.config import Settings
from watercooler.errors import DomainError, InvalidArgument, bounded_message
from watercooler.request_checks import check_request
from watercooler.rpc import page_size
from watercooler.search.v1 import search_pb2 as sp

from . import jams as jam_queries
from . import servicer

log = logging.getLogger(__name__)

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429,
}


def http_port() -> int:
    return int(os.environ.get("WC_SEARCH_HTTP_PORT", "8080"))


def request_from(params: Any, cls: type[Message]) -> Message:
    """Query parameters -> request message: each parameter names a field; repeated fields
    take repeated parameters or comma-separated values; timestamps are RFC 3339."""
    fields = cls.DESCRIPTOR.fields_by_name
    message = cls()
    for key in set(params.keys()):
        field = fields.get(key)
        if field is None:
            raise InvalidArgument(f"unknown parameter; one of {', '.join(fields)}", field=key)
        values = params.getall(key)
        if field.is_repeated:
            getattr(message, key).extend(v.strip() for value in values for v in value.split(",") if v.strip())
            continue
        if len(values) > 1:
            raise InvalidArgument("given more than once", field=key)
        value = values[0]
        if field.message_type is not None:  # google.protobuf.Timestamp
            try:
                getattr(message, key).FromJsonString(value if "T" in value else f"{value}T00:00:00Z")
            except ValueError:
                raise InvalidArgument("must be an RFC 3339 time such as 2026-01-31T12:00:00Z", field=key) from None
        elif field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            try:
                setattr(message, key, int(value))
            except ValueError:
                raise InvalidArgument("must be an integer", field=key) from None
        elif field.type == FieldDescriptor.TYPE_BOOL:
            setattr(message, key, value.lower() in ("1", "true", "yes"))
        else:
            setattr(message, key, value)
    check_request(message)  # the ranges and lengths every gRPC request is held to
    return message


def as_json(message: Message) -> web.Response:
    body = json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


class HttpView:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings
        self.verifier = TokenVerifier(settings)

    @web.middleware
    async def errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except DomainError as error:
            status = error.code.name
            return web.json_response({"error": {"code": HTTP_STATUS.get(status, 400), "status": status, "message": bounded_message(str(error)), "field": error.field or ""}},
                                     status=HTTP_STATUS.get(status, 400))
        except web.HTTPException:
            raise
        except Exception:  # as over gRPC: logged with a reference, never the details
            reference = secrets.token_hex(6)
            log.exception("unhandled error", extra={"path": request.path, "reference": reference})
            return web.json_response({"error": {"code": 500, "status": "INTERNAL", "message": f"internal error (reference {reference})", "field": ""}}, status=500)

    def principal(self, request: web.Request) -> Principal:
        principal = self.verifier.verify(request.headers.get("Authorization"))
        set_current_principal(principal)
        return principal

    async def search(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        return as_json(await servicer.search(self.es, self.settings, principal, request_from(request.query, sp.SearchRequest)))

    async def suggest(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        return as_json(await servicer.suggest(self.es, self.settings, principal, request_from(request.query, sp.SuggestRequest)))

    async def trending(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        return as_json(await servicer.trending(self.es, self.settings, principal, request_from(request.query, sp.TrendingRequest)))

    async def stats(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        return as_json(await servicer.get_stats(self.es, self.settings, principal, request_from(request.query, sp.GetStatsRequest)))

    async def leaderboard(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        query = request_from(request.query, sp.GetJamLeaderboardRequest)
        jam_id = jam_queries.jam_id_from(f"jams/{request.match_info['jam']}")
        doc = await jam_queries.stats_doc(self.es, self.settings, principal, jam_id)
        return as_json(jam_queries.leaderboard(doc, page_size(query.page_size, default=10)))

    async def pulse(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        jam_id = jam_queries.jam_id_from(f"jams/{request.match_info['jam']}")
        return as_json(jam_queries.pulse(await jam_queries.stats_doc(self.es, self.settings, principal, jam_id)))

    async def jams(self, request: web.Request) -> web.Response:
        """The jams with statistics the caller may see, most recently active first (for the jam board)."""
        principal = self.principal(request)
        visible = await jam_queries.board(self.es, self.settings, principal)
        return web.json_response({"jams": [{"name": f"jams/{d['jam_id']}", "title": d.get("title", ""), "participants": d.get("participants", 0), "update_time": d.get("updated_at", "")} for d in visible]},
                                 headers={"Cache-Control": "no-store"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "SERVING", "time": dt.datetime.now(dt.UTC).isoformat()})

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard/")

    async def dashboard_index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.errors])
        app.router.add_get("/api/v1/search", self.search)
        app.router.add_get("/api/v1/suggest", self.suggest)
        app.router.add_get("/api/v1/trending", self.trending)
        app.router.add_get("/api/v1/stats", self.stats)
        app.router.add_get("/api/v1/jams", self.jams)
        app.router.add_get("/api/v1/jams/{jam}/leaderboard", self.leaderboard)
        app.router.add_get("/api/v1/jams/{jam}/pulse", self.pulse)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/", self.root)
        app.router.add_get("/dashboard/", self.dashboard_index)
        app.router.add_static("/dashboard/", DASHBOARD)
        return app


async def start(es: AsyncElasticsearch, settings: Settings) -> web.AppRunner | None:
    """Serve on WC_SEARCH_HTTP_PORT (default 8080). A port in use is logged, not fatal:
    the gRPC API is the service; this view is an extra."""
    runner = web.AppRunner(HttpView(es, settings).app(), access_log=None)
    await runner.setup()
    port = http_port()
    try:
        await web.TCPSite(runner, os.environ.get("WC_SEARCH_HTTP_HOST", "0.0.0.0"), port).start()
    except OSError as exc:
        log.error("search HTTP view not started", extra={"port": port, "error": str(exc)})
        await runner.cleanup()
        return None
    log.info("search HTTP view and dashboard", extra={"url": f"http://127.0.0.1:{port}/dashboard/"})
    return runner

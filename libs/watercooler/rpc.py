"""Helpers for servicers: translate requests into command contexts and back.

Servicers stay thin: they validate the shape of a message (names, masks,
tokens), call the application, and convert the result; domain rules live in
each service's domain model and application.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from .auth import current_principal
from .errors import DomainError, InvalidArgument
from .eventstore import CommandContext, fingerprint

T = TypeVar("T")

# The event stores are synchronous (sqlite3 / psycopg); commands run here so the
# event loop keeps serving other RPCs.
_store_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="store")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_store_pool, lambda: fn(*args, **kwargs))


def command_context(context: grpc.aio.ServicerContext, request_id: str = "") -> CommandContext:
    if request_id:
        validate_request_id(request_id)
    metadata = dict(context.invocation_metadata() or ())
    return CommandContext(
        principal=current_principal(),
        request_id=request_id,
        correlation_id=metadata.get("x-correlation-id", "") or request_id or str(uuid.uuid4()),
        causation_id=metadata.get("x-causation-id", ""),
    )


@contextlib.contextmanager
def fields_under(prefix: str, request_level: tuple[str, ...] = ("request_id", "update_mask", "page_token", "page_size")) -> Iterator[None]:
    """Domain errors name resource fields (``display_name``); a request nests the
    resource (``profile.display_name``).  Rewrites the field path on the way out;
    ``authorization`` (the caller's token, not a message field) stays as it is."""
    try:
        yield
    except DomainError as error:
        if error.field and error.field not in (*request_level, "authorization") and not error.field.startswith(f"{prefix}."):
            error.field = f"{prefix}.{error.field}"
        raise


def validate_request_id(request_id: str) -> None:
    """AIP-155 asks for a UUID; we accept any printable id up to 128 characters."""
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument("must be at most 128 printable characters (a UUID is recommended)", field="request_id")


def request_fingerprint(request: Message, *ignored_fields: str) -> str:
    """Hash of the request without its request id, to tell a retry from a reuse."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in ("request_id", *ignored_fields):
        if copy.DESCRIPTOR.fields_by_name.get(name) is not None:
            copy.ClearField(name)
    return fingerprint(type(request).DESCRIPTOR.full_name, copy.SerializeToString(deterministic=True))


def parse_name(name: str, collection: str, field: str = "name") -> str:
    """``collection/{id}`` -> id (AIP-122)."""
    prefix = f"{collection}/"
    if not name:
        raise InvalidArgument(f"required, as '{collection}/{{id}}'", field=field)
    if not name.startswith(prefix) or "/" in name[len(prefix):] or len(name) == len(prefix):
        raise InvalidArgument(f"must look like '{collection}/{{id}}', got {name!r}", field=field)
    return name[len(prefix):]


# --- page tokens (AIP-158): opaque to callers, bound to the query they came from ---------------
# A token is base64url(JSON {position, query key, issue time}) "." base64url(HMAC-SHA256 tag):
# the tag makes an edited or garbled token INVALID_ARGUMENT instead of a malformed search, and
# the issue time lets tokens expire (AIP-158 allows it; positions into live indices go stale).
# The key is WC_PAGE_TOKEN_SECRET, the same on every replica so any replica takes any token;
# unset, a built-in key still detects garbling and expiry but not a deliberate forgery.
PAGE_TOKEN_TTL_SECONDS = 3600
PAGE_TOKEN_MAX_CHARS = 8192
_PAGE_TOKEN_SKEW_SECONDS = 300  # clocks of replicas may differ a little


def _page_token_tag(payload: bytes) -> bytes:
    secret = os.environ.get("WC_PAGE_TOKEN_SECRET") or "watercooler-page-token-v1"
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]


def page_token_ttl() -> int:
    """Seconds a page token stays valid (WC_PAGE_TOKEN_TTL_SECONDS, default one hour)."""
    try:
        return max(1, int(os.environ.get("WC_PAGE_TOKEN_TTL_SECONDS") or PAGE_TOKEN_TTL_SECONDS))
    except ValueError:
        return PAGE_TOKEN_TTL_SECONDS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def encode_page_token(position: Any, query_key: str, issued_at: float | None = None) -> str:
    issued = int(time.time() if issued_at is None else issued_at)
    payload = json.dumps({"p": position, "q": query_key, "t": issued}, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_page_token_tag(payload))}"


def decode_page_token(token: str, query_key: str, now: float | None = None) -> Any:
    if not token:
        return None
    not_ours = InvalidArgument("is not a token this service issued (garbled or altered); start again from the first page", field="page_token")
    try:
        if len(token) > PAGE_TOKEN_MAX_CHARS or token.count(".") != 1:
            raise ValueError(token)
        body, tag = token.split(".")
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(tag), _page_token_tag(payload)):
            raise ValueError(token)
        data = json.loads(payload)
        position, key, issued = data["p"], data["q"], int(data["t"])
    except (ValueError, KeyError, TypeError):  # binascii.Error and JSONDecodeError are ValueErrors
        raise not_ours from None
    if key != query_key:
        raise InvalidArgument("belongs to a different query; send the same filters as the first page", field="page_token")
    now = time.time() if now is None else now
    ttl = page_token_ttl()
    if issued > now + _PAGE_TOKEN_SKEW_SECONDS:
        raise not_ours
    if now - issued > ttl:
        raise InvalidArgument(f"has expired (page tokens are valid for {ttl} s); start again from the first page", field="page_token")
    return position


def enum_name(enum_type: Any, value: int, field: str, zero: str = "") -> str:
    """The name of a proto3 enum value; proto3 enums are open, so a client may send a
    number this server does not know: that is INVALID_ARGUMENT, not a crash."""
    if value == 0:
        return zero
    try:
        return enum_type.Name(value)
    except ValueError:
        allowed = ", ".join(name for name, number in enum_type.items() if number != 0)
        raise InvalidArgument(f"unknown value {value}; one of {allowed}", field=field) from None


def page_size(requested: int, default: int = 20, maximum: int = 100) -> int:
    if requested < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    if requested > maximum:
        raise InvalidArgument(f"must be at most {maximum}", field="page_size")
    return requested or default

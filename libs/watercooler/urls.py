"""The canonical form of a link: the posts service saves bookmarks under it, and the search
side looks them up by it, so both use this one definition."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .errors import InvalidArgument
from .text import has_control_characters

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = "-._~"
# Tracking parameters that never change what a link points to.
_TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_eid)$", re.I)


def normalize_url(raw: str, field: str = "url") -> str:
    """The canonical form under which one link is saved by many people.

    Lowercase scheme and host (IDNA for non-ASCII hosts), no default port, no
    fragment, no user info, dot segments resolved, percent-escapes normalised
    (unreserved characters decoded, others upper-case), tracking parameters dropped,
    empty path as '/'. Only http and https are accepted."""
    value = (raw or "").strip()
    if not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > MAX_URL_LENGTH or has_control_characters(value) or any(ch.isspace() for ch in value):
        raise InvalidArgument(f"must be a URL of at most {MAX_URL_LENGTH} characters without spaces", field=field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidArgument("is not a valid URL", field=field) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidArgument("only http and https URLs can be bookmarked", field=field)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidArgument("needs a host", field=field)
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidArgument("has an invalid host name", field=field) from None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):  # IPv6 literal
        netloc = f"[{host}]" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")
    path = posixpath.normpath(_requote(parts.path)) if parts.path else "/"
    if parts.path.endswith("/") and not path.endswith("/"):
        path += "/"
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)]
    normalised = urlunsplit((scheme, netloc, path, urlencode(query, quote_via=quote, safe="/:@!$'()*,;"), ""))
    if len(normalised) > MAX_URL_LENGTH:
        raise InvalidArgument(f"must be at most {MAX_URL_LENGTH} characters", field=field)
    return normalised


def _requote(path: str) -> str:
    return quote(unquote(path), safe="/:@!$&'()*+,;=" + _UNRESERVED)

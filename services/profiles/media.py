"""Media items, as the profiles service needs them for status photos and avatars.

The media library is the posts service's (its store is not ours to read): we ask
``MediaService.GetMediaItem`` over gRPC with the profiles service's own token, as the posts
service asks us about profiles and memberships (services/posts/membership.py). A service sees
every item, removed ones included, so the answer is the item's facts and the rules of
domainmodel.py decide who may see or use it.

A write (sharing a photo, setting an avatar) asks afresh, and fails with UNAVAILABLE when the
posts service cannot answer (nothing is recorded unchecked). A read (the avatar shown with a
profile) takes an answer at most ``WC_MEDIA_CACHE_SECONDS`` (default 5) old, so reading a page
of profiles does not cost a call per profile each time, and an item made RESTRICTED or removed
stops showing within that time; if the posts service cannot answer (within READ_TIMEOUT_SECONDS),
the avatar is not shown (never shown unchecked), the profile itself still is, and the next
``UNANSWERED_SECONDS`` of reads do not ask again (a posts outage must not slow every profile read).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import grpc

from watercooler.client import ServiceCredentials, channel
from watercooler.config import Settings
from watercooler.errors import DomainError

from .domainmodel import MediaFacts

log = logging.getLogger(__name__)

DEFAULT_CACHE_SECONDS = 5.0
UNANSWERED_SECONDS = 1.0
WRITE_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 1.0
MAX_ANSWERS = 50_000


class MediaUnavailable(DomainError):
    """The posts service did not answer: UNAVAILABLE, the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class MediaLibrary:
    """``lookup(name)``: the facts of ``media/{id}``, or None when there is no such item."""

    def __init__(self, settings: Settings, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.ttl = ttl if ttl is not None else float(os.environ.get("WC_MEDIA_CACHE_SECONDS") or DEFAULT_CACHE_SECONDS)
        self.clock = clock
        self._lock = threading.Lock()
        self._stub: Any = None
        self._credentials = ServiceCredentials(settings, "profiles")
        self._cache: OrderedDict[str, tuple[MediaFacts | None, float]] = OrderedDict()

    def _media(self) -> Any:
        from watercooler.posts.v1 import media_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = media_pb2_grpc.MediaServiceStub(channel(self.settings, "posts"))
            return self._stub

    def lookup(self, name: str, field: str, timeout: float = WRITE_TIMEOUT_SECONDS) -> MediaFacts | None:
        """As the posts service has the item now (for a write)."""
        from watercooler.posts.v1 import media_pb2, posts_pb2

        try:
            item = self._media().GetMediaItem(media_pb2.GetMediaItemRequest(name=name), metadata=self._credentials.metadata(), timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                facts = None
            else:
                raise MediaUnavailable(f"cannot ask the media library about {name}: {exc.code().name}; retry", field=field) from exc
        else:
            facts = MediaFacts(owner=item.owner, kind=media_pb2.MediaItem.Kind.Name(item.kind), visibility=_visibility_name(item.visibility), removed=item.removed,
                               classification=posts_pb2.Classification.Label.Name(item.classification or posts_pb2.Classification.INTERNAL))
        self._remember(name, facts, self.clock())
        return facts

    def _remember(self, name: str, facts: MediaFacts | None, fetched: float) -> None:
        with self._lock:
            self._cache[name] = (facts, fetched)
            self._cache.move_to_end(name)
            while len(self._cache) > MAX_ANSWERS:
                self._cache.popitem(last=False)

    def recent(self, name: str) -> MediaFacts | None:
        """At most ``ttl`` old (for a read); None also when the posts service cannot answer."""
        with self._lock:
            answer = self._cache.get(name)
        if answer is not None and self.clock() - answer[1] < self.ttl:
            return answer[0]
        try:
            return self.lookup(name, field="photo", timeout=READ_TIMEOUT_SECONDS)
        except MediaUnavailable as exc:
            log.warning("photo not shown: the media library did not answer", extra={"photo": name, "error": str(exc)})
            # Not shown, and not asked again for a moment: remembered as if fetched long enough
            # ago that it expires UNANSWERED_SECONDS from now.
            self._remember(name, None, self.clock() - max(0.0, self.ttl - UNANSWERED_SECONDS))
            return None


def _visibility_name(value: int) -> str:
    from watercooler.posts.v1 import wiki_pb2

    return wiki_pb2.Visibility.Name(value)

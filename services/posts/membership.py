"""Community membership, as the posts service needs it to show a COMMUNITY item by name.

The source of truth is the profiles service's Community aggregate; its store is not ours
to read, so we ask it over gRPC (``CommunityService.ListCommunityMembers``, read from
the event store, so always current) with the posts service's own token. The search
index ``communities`` would also answer, but it lags the event store by the projection
delay and would make the posts service depend on Elasticsearch for a command path.

One fetch brings a community's whole member set, which then answers for every member
for ``WC_MEMBERSHIP_CACHE_SECONDS`` (default 10): a leave or removal takes effect within
that time. A person not in a cached set triggers a refetch at most once per
``NEGATIVE_REFRESH_SECONDS`` per community, so a join shows within about a second while
non-members cannot make us hammer the profiles service.

Fails closed: if the profiles service cannot answer, the caller gets UNAVAILABLE rather
than content they may not be entitled to (or a NOT_FOUND that would be a lie).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from watercooler.client import bearer_metadata, channel, service_token
from watercooler.config import Settings
from watercooler.errors import DomainError

DEFAULT_CACHE_SECONDS = 10.0
NEGATIVE_REFRESH_SECONDS = 1.0
PAGE_SIZE = 100  # the largest page ListCommunityMembers serves
MAX_COMMUNITIES = 10_000  # cached member sets; the oldest go first beyond this


class MembershipUnavailable(DomainError):
    """The profiles service did not answer: UNAVAILABLE, the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


@dataclass
class _Entry:
    members: frozenset[str]
    fetched: float


class CommunityMembership:
    """``is_member(community_id, employee_id)`` with a short TTL cache (ids, not resource names)."""

    def __init__(self, settings: Settings, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.ttl = ttl if ttl is not None else float(os.environ.get("WC_MEMBERSHIP_CACHE_SECONDS") or DEFAULT_CACHE_SECONDS)
        self.clock = clock
        self._lock = threading.Lock()
        self._stub: Any = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._cache: dict[str, _Entry] = {}

    def _communities(self) -> Any:
        from watercooler.profiles.v1 import communities_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = communities_pb2_grpc.CommunityServiceStub(channel(self.settings, "profiles"))
                self._metadata = bearer_metadata(service_token(self.settings, "posts"))
            return self._stub

    def is_member(self, community: str, employee_id: str) -> bool:
        if not community or not employee_id:
            return False
        now = self.clock()
        entry = self._cache.get(community)
        if entry is not None:
            age = now - entry.fetched
            if age < self.ttl and (employee_id in entry.members or age < min(NEGATIVE_REFRESH_SECONDS, self.ttl)):
                return employee_id in entry.members
        entry = _Entry(self.fetch(community), now)
        with self._lock:
            if len(self._cache) >= MAX_COMMUNITIES and community not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[community] = entry
        return employee_id in entry.members

    def fetch(self, community: str) -> frozenset[str]:
        """Every member of the community; an unknown community has none."""
        from watercooler.profiles.v1 import communities_pb2

        members: set[str] = set()
        token = ""
        while True:
            try:
                page = self._communities().ListCommunityMembers(
                    communities_pb2.ListCommunityMembersRequest(parent=f"communities/{community}", page_size=PAGE_SIZE, page_token=token),
                    metadata=self._metadata,
                    timeout=5,
                )
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    return frozenset()
                raise MembershipUnavailable(f"cannot read the members of communities/{community}: {exc.code().name}; retry", field="community") from exc
            members.update(name.removeprefix("profiles/") for name in page.members)
            token = page.next_page_token
            if not token:
                return frozenset(members)

"""Community membership, as the posts service needs it to show a COMMUNITY item by name.

The source of truth is the profiles service's Community aggregate; its store is not ours
to read, so we ask it over gRPC with the posts service's own token. The search index
``communities`` would also answer, but it lags the event store by the projection delay and
would make the posts service depend on Elasticsearch for a command path.

We ask the one question a read needs, whether this person is a member of this community
(``CommunityService.GetMembership``, read from the event store, so always current): one call
whatever the size of the community, where fetching its member list took a call per 100
members (530 for a community of 53,000). The answer is cached per (community, person): a
member's for ``WC_MEMBERSHIP_CACHE_SECONDS`` (default 10), so a leave or removal takes effect
within that time; a non-member's for at most ``NEGATIVE_REFRESH_SECONDS``, so a join shows
within about a second while a non-member's reads cannot make us hammer the profiles service.

Fails closed: if the profiles service cannot answer, the caller gets UNAVAILABLE rather
than content they may not be entitled to (or a NOT_FOUND that would be a lie).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from watercooler.client import ServiceCredentials, channel
from watercooler.config import Settings
from watercooler.errors import DomainError

DEFAULT_CACHE_SECONDS = 10.0
NEGATIVE_REFRESH_SECONDS = 1.0
MAX_ANSWERS = 200_000  # cached (community, person) answers; the oldest go first beyond this


class MembershipUnavailable(DomainError):
    """The profiles service did not answer: UNAVAILABLE, the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


@dataclass
class _Answer:
    is_member: bool
    fetched: float


class CommunityMembership:
    """``is_member(community_id, employee_id)`` with a short TTL cache (ids, not resource names)."""

    def __init__(self, settings: Settings, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.ttl = ttl if ttl is not None else float(os.environ.get("WC_MEMBERSHIP_CACHE_SECONDS") or DEFAULT_CACHE_SECONDS)
        self.clock = clock
        self._lock = threading.Lock()
        self._stub: Any = None
        self._credentials = ServiceCredentials(settings, "posts")
        self._cache: OrderedDict[tuple[str, str], _Answer] = OrderedDict()

    def _communities(self) -> Any:
        from watercooler.profiles.v1 import communities_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = communities_pb2_grpc.CommunityServiceStub(channel(self.settings, "profiles"))
            return self._stub

    def is_member(self, community: str, employee_id: str) -> bool:
        if not community or not employee_id:
            return False
        key = (community, employee_id)
        now = self.clock()
        with self._lock:
            answer = self._cache.get(key)
        if answer is not None:
            lifetime = self.ttl if answer.is_member else min(NEGATIVE_REFRESH_SECONDS, self.ttl)
            if now - answer.fetched < lifetime:
                return answer.is_member
        answer = _Answer(self.fetch(community, employee_id), now)
        with self._lock:
            self._cache[key] = answer
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_ANSWERS:
                self._cache.popitem(last=False)
        return answer.is_member

    def owners(self, community: str) -> list[str]:
        """The employee ids of the community's owners now (not cached: asked for moderation only)."""
        found = self._community(community)
        return [] if found is None else [owner.removeprefix("profiles/") for owner in found.owners]

    def archived(self, community: str) -> bool:
        """Whether the community is archived (read-only) now: asked before a write into it, not
        cached (writes are rare next to reads, and an archive must hold at once)."""
        found = self._community(community)
        return found is not None and found.archived

    def _community(self, community: str) -> Any:
        from watercooler.profiles.v1 import communities_pb2

        try:
            return self._communities().GetCommunity(communities_pb2.GetCommunityRequest(name=f"communities/{community}"), metadata=self._credentials.metadata(), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise MembershipUnavailable(f"cannot ask about communities/{community}: {exc.code().name}; retry", field="community") from exc

    def fetch(self, community: str, employee_id: str) -> bool:
        """Whether the person is a member now; an unknown community has no members."""
        from watercooler.profiles.v1 import communities_pb2

        try:
            self._communities().GetMembership(
                communities_pb2.GetMembershipRequest(name=f"communities/{community}/members/{employee_id}"),
                metadata=self._credentials.metadata(),
                timeout=5,
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return False
            raise MembershipUnavailable(f"cannot ask whether a person is a member of communities/{community}: {exc.code().name}; retry", field="community") from exc
        return True

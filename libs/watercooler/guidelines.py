"""The participation guidelines: a person publishes only once they have accepted the current version.

The text and its version are in docs/guidelines.md; the version every service asks for is
``Settings.guidelines_version`` (``WC_GUIDELINES_VERSION``), so a new version asks everyone
again. Acceptance is an event on the person's profile (``GuidelinesAccepted``, through
``ProfileService.AcceptGuidelines``): the profiles service is the source of truth.

How the other services learn it: they ask the profiles service (``GetProfile`` with their own
service token) and cache the answer, as the posts service does for community membership
(services/posts/membership.py). Why not a claim in the caller's token: the token comes from the
identity provider, which knows nothing of the guidelines, and a claim the caller could send
unsigned would prove nothing. Why not a projection: the search index lags the event store, and a
command path should not depend on Elasticsearch. The cache is cheap to keep right: having
accepted a version is for ever, so a yes is kept for the life of the process (keyed by person
and version); a no is not cached at all (the person is refused, accepts, and their next try
must pass at once). Fails closed: if the profiles service cannot answer, UNAVAILABLE.

Who is asked: people (employees and alumni) when they write something another person can see,
and guests when they write in a jam (ideas, threads, replies): everyone who publishes answers for
it. A guest has no profile: the jams service, where guests write, records their acceptance
(``JamService.AcceptGuestGuidelines``, a ``GuestGuidelines`` aggregate per guest identity).
Services (platform jobs, seeders) act for the platform and are not asked. A private draft or a
PRIVATE item is seen by nobody else, so it needs no acceptance; publishing it does.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from .auth import Principal
from .client import ServiceCredentials, channel
from .config import Settings
from .errors import DomainError, FailedPrecondition

# People remembered as having accepted this process's version; beyond this, the oldest go first.
MAX_REMEMBERED = 500_000


class GuidelinesNotAccepted(FailedPrecondition):
    """FAILED_PRECONDITION naming the version to accept (also in the ErrorInfo metadata)."""


class GuidelinesUnavailable(DomainError):
    """The profiles service did not answer: UNAVAILABLE, the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


PERSON_ACCEPTS = "ProfileService.AcceptGuidelines"
GUEST_ACCEPTS = "JamService.AcceptGuestGuidelines"


def not_accepted(version: str, how: str = PERSON_ACCEPTS) -> GuidelinesNotAccepted:
    # No field: it is no field of the request that is wrong (and a BadRequest would prefix it
    # with the request's message). The version is in the message and in the ErrorInfo metadata.
    return GuidelinesNotAccepted(
        f"guidelines_version: accept version {version} of the participation guidelines ({how}, docs/guidelines.md) before publishing",
        guidelines_version=version,
    )


class GuidelinesAcceptance:
    """``require(principal)``: refuses a person who has not accepted the current version."""

    def __init__(self, settings: Settings, caller: str):
        self.settings = settings
        self.version = settings.guidelines_version
        self._credentials = ServiceCredentials(settings, caller)
        self._lock = threading.Lock()
        self._stub: Any = None
        self._accepted: dict[str, None] = {}  # insertion-ordered: the oldest go first

    def _profiles(self) -> Any:
        from watercooler.profiles.v1 import profiles_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = profiles_pb2_grpc.ProfileServiceStub(channel(self.settings, "profiles"))
            return self._stub

    def require(self, principal: Principal) -> None:
        if principal.is_service or self.has_accepted(principal.subject):
            return
        raise not_accepted(self.version)

    def has_accepted(self, person_id: str) -> bool:
        with self._lock:
            if person_id in self._accepted:
                return True
        if self.fetch(person_id) != self.version:
            return False
        with self._lock:
            self._accepted[person_id] = None
            while len(self._accepted) > MAX_REMEMBERED:
                del self._accepted[next(iter(self._accepted))]
        return True

    def fetch(self, person_id: str) -> str:
        """The version the person accepted last ('' for none, or no profile: nobody to accept)."""
        from watercooler.profiles.v1 import profiles_pb2

        try:
            profile = self._profiles().GetProfile(
                profiles_pb2.GetProfileRequest(name=f"profiles/{person_id}"), metadata=self._credentials.metadata(), timeout=5
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return ""
            raise GuidelinesUnavailable(f"cannot ask whether profiles/{person_id} accepted the guidelines: {exc.code().name}; retry") from exc
        return profile.guidelines_version


def check_accepted(principal: Principal, accepted_version: str, current_version: str) -> None:
    """The same rule where the profile is at hand (inside the profiles service)."""
    if not principal.is_service and accepted_version != current_version:
        raise not_accepted(current_version)


class AcceptForPeople:
    """For seeders and tests, which write as many people: ``accept(employee_id)`` records, as a
    service, that the person accepted the current guidelines, once per person and process (one
    call the first time, none after). A person without a profile is left as they are."""

    def __init__(self, settings: Settings, metadata: tuple[tuple[str, str], ...], stub: Any = None):
        self.settings = settings
        self.metadata = metadata
        self._stub = stub
        self._lock = threading.Lock()
        self._done: set[str] = set()

    def accept(self, employee_id: str) -> None:
        from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc

        with self._lock:
            if employee_id in self._done:
                return
            if self._stub is None:
                self._stub = profiles_pb2_grpc.ProfileServiceStub(channel(self.settings, "profiles"))
        request = profiles_pb2.AcceptGuidelinesRequest(name=f"profiles/{employee_id}", version=self.settings.guidelines_version)
        for attempt in range(5):
            try:
                self._stub.AcceptGuidelines(request, metadata=self.metadata, timeout=30)
                break
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return
                # Two writers accepting for the same person at once: the loser finds it done.
                if exc.code() != grpc.StatusCode.ABORTED or attempt == 4:
                    raise
        with self._lock:
            self._done.add(employee_id)

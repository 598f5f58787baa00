"""Domain errors. Applications raise these; the gRPC layer maps each to its status.

Every error names the offending field where there is one (AIP-193), so a caller
can tell exactly what to fix.
"""

from __future__ import annotations

import re

import grpc

# How much of a caller's value an error repeats back.  Errors travel in gRPC trailers (the
# message and the AIP-193 details), whose size the transport caps (8 KiB by default): an
# error echoing a 15,000-character name would itself fail as RESOURCE_EXHAUSTED.
ECHO_LIMIT = 100
MESSAGE_LIMIT = 1024
_LONG_RUN = re.compile(r"\S{" + str(ECHO_LIMIT + 1) + ",}")


def bounded(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def bounded_message(text: str) -> str:
    """A message with every long unbroken run (an echoed name, id or token) cut to ECHO_LIMIT
    characters, and the whole cut to MESSAGE_LIMIT."""
    return bounded(_LONG_RUN.sub(lambda run: bounded(run.group()), text), MESSAGE_LIMIT)


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, field: str = "", **details: object):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DomainError):
    """A concurrent change won (stale etag / expected version): re-read and retry."""

    code = grpc.StatusCode.ABORTED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(DomainError):
    """A backend answered that it cannot serve now (busy, a shard away): retry after a while."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

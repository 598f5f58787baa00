"""How the platform's workers wait between attempts: tenacity's policies, named once.

The projections, the counters, the thumbnail maker and the media erasure follower each hold a
record that failed and try it again until it passes (or, for a fault in the record itself, a
few times). The retry loops are tenacity's (a kept library: jitter, attempt state, stop and
wait policies, sync and asyncio alike); what is ours is which wait a failure gets:

- **unreachable** (connection refused or reset, a server restarting): nothing is overloaded,
  so a worker asks again within ``UNREACHABLE_MAX_SECONDS``: that cap is how late a worker
  can notice the server is back.
- **anything else** (refusing load with 429, a timeout, a failing record): exponential up to
  ``LOADED_MAX_SECONDS``, so an overloaded cluster is not hammered.

Both are jittered, so the replicas of a worker that failed together do not retry together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from elasticsearch import ConnectionError as ElasticsearchUnreachable
from tenacity import RetryCallState, wait_exponential_jitter

UNREACHABLE_MAX_SECONDS = 2.0
LOADED_MAX_SECONDS = 10.0

_wait_unreachable = wait_exponential_jitter(initial=0.5, max=UNREACHABLE_MAX_SECONDS, jitter=0.5)
_wait_loaded = wait_exponential_jitter(initial=0.5, max=LOADED_MAX_SECONDS, jitter=1.0)


def unreachable(error: BaseException | None) -> bool:
    """The other side is not there (as opposed to there and refusing, or slow)."""
    if isinstance(error, (ConnectionRefusedError, ConnectionResetError, ElasticsearchUnreachable)):
        return True
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() == grpc.StatusCode.UNAVAILABLE
    try:
        from botocore.exceptions import EndpointConnectionError
    except ImportError:  # pragma: no cover - botocore is a dependency
        return False
    return isinstance(error, EndpointConnectionError)


def wait_for_failure(state: RetryCallState) -> float:
    """tenacity's ``wait``: the seconds before the next attempt, by what the last one met."""
    error = state.outcome.exception() if state.outcome is not None else None
    return (_wait_unreachable if unreachable(error) else _wait_loaded)(state)


def last_error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def logged(logger: logging.Logger, message: str, **extra: Any) -> Callable[[RetryCallState], None]:
    """tenacity's ``before_sleep``: the failure logged with its traceback, fields and attempt
    (tenacity's own ``before_sleep_log`` has no structured fields)."""

    def log(state: RetryCallState) -> None:
        logger.error(message, exc_info=last_error(state), extra={**extra, "attempt": state.attempt_number})

    return log

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

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import grpc
from elasticsearch import ConnectionError as ElasticsearchUnreachable
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

T = TypeVar("T")

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
    return seconds_before_retry(last_error(state), state.attempt_number)


def seconds_before_retry(error: BaseException | None, failed_attempts: int) -> float:
    """The wait after ``failed_attempts`` failed attempts, the last of them with ``error`` (for a
    caller that made its first attempt outside a tenacity loop)."""
    policy = _wait_unreachable if unreachable(error) else _wait_loaded
    return policy(SimpleNamespace(attempt_number=failed_attempts))  # type: ignore[arg-type]  # the policies read only this


def last_error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def logged(logger: logging.Logger, message: str, level: int = logging.ERROR, **extra: Any) -> Callable[[RetryCallState], None]:
    """tenacity's ``before_sleep``: the failure logged with its traceback, fields and attempt
    (tenacity's own ``before_sleep_log`` has no structured fields)."""

    def log(state: RetryCallState) -> None:
        logger.log(level, message, exc_info=last_error(state), extra={**extra, "attempt": state.attempt_number})

    return log


async def until_passed(call: Callable[[], Awaitable[T]], failed: Callable[[BaseException], None], stop: Callable[[], bool] = lambda: False) -> T:
    """``call()`` until it passes, ``failed`` told of each failure and the wait before the next
    attempt ``seconds_before_retry``'s; once ``stop()`` says so after a failure, that failure
    is raised. The first attempt is made outside tenacity's loop: most calls pass at once, and
    the loop's state machine costs about 20 us a call (a single write's batches hold one event)."""
    try:
        return await call()
    except Exception as error:
        failed(error)
        if stop():
            raise
        await asyncio.sleep(seconds_before_retry(error, 1))
    async for attempt in AsyncRetrying(retry=retry_if_exception_type(Exception), stop=lambda _: stop(), reraise=True,
                                       wait=lambda state: seconds_before_retry(last_error(state), state.attempt_number + 1),
                                       after=lambda state: failed(last_error(state))):  # type: ignore[arg-type]  # set: the attempt failed
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity returns or raises")

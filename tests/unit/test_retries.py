"""The workers' wait between attempts (watercooler.retries, tenacity's loops): a server that is
not there is asked again within seconds, one refusing load is backed off from further, each
with jitter; and the thumbnail maker's and erasure follower's loops keep their contracts."""

from __future__ import annotations

import asyncio
import threading
import time

import elasticsearch
import grpc
import pytest
from tenacity import RetryCallState, Retrying

from services.posts import thumbnails
from services.posts.library import erasure
from watercooler import retries


def waits(error: BaseException, attempts: int) -> list[float]:
    out = []
    for number in range(1, attempts + 1):
        state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = number
        state.set_exception((type(error), error, None))
        out.append(retries.wait_for_failure(state))
    return out


class Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE


class Exhausted(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_server_not_there_is_asked_again_within_the_unreachable_cap():
    for error in (elasticsearch.ConnectionError("refused"), ConnectionRefusedError(), Unavailable()):
        assert retries.unreachable(error)
        late = waits(error, 30)
        assert max(late) <= retries.UNREACHABLE_MAX_SECONDS
        assert late[-1] >= retries.UNREACHABLE_MAX_SECONDS - 0.5  # exponential up to the cap, not a fixed short wait


def test_a_server_refusing_load_is_backed_off_from_further_with_jitter():
    overloaded = elasticsearch.ApiError("es_rejected_execution_exception", meta=type("M", (), {"status": 429})(), body={})
    for error in (overloaded, Exhausted(), TimeoutError(), RuntimeError("bad record")):
        assert not retries.unreachable(error)
        late = waits(error, 30)
        assert max(late) <= retries.LOADED_MAX_SECONDS
        assert late[-1] > retries.UNREACHABLE_MAX_SECONDS
    first_waits = {round(waits(RuntimeError(), 1)[0], 6) for _ in range(20)}
    assert len(first_waits) > 1  # jittered: replicas that failed together do not retry together


@pytest.fixture
def no_sleeping(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_thumbnails_wait_out_a_transient_failure_and_skip_a_record_failing_otherwise(no_sleeping):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= thumbnails.MAX_ATTEMPTS + 3:
            raise Unavailable()

    thumbnails.with_retries(flaky, "media/1")
    assert len(calls) == thumbnails.MAX_ATTEMPTS + 4  # past MAX_ATTEMPTS: transient failures are waited out
    assert len(no_sleeping) == len(calls) - 1 and max(no_sleeping) <= retries.UNREACHABLE_MAX_SECONDS

    calls.clear()

    def broken():
        calls.append(1)
        raise ValueError("not an image")

    thumbnails.with_retries(broken, "media/2")  # skipped, not raised: one bad record must not stop the stream
    assert len(calls) == thumbnails.MAX_ATTEMPTS


def test_the_erasure_follower_retries_until_handled_and_gives_up_only_when_stopping(monkeypatch):
    stopping = threading.Event()
    monkeypatch.setattr(stopping, "wait", lambda seconds: None)
    calls = []

    def store_away_then_back(app, value):
        calls.append(value)
        if len(calls) < 8:
            raise ConnectionRefusedError("store away")

    monkeypatch.setattr(erasure, "handle", store_away_then_back)
    erasure._until_handled(None, b"erased", stopping)
    assert len(calls) == 8  # never skipped, however many failures

    calls.clear()

    def away_until_stopped(app, value):
        calls.append(value)
        if len(calls) == 3:
            stopping.set()
        raise ConnectionRefusedError("store away")

    monkeypatch.setattr(erasure, "handle", away_until_stopped)
    erasure._until_handled(None, b"erased", stopping)  # returns once stopping, the erasure left to be read again
    assert len(calls) == 3


def test_until_passed_waits_between_failures_and_raises_the_last_once_told_to_stop(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    attempts: list[int] = []
    told: list[BaseException] = []

    async def away_twice():
        attempts.append(1)
        if len(attempts) <= 2:
            raise elasticsearch.ConnectionError("refused")
        return "done"

    assert asyncio.run(retries.until_passed(away_twice, told.append)) == "done"
    assert len(attempts) == 3 and len(told) == 2 and len(slept) == 2
    assert all(0.5 <= s <= retries.UNREACHABLE_MAX_SECONDS for s in slept)

    attempts.clear()

    async def broken():
        attempts.append(1)
        raise ValueError(f"bad {len(attempts)}")

    with pytest.raises(ValueError, match="bad 4"):
        asyncio.run(retries.until_passed(broken, told.append, stop=lambda: len(attempts) >= 4))
    assert len(attempts) == 4

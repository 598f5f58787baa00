"""The processor's retry without Kafka or Elasticsearch: a batch that keeps failing is split
down to the record at fault, which is parked while the rest is applied in order; a transient
failure (Elasticsearch down or refusing load) is waited out however long it lasts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import elasticsearch
import pytest

from watercooler import processor
from watercooler.personaldata import KeysUnavailable
from watercooler.projection import BatchResult


def record(value: str):
    return SimpleNamespace(message=SimpleNamespace(value=value.encode()))


class Refusing:
    """A projection that refuses any batch holding b"bad", and fails transiently at first."""

    name = "test"

    def __init__(self, transient_failures: int = 0):
        self.transient_failures = transient_failures
        self.applied: list[bytes] = []
        self.calls = 0

    async def apply_batch(self, es, records, value_of):
        self.calls += 1
        if self.transient_failures:
            self.transient_failures -= 1
            raise elasticsearch.ConnectionError("connection refused")
        values = [value_of(r) for r in records]
        if b"bad" in values:
            raise RuntimeError("bulk write failed: {'type': 'illegal_argument_exception'}")
        self.applied += values
        return BatchResult(written=len(values))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    async def sleep(_seconds):
        return None

    monkeypatch.setattr(processor.asyncio, "sleep", sleep)


def test_a_batch_that_keeps_failing_parks_the_record_at_fault_and_applies_the_rest_in_order():
    projection = Refusing()
    records = [record(v) for v in ("a", "b", "bad", "c", "d")]
    result = asyncio.run(processor._apply_with_retry(projection, None, records, max_attempts=3))
    assert [r.message.value for r, _ in result.kept_failing] == [b"bad"]
    assert result.kept_failing[0][1].startswith("failed 3 times: RuntimeError")
    assert projection.applied == [b"a", b"b", b"c", b"d"] and result.written == 4


def test_a_transient_failure_is_waited_out_and_parks_nothing():
    projection = Refusing(transient_failures=12)
    result = asyncio.run(processor._apply_with_retry(projection, None, [record("a")], max_attempts=2))
    assert result.kept_failing == [] and projection.applied == [b"a"] and projection.calls == 13


def test_what_is_transient():
    assert processor.transient(RuntimeError("bulk write to x failed: {'type': 'es_rejected_execution_exception'}"))
    assert not processor.transient(RuntimeError("bulk write to x failed: {'type': 'illegal_argument_exception'}"))
    assert not processor.transient(ValueError("bad"))
    assert processor.transient(KeysUnavailable("the personal data keys could not be read: UNAVAILABLE"))

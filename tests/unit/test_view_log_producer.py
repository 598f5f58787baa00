"""The views' Kafka producer (services/posts/library/viewlog.py) with every broker gone."""

from __future__ import annotations

import asyncio
import time

from aiokafka.client import AIOKafkaClient

from services.posts.library.viewlog import metadata_retries_back_off


def test_a_producer_waits_between_failed_metadata_updates():
    """aiokafka's sender asks again the moment an update fails: each failure now waits the
    client's retry backoff, and a successful update answers at once."""

    async def run() -> tuple[list[bool], float, float]:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1", retry_backoff_ms=100)  # knows no broker: every update fails
        metadata_retries_back_off(client)
        began = time.monotonic()
        answers = [await client._metadata_update(client.cluster, set()) for _ in range(5)]
        failing = time.monotonic() - began

        async def succeeds(cluster, topics) -> bool:
            return True

        client._metadata_update = succeeds
        metadata_retries_back_off(client)
        began = time.monotonic()
        answers += [await client._metadata_update(client.cluster, set()) for _ in range(5)]
        return answers, failing, time.monotonic() - began

    answers, failing, succeeding = asyncio.run(run())
    assert answers == [False] * 5 + [True] * 5
    assert failing >= 0.5, f"five failed updates took {failing:.3f} s"
    assert succeeding < 0.1, f"five updates took {succeeding:.3f} s"

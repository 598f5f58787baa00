"""Where a replay starts: ``projection.from_the_beginning`` (rebuilds, dlq-replay, counters)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from watercooler.projection import from_the_beginning


class _Consumer:
    """What ``from_the_beginning`` asks of a group-less aiokafka consumer."""

    def __init__(self, assigned: list[TopicPartition], known: dict[str, set[int] | None]):
        self.assigned, self.known, self.sought = assigned, known, None

    def assignment(self):
        return set(self.assigned)

    def subscription(self):
        return set(self.known)

    def partitions_for_topic(self, topic):
        return self.known.get(topic)

    async def seek_to_beginning(self, *partitions):
        self.sought = partitions

    async def end_offsets(self, partitions):
        return {tp: 7 for tp in partitions}


def test_a_replay_starts_at_the_beginning_of_every_assigned_partition():
    tps = [TopicPartition("t", 1), TopicPartition("t", 0)]
    consumer = _Consumer(tps, {"t": {0, 1}})
    partitions, end = asyncio.run(from_the_beginning(consumer, wait_seconds=0.2))
    assert partitions == sorted(tps) and consumer.sought == tuple(sorted(tps)) and end == {tp: 7 for tp in tps}


def test_a_topic_with_partitions_none_of_which_came_is_an_error_not_an_empty_replay():
    """Else a rebuild would switch its alias to an empty index."""
    with pytest.raises(RuntimeError, match="no partition of t was assigned"):
        asyncio.run(from_the_beginning(_Consumer([], {"t": {0, 1, 2}}), wait_seconds=0.2))


def test_topics_without_partitions_are_an_empty_replay():
    assert asyncio.run(from_the_beginning(_Consumer([], {"t": None}), wait_seconds=0.2)) == ([], {})

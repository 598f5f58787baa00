"""Kafka topics, producers and followers (kafka-python), shared by relays, workers, tools and tests."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .config import EVENT_SOURCED_SERVICES, Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, services: tuple[str, ...] = EVENT_SOURCED_SERVICES, timeout_seconds: float = 30.0) -> list[str]:
    """Create the event topics (and the dead-letter topic) if missing."""
    return create_topics(settings, [settings.topic(s) for s in services] + [settings.dead_letter_topic], timeout_seconds)


def create_topics(settings: Settings, names: list[str], timeout_seconds: float = 30.0) -> list[str]:
    """Create the named topics if missing, the one way every topic of the platform is made.

    Event and fact topics keep everything forever: they are the log every projection and
    count is rebuilt from. ``min.insync.replicas`` 2 once there are replicas to hold it."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="watercooler-topics",
                             request_timeout_ms=int(timeout_seconds * 1000), bootstrap_timeout_ms=int(timeout_seconds * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": str(min(2, settings.topic_replication))},
            )
            for name in names
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race
            log.info("created topics", extra={"topics": ",".join(t.name for t in missing)})
    finally:
        admin.close()
    return names


def reliable_producer(settings: Settings, client_id: str) -> KafkaProducer:
    """Idempotent producer: acks from all in-sync replicas, retries without duplicates or reordering."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        retries=2**31 - 1,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type="gzip",
        metrics_enabled=False,  # its sensors feed no reporter here (the relay's note)
    )


def committing_follower(settings: Settings, service: str, group: str, max_poll_records: int, patient_seconds: float = 0.0) -> KafkaConsumer:
    """A consumer of one service's topic (created if missing) for a worker that commits its
    offsets itself, after each poll's effects (a crash redoes them: the effects are idempotent),
    reads only committed transactions (the relay publishes in transactions) and, in a new
    group, starts from the beginning so that nothing recorded before its first start is missed.

    ``patient_seconds``: for a follower that may act that much later, the broker holds each
    fetch until that long has passed or 256 KiB have come (Kafka's fetch.min.bytes and
    fetch.max.wait.ms): one fetch, and one pure-Python response to parse, per that many records
    instead of one per relay transaction."""
    ensure_topics(settings, (service,))
    patience = {"fetch_min_bytes": 256 * 1024, "fetch_max_wait_ms": int(patient_seconds * 1000)} if patient_seconds > 0 else {}
    return KafkaConsumer(
        settings.topic(service),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group(group),
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_poll_records,
        # A follower killed without goodbye hands its partitions on within seconds, as the
        # projections and counters do: kafka-python's default (45 s) kept a restarted thumbnail
        # maker idle for most of a minute after each kill.
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        **patience,
    )

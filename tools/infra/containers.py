"""WC_INFRA=containers: Kafka, Elasticsearch and PostgreSQL as testcontainers.

For machines with a Docker engine.  testcontainers is imported lazily, so nothing here
costs anything elsewhere.  The containers belong to the Python process that started
them (testcontainers' reaper removes them when it exits): right for a test session;
`python -m tools.infra up` in this mode holds them until Ctrl-C.

Image tags can be overridden with WC_KAFKA_IMAGE / WC_ES_IMAGE / WC_POSTGRES_IMAGE.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from tools.infra.common import InfraError, jvm_heap_options, pom_versions
from watercooler.config import Settings

log = logging.getLogger("tools.infra.containers")

# Confluent's cp-kafka is what testcontainers' KafkaContainer drives (its KRaft
# boot script edits /etc/confluent/docker/configure); 7.9 is Kafka 3.9, which every
# client we use speaks just like the local 4.1 broker.
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.1"
DEFAULT_POSTGRES_IMAGE = "postgres:15"


@dataclass
class ContainerStack:
    env: dict[str, str]
    containers: list[Any] = field(default_factory=list)

    def names(self) -> list[str]:
        return [type(c).__name__ for c in self.containers]

    def stop(self) -> None:
        for container in reversed(self.containers):
            try:
                container.stop()
            except Exception as exc:  # noqa: BLE001 - best effort, keep stopping the rest
                log.warning("stopping %s: %r", container, exc)
        self.containers.clear()


_stack: ContainerStack | None = None


def docker_available() -> None:
    """Raise InfraError with a clear message unless a Docker engine answers."""
    try:
        import docker
    except ImportError:
        raise InfraError("WC_INFRA=containers needs the testcontainers package (and a Docker engine)") from None
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds; all mean "unreachable"
        raise InfraError(
            f"WC_INFRA=containers but no Docker engine is reachable ({exc.__class__.__name__}: {exc}). "
            "Start Docker or set DOCKER_HOST, or use WC_INFRA=local to run the servers as local processes."
        ) from None


def start(settings: Settings, postgres: bool = False) -> ContainerStack:
    docker_available()
    from testcontainers.community.elasticsearch import ElasticSearchContainer
    from testcontainers.community.kafka import KafkaContainer

    stack = ContainerStack(env={"WC_INFRA": "containers"})
    try:
        kafka = KafkaContainer(os.environ.get("WC_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)).with_kraft()
        kafka.with_env("KAFKA_NUM_PARTITIONS", str(settings.topic_partitions))
        kafka.with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        kafka.with_env("KAFKA_LOG_RETENTION_MS", "-1")
        kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        kafka.start(timeout=120)
        stack.containers.append(kafka)
        stack.env["WC_KAFKA_BOOTSTRAP"] = kafka.get_bootstrap_server()

        # The official Docker Hub image, same version as the local distribution: the full
        # distribution, whose analysis names are built in (infra/es-analysis is for the local zip only).
        es_image = os.environ.get("WC_ES_IMAGE", f"elasticsearch:{pom_versions().elasticsearch}")
        es = ElasticSearchContainer(es_image)
        es.with_env("discovery.type", "single-node")
        es.with_env("action.destructive_requires_name", "false")
        es.with_env("cluster.routing.allocation.disk.threshold_enabled", "false")
        es.with_env("ES_JAVA_OPTS", " ".join(jvm_heap_options(settings.es_heap)))
        es.start()
        stack.containers.append(es)
        stack.env["WC_ES_URL"] = f"http://{es.get_container_host_ip()}:{es.get_exposed_port(es.port)}"

        if postgres:
            from testcontainers.community.postgres import PostgresContainer

            pg = PostgresContainer(os.environ.get("WC_POSTGRES_IMAGE", DEFAULT_POSTGRES_IMAGE),
                                   username=settings.postgres_user, password=settings.postgres_password,
                                   dbname=settings.postgres_db)
            pg.start()
            stack.containers.append(pg)
            stack.env.update({
                "WC_POSTGRES_HOST": pg.get_container_host_ip(),
                "WC_POSTGRES_PORT": str(pg.get_exposed_port(5432)),
                "WC_POSTGRES_USER": settings.postgres_user,
                "WC_POSTGRES_PASSWORD": settings.postgres_password,
                "WC_POSTGRES_DB": settings.postgres_db,
            })
    except InfraError:
        stack.stop()
        raise
    except Exception as exc:  # noqa: BLE001 - report any container failure the same way
        stack.stop()
        raise InfraError(f"starting containers failed: {exc.__class__.__name__}: {exc}") from exc
    return stack


def current() -> ContainerStack | None:
    return _stack


def ensure_up(settings: Settings, postgres: bool = False) -> ContainerStack:
    """Start the containers once per process; later calls return the same stack."""
    global _stack
    if _stack is None or (postgres and "WC_POSTGRES_PORT" not in _stack.env):
        if _stack is not None:
            _stack.stop()
        _stack = start(settings, postgres)
    return _stack


def ensure_down() -> list[str]:
    global _stack
    if _stack is None:
        return []
    names = _stack.names()
    _stack.stop()
    _stack = None
    return names

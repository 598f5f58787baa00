"""The third-party servers Watercooler runs against: Kafka, Elasticsearch, PostgreSQL.

``ensure_up(settings)`` gives a working set according to ``settings.infra_mode``
(local processes, an external cluster, or testcontainers) and returns an ``UpResult``:
``.env`` the ``WC_*`` variables for client processes, truthy when it started
something; ``ensure_down(settings)`` stops the servers.
CLI: ``python -m tools.infra up|down|status|fetch [--postgres]``.
"""

from tools.infra.local import (
    InfraError,
    Jdk,
    JdkNotFound,
    ServerStatus,
    StartResult,
    UpResult,
    Versions,
    ensure_down,
    ensure_up,
    env_for_clients,
    es_distribution_dir,
    fetch,
    find_jdk,
    is_fetched,
    kafka_libs_dir,
    pom_versions,
    status,
)

__all__ = [
    "InfraError",
    "Jdk",
    "JdkNotFound",
    "ServerStatus",
    "StartResult",
    "UpResult",
    "Versions",
    "ensure_down",
    "ensure_up",
    "env_for_clients",
    "es_distribution_dir",
    "fetch",
    "find_jdk",
    "is_fetched",
    "kafka_libs_dir",
    "pom_versions",
    "status",
]

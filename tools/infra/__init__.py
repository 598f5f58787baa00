"""The third-party servers Watercooler runs against: Kafka, Elasticsearch, SeaweedFS (S3), PostgreSQL.

One module per engine (kafka, elasticsearch, postgres, seaweedfs), what they share (common:
errors, versions, process handling; downloads: the JDK, Maven and the fetched distributions),
the set of them (servers), the cluster topology's engines (cluster) and testcontainers (containers).
``ensure_up(settings)`` gives a working set according to ``settings.infra_mode``
(local processes, an external cluster, or testcontainers) and returns an ``UpResult``:
``.env`` the ``WC_*`` variables for client processes, truthy when it started
something; ``ensure_down(settings)`` stops the servers.
CLI: ``python -m tools.infra up|down|status|fetch [--postgres]``.
"""

from tools.infra.common import InfraError, JdkNotFound, StartResult, Versions, es_distribution_dir, is_fetched, kafka_libs_dir, pom_versions
from tools.infra.downloads import Jdk, fetch, find_jdk
from tools.infra.servers import ServerStatus, UpResult, ensure_down, ensure_up, env_for_clients, status

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

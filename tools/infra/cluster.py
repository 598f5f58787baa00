"""The engines of the cluster topology as local processes: three Kafka brokers in one KRaft
quorum (replication 3, min in-sync 2), two Elasticsearch nodes (one replica of every shard),
one PostgreSQL and one SeaweedFS (the S3 API: one endpoint in production too), each on ports of its own (``ClusterLayout``), under
``<data_dir>/cluster/``.

Each engine is started by the same code as the single node (tools.infra.kafka, .elasticsearch,
.postgres), given its place in the cluster (``KafkaQuorum``, ``EsNode``); only the layout is here. Heaps are sized
for a 2-core, 24 GiB machine shared with other work: 3 x 256 MB for Kafka, 2 x 512 MB for
Elasticsearch (``WC_CLUSTER_KAFKA_HEAP``, ``WC_CLUSTER_ES_HEAP``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.infra import common, downloads, elasticsearch, kafka, postgres, seaweedfs
from tools.infra.common import InfraError, Progress, StartResult
from tools.infra.elasticsearch import EsNode
from tools.infra.kafka import KafkaQuorum
from tools.infra.servers import prepare_local
from watercooler.config import Settings

BROKERS = 3
ES_NODES = 2
REPLICATION = 3
MIN_INSYNC = 2
# A fixed id: the brokers of one data dir are formatted once, all with the same id.
KAFKA_CLUSTER_ID = "d2F0ZXJjb29sZXJjbHVzdA"


@dataclass(frozen=True)
class ClusterLayout:
    """Every port of the cluster, from one base (``WC_CLUSTER_PORT_BASE``, default 11000):
    brokers base+9092.., their controllers base+9192.., Elasticsearch HTTP base+9200.. and
    transport base+9300.., PostgreSQL base+5432, SeaweedFS base+8633..8640 (the last four its
    gRPC ports), the services' replicas base+5051.. (+100 per replica), and the pods'
    metrics and HTTP ports from base+6000. The default keeps clear of the single-node ports
    (9092, 9200, 15432, 8333-8340, 5005x), of the test servers' (2xxxx) and of the kernel's
    ephemeral range (32768 and up); the tests use 13000."""

    data_dir: Path
    base: int = 11000

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterLayout:
        return cls(settings.data_dir / "cluster", int(os.environ.get("WC_CLUSTER_PORT_BASE") or 11000))

    def broker_port(self, node: int) -> int:
        return self.base + 9091 + node

    def controller_port(self, node: int) -> int:
        return self.base + 9191 + node

    def es_port(self, node: int) -> int:
        return self.base + 9199 + node

    def es_transport_port(self, node: int) -> int:
        return self.base + 9299 + node

    @property
    def postgres_port(self) -> int:
        return self.base + 5432

    @property
    def s3_port(self) -> int:
        """The object store (one SeaweedFS, as production has one S3 API): base+8633..8640, its
        gRPC ports among them (``seaweedfs.ports``)."""
        return self.base + 8633

    def service_port(self, service_index: int, replica: int) -> int:
        return self.base + 5051 + service_index + 100 * replica

    def pod_port(self, pod_index: int, kind: int) -> int:
        """A pod's own port of a kind (0: metrics, 1: HTTP)."""
        return self.base + 6000 + 100 * kind + pod_index

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in range(1, BROKERS + 1))

    @property
    def es_urls(self) -> str:
        """Every node, comma-separated: the clients spread requests over them and skip a dead one
        (watercooler.projection.es_client), standing in for the cluster's HTTP Service."""
        return ",".join(f"http://127.0.0.1:{self.es_port(n)}" for n in range(1, ES_NODES + 1))


def _heap(name: str, default: str) -> str:
    return os.environ.get(name) or default


def broker_settings(settings: Settings, layout: ClusterLayout, node: int) -> Settings:
    return dataclasses.replace(
        settings, data_dir=layout.data_dir / f"kafka-{node}", kafka_port=layout.broker_port(node), kafka_controller_port=layout.controller_port(node),
        kafka_heap=_heap("WC_CLUSTER_KAFKA_HEAP", "256m"), topic_partitions=6,
    )


def es_settings(settings: Settings, layout: ClusterLayout, node: int) -> Settings:
    return dataclasses.replace(
        settings, data_dir=layout.data_dir / f"es-{node}", es_port=layout.es_port(node), es_transport_port=layout.es_transport_port(node),
        es_heap=_heap("WC_CLUSTER_ES_HEAP", "512m"),
    )


def postgres_settings(settings: Settings, layout: ClusterLayout) -> Settings:
    return dataclasses.replace(settings, data_dir=layout.data_dir, postgres_port=layout.postgres_port)


def s3_settings(settings: Settings, layout: ClusterLayout) -> Settings:
    return dataclasses.replace(settings, data_dir=layout.data_dir, s3_port=layout.s3_port, s3_endpoint=f"http://127.0.0.1:{layout.s3_port}")


def quorum(layout: ClusterLayout, node: int) -> KafkaQuorum:
    voters = ",".join(f"{n}@127.0.0.1:{layout.controller_port(n)}" for n in range(1, BROKERS + 1))
    return KafkaQuorum(node, voters, KAFKA_CLUSTER_ID, REPLICATION, MIN_INSYNC)


def es_node(layout: ClusterLayout, node: int) -> EsNode:
    return EsNode(f"es-{node}", {f"es-{n}": f"127.0.0.1:{layout.es_transport_port(n)}" for n in range(1, ES_NODES + 1)})


def servers(settings: Settings, layout: ClusterLayout) -> dict[str, common.Server]:
    """Every engine process by name (kafka-1.., es-1.., postgres), for status, stop and faults."""
    found = {f"kafka-{n}": kafka.kafka_server(broker_settings(settings, layout, n)) for n in range(1, BROKERS + 1)}
    found |= {f"es-{n}": elasticsearch.es_server(es_settings(settings, layout, n)) for n in range(1, ES_NODES + 1)}
    found["postgres"] = postgres.postgres_server(postgres_settings(settings, layout))
    found["seaweedfs"] = seaweedfs.server(s3_settings(settings, layout))
    return found


def start_broker(settings: Settings, layout: ClusterLayout, node: int, jdk: downloads.Jdk | None = None, progress: Progress | None = None) -> StartResult:
    return kafka.start_kafka(broker_settings(settings, layout, node), jdk or downloads.find_jdk(), progress, quorum(layout, node))


def start_es_node(settings: Settings, layout: ClusterLayout, node: int, jdk: downloads.Jdk | None = None, progress: Progress | None = None) -> StartResult:
    return elasticsearch.start_elasticsearch(es_settings(settings, layout, node), jdk or downloads.find_jdk(), progress, es_node(layout, node))


def start_postgres(settings: Settings, layout: ClusterLayout, progress: Progress | None = None) -> StartResult:
    return postgres.start_postgres(postgres_settings(settings, layout), progress)


def up(settings: Settings, layout: ClusterLayout, progress: Progress | None = None) -> list[StartResult]:
    """Start every engine that is not running, all at once (a quorum forms only when its
    members start together), and wait until each works."""
    jdk = prepare_local(settings, postgres=True, progress=progress)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    tasks: list[Callable[[], StartResult]] = [lambda n=n: start_broker(settings, layout, n, jdk, progress) for n in range(1, BROKERS + 1)]
    tasks += [lambda n=n: start_es_node(settings, layout, n, jdk, progress) for n in range(1, ES_NODES + 1)]
    tasks.append(lambda: start_postgres(settings, layout, progress))
    tasks.append(lambda: seaweedfs.start(s3_settings(settings, layout), progress))
    results, errors = [], []
    with ThreadPoolExecutor(len(tasks)) as pool:
        for future in [pool.submit(task) for task in tasks]:
            try:
                results.append(future.result())
            except InfraError as exc:
                errors.append(str(exc))
    if errors:
        raise InfraError("\n\n".join(errors))
    return results


def down(settings: Settings, layout: ClusterLayout) -> list[str]:
    found = servers(settings, layout)
    with ThreadPoolExecutor(len(found)) as pool:
        stopped = list(pool.map(common.stop_server, found.values()))
    return [name for name, was in zip(found, stopped, strict=True) if was]


def memory_kb(settings: Settings, layout: ClusterLayout, field: str = "Rss") -> dict[str, int]:
    """Memory of each running engine with its children (PostgreSQL's backends, Elasticsearch's
    native controller): ``Rss`` counts shared pages once per process that maps them (PostgreSQL's
    shared buffers in every backend), ``Pss`` divides them among those processes (sums to what
    the machine really spends)."""
    found = {}
    for name, server in servers(settings, layout).items():
        pid = server.pid()
        if pid:
            found[name] = tree_kb(pid, field)
    return found


def tree_kb(pid: int, field: str = "Rss") -> int:
    """A process's and its descendants' memory, from /proc/<pid>/smaps_rollup (kB)."""
    total = 0
    for each in (pid, *_descendants(pid)):
        try:
            text = Path(f"/proc/{each}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found

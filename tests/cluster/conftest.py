"""The cluster topology (tools.cluster), started once for the tests of this directory.

Besides its own tests (``cluster``: a replica or all of them), the directory runs suites of
tests/integration unchanged against it (the ``test_on_cluster_*`` modules import them): the
fixture ``platform`` here is the single-node suite's (tests/conftest.py, ``PlatformHandle``)
backed by the cluster, its calls balanced over every replica as a Kubernetes Service would.
While the cluster runs, this process's environment is a client's of it (``Cluster.client_env``),
so what reads it (a ``Settings`` asked for an address, the CLI run as a subprocess) reaches
the cluster.

Its engines listen on ports of their own (``WC_CLUSTER_PORT_BASE``, 13000 in tests: Kafka
22092-22094, Elasticsearch 22200-22201, PostgreSQL 18432, SeaweedFS 21633-21636 and 31633-31636,
the services 18051-18154, the pods' metrics and HTTP ports 19000-19199), so they
never meet the single-node test servers nor a `make run-cluster`. The fixture is package-scoped: it starts before the
first test here and stops after the last, so the rest of the suite does not share the machine
with it. Engines it started are stopped at the end (kept with WC_KEEP_INFRA=1; already running
ones are reused and kept).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TypeVar

import grpc
import pytest

from tests.conftest import ARTIFACTS, PlatformHandle
from tools.cluster import Cluster, memory_table
from tools.infra import cluster as engines
from watercooler import auth, config
from watercooler.client import bearer_metadata, service_config

T = TypeVar("T")


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ClusterHandle:
    """The running cluster as a test sees it: the client settings (the overlay's issuer, the
    shared PostgreSQL, every broker and node), a round-robin channel per service (its
    'Service') and a channel to each replica."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.env = cluster.client_env()
        with environment(self.env):
            self.settings = config.load()
        self._channels: dict[str, grpc.Channel] = {}

    def token(self, subject: str, kind: str = "employee") -> str:
        return auth.issue_token(self.settings, subject, kind)

    def metadata(self, subject: str = "test-service", kind: str = "service") -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.token(subject, kind))

    def channel(self, service: str, replica: int | None = None) -> grpc.Channel:
        """Every replica, round-robin (``replica=None``), or one replica (0, 1, ...)."""
        target = self.cluster.service_target(service) if replica is None else self.cluster.replica_addresses(service)[replica]
        key = f"{service}/{replica}"
        if key not in self._channels:
            self._channels[key] = grpc.insecure_channel(target, options=[("grpc.service_config", service_config(target)), ("grpc.enable_retries", 1)])
        return self._channels[key]

    def stub(self, stub_class: type[T], service: str, replica: int | None = None) -> T:
        return stub_class(self.channel(service, replica))

    def rendered(self, key: str) -> str:
        """A value of the overlay's ConfigMap, as every pod has it."""
        return self.cluster.rendered_config()[key]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@pytest.fixture(scope="package")
def cluster(settings: config.Settings) -> Iterator[ClusterHandle]:
    layout = engines.ClusterLayout.from_settings(settings)
    already_up = all(server.pid() for server in engines.servers(settings, layout).values())
    running = Cluster(settings, namespace=settings.namespace, log_dir=ARTIFACTS / "logs" / settings.namespace / "cluster", layout=layout)
    try:
        running.up()
        handle = ClusterHandle(running)
        print(f"\ncluster memory after start:\n{memory_table(running.memory_kb('Rss'), running.memory_kb('Pss'))}")
        # The search HTTP view of the first replica (the single-node tests read its port here).
        with environment(handle.env | {"WC_SEARCH_HTTP_PORT": str(running.search_http_ports()[0])}):
            yield handle
        handle.close()
    finally:
        running.stop()
        if not already_up and not os.environ.get("WC_KEEP_INFRA"):
            engines.down(settings, layout)
        elif settings.namespace:
            clean_namespace(running, settings.namespace)


class RefreshedReads(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Before each call to the search service, a refresh of this run's indices.

    The single-node tests wait until something is seen (through Elasticsearch or a search
    call, often as one principal) and then read it (often as another). With two copies of each
    shard, each refreshing on its own schedule, the copy a later read lands on may show it up to
    a refresh interval later (Elasticsearch's eventual consistency between copies, not a
    visibility rule): refreshed first, every copy serves what any of them showed."""

    def __init__(self, es, indices: str):
        self.es, self.indices = es, indices

    def _refresh(self) -> None:
        self.es.indices.refresh(index=self.indices, allow_no_indices=True, ignore_unavailable=True)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._refresh()
        return continuation(client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        self._refresh()
        return continuation(client_call_details, request)


class ClusterPlatform(PlatformHandle):
    """The single-node suite's ``platform`` on the cluster: the client settings of the cluster,
    a round-robin channel over the replicas of each service (reads of the search service after
    a refresh: ``RefreshedReads``), and a client of both Elasticsearch nodes."""

    def __init__(self, cluster: ClusterHandle):
        super().__init__(cluster.settings, cluster.cluster.platform)
        self._cluster = cluster

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            channel = self._cluster.channel(service)
            if service == "search":
                channel = grpc.intercept_channel(channel, RefreshedReads(self.es, self.settings.index_alias("*")))
            self._channels[service] = channel
        return self._channels[service]

    def close(self) -> None:
        self.es.close()  # the channels are the cluster handle's


@pytest.fixture(scope="package")
def platform(cluster: ClusterHandle) -> Iterator[PlatformHandle]:
    handle = ClusterPlatform(cluster)
    try:
        yield handle
    finally:
        handle.close()


def clean_namespace(running: Cluster, namespace: str) -> None:
    """Kept engines: drop this run's indices, topics and store schemas."""
    import psycopg
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient

    try:
        es = Elasticsearch(running.layout.es_urls.split(","))
        es.indices.delete(index=f"{namespace}-*", allow_no_indices=True, ignore_unavailable=True)
        admin = KafkaAdminClient(bootstrap_servers=running.layout.kafka_bootstrap)
        topics = [t for t in admin.list_topics() if t.startswith(f"{namespace}.")]
        if topics:
            admin.delete_topics(topics)
        admin.close()
        settings = running.settings
        with psycopg.connect(host="127.0.0.1", port=running.layout.postgres_port, user=settings.postgres_user, password=settings.postgres_password, dbname=settings.postgres_db, autocommit=True) as conn:
            for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{namespace}\\_%",)).fetchall():
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    except Exception as exc:  # cleanup must never fail the run
        print(f"cluster namespace cleanup failed: {exc}")

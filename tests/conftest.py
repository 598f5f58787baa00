"""Test fixtures: real Kafka, Elasticsearch, SeaweedFS (S3) (and PostgreSQL), and the real platform processes.

- ``infra``: brings the local servers up on test ports (or uses external ones,
  WC_INFRA=external) and, if it started them, stops them at the end.
- ``platform``: every service, relay and processor as subprocesses, in a
  namespace of their own (topics, indices, consumer groups and stores are
  prefixed), reachable through ``PlatformHandle``.
Nothing is mocked: tests talk gRPC to the services and read Kafka and
Elasticsearch directly to check what landed there.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Test servers listen on their own ports and keep their own data, so `make test`
# never touches a platform started by `make run` on the same machine.
_TEST_DEFAULTS = {
    "WC_KAFKA_PORT": "29092",
    "WC_KAFKA_CONTROLLER_PORT": "29093",
    "WC_ES_PORT": "29200",
    "WC_ES_TRANSPORT_PORT": "29300",
    "WC_POSTGRES_PORT": "25432",
    "WC_S3_PORT": "29333",
    "WC_CLUSTER_PORT_BASE": "13000",
    "WC_ES_START_TIMEOUT": "300",  # a node rejoining the cluster while 2 cores run everything else
    "WC_DATA_DIR": str(ROOT / ".test-data"),
    "WC_LOG_FORMAT": "json",
    "WC_ES_REFRESH": "200ms",
}
for _key, _value in _TEST_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
os.environ["WC_NAMESPACE"] = os.environ.get("WC_TEST_NAMESPACE") or f"t{secrets.token_hex(3)}"

from watercooler import auth, config  # noqa: E402  (after the environment is set)
from watercooler.client import bearer_metadata  # noqa: E402

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.25, message: str = "") -> T:
    """Retry ``check`` until it returns a truthy value without raising AssertionError (or a
    KeyError/IndexError from looking up something not projected yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, KeyError, IndexError) as exc:  # "not there yet"
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:.0f}s: {message or check} ({last})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def settings() -> config.Settings:
    return config.load()


@pytest.fixture(scope="session")
def infra(settings: config.Settings) -> Iterator[config.Settings]:
    from tools import infra as infra_module

    # Stop at the end only what this run started: a developer's servers stay up.
    already_up = settings.infra_mode != "local" or all(_answers(p) for p in (settings.kafka_port, settings.es_port, settings.s3_port))
    infra_module.ensure_up(settings)
    yield settings
    _clean_namespace(settings)
    if not already_up and not os.environ.get("WC_KEEP_INFRA"):
        infra_module.ensure_down(settings)


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def postgres(infra: config.Settings) -> config.Settings:
    from tools import infra as infra_module

    infra_module.ensure_up(infra, postgres=True)
    return infra


def _clean_namespace(settings: config.Settings) -> None:
    """Drop this run's topics, indices and objects so test data does not pile up."""
    if not settings.namespace:
        return
    try:
        from elasticsearch import Elasticsearch
        from kafka import KafkaAdminClient

        es = Elasticsearch(settings.es_url)
        mine = list(es.indices.get(index=f"{settings.namespace}-*", allow_no_indices=True))
        if mine:
            es.indices.delete(index=",".join(mine), ignore_unavailable=True)
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        topics = [t for t in admin.list_topics() if t.startswith(f"{settings.namespace}.")]
        if topics:
            admin.delete_topics(topics)
        admin.close()
        from watercooler import objectstore

        s3 = objectstore.client(settings, retries=1)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix=settings.object_prefix()):
            if page.get("Contents"):  # a page is at most 1,000 keys, what one DeleteObjects takes
                s3.delete_objects(Bucket=settings.s3_bucket, Delete={"Objects": [{"Key": obj["Key"]} for obj in page["Contents"]], "Quiet": True})
    except Exception as exc:  # cleanup must never fail the run
        print(f"namespace cleanup failed: {exc}")


class PlatformHandle:
    """The running platform as a test sees it."""

    def __init__(self, settings: config.Settings, platform: Any):
        self.settings = settings
        self.platform = platform
        self._channels: dict[str, Any] = {}
        self._authors: set[str] = set()
        from elasticsearch import Elasticsearch

        # WC_ES_URL may list several nodes (the cluster topology, tests/cluster/conftest.py).
        self.es = Elasticsearch([url.strip() for url in settings.es_url.split(",")], request_timeout=30)

    def token(self, subject: str, kind: str = "employee", jams: tuple[str, ...] = (), ttl: int = 3600) -> str:
        return auth.issue_token(self.settings, subject, kind, jams=jams, ttl_seconds=ttl)

    def metadata(self, subject: str = "test-service", kind: str = "service", jams: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.token(subject, kind, jams))

    def author(self, subject: str, kind: str = "employee", jams: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
        """Metadata of a person who writes what others read: a profile (made if missing) that has
        accepted the current participation guidelines. Two calls the first time, none after."""
        if subject not in self._authors:
            import grpc

            from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc

            stub = profiles_pb2_grpc.ProfileServiceStub(self.channel("profiles"))
            try:
                stub.CreateProfile(profiles_pb2.CreateProfileRequest(profile=profiles_pb2.Profile(employee_id=subject, display_name=f"Author {subject}")), metadata=self.metadata())
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
            self.accept_guidelines(subject)
            self._authors.add(subject)
        return self.metadata(subject, kind, jams)

    def accept_guidelines(self, employee_id: str) -> None:
        """The person (whose profile exists) accepts the current participation guidelines."""
        from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc

        request = profiles_pb2.AcceptGuidelinesRequest(name=f"profiles/{employee_id}", version=self.settings.guidelines_version)
        profiles_pb2_grpc.ProfileServiceStub(self.channel("profiles")).AcceptGuidelines(request, metadata=self.metadata())

    def accept_guest_guidelines(self, guest: str) -> None:
        """The guest accepts the current participation guidelines (as a service for them)."""
        from watercooler.jams.v1 import jams_pb2, jams_pb2_grpc

        request = jams_pb2.AcceptGuestGuidelinesRequest(name=f"guests/{guest}", version=self.settings.guidelines_version)
        jams_pb2_grpc.JamServiceStub(self.channel("jams")).AcceptGuestGuidelines(request, metadata=self.metadata())

    def channel(self, service: str):
        import grpc

        if service not in self._channels:
            self._channels[service] = grpc.insecure_channel(self.settings.grpc_address(service))
        return self._channels[service]

    def stub(self, stub_class: type[T], service: str) -> T:
        return stub_class(self.channel(service))

    def alias(self, projection: str) -> str:
        return self.settings.index_alias(projection)

    def topic(self, service: str) -> str:
        return self.settings.topic(service)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self.es.close()


@pytest.fixture(scope="session")
def platform(infra: config.Settings) -> Iterator[PlatformHandle]:
    from tools.runner import Platform

    # Functional tests send bursts as one person; rate limiting has its own test with its own process.
    env = {"WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_RATE_LIMIT": "5000"}
    # Small media limits, and uploads that expire and are swept within a test's patience
    # (tests/integration/test_media_content.py).
    env.update(WC_MEDIA_QUOTA_BYTES=str(4 << 20), WC_UPLOAD_TTL_SECONDS="12", WC_UPLOAD_SWEEP_SECONDS="2")
    # Personal data keys kept 10 s instead of 30: an erasure reaches every process's cache within
    # the erasure tests' patience (tests/integration/test_personal_data.py; docs/personal-data.md).
    env["WC_PERSONAL_KEY_CACHE_SECONDS"] = "10"
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    env["WC_PROFILES_METRICS_PORT"] = str(free_port())  # one scraped by tests/integration/test_observability.py
    env["WC_SEARCH_HTTP_PORT"] = str(free_port())  # the dashboard and JSON view
    os.environ.update(env)  # so this process's Settings address the same ports
    settings = config.load()
    auth.ensure_dev_keys(settings)
    running = Platform(settings, log_dir=ARTIFACTS / "logs" / settings.namespace)
    running.start()
    handle = PlatformHandle(settings, running)
    try:
        yield handle
    finally:
        handle.close()
        running.stop()


def pytest_collection_finish(session):
    """Fetch and build what the local servers run from before the first test starts: on a new
    machine that takes minutes (SeaweedFS is built from source, about ten on 2 cores), longer than
    one test may take (pytest-timeout), and it would fail whichever test came first. Here it is
    outside every test's clock, once, and says what it does."""
    kinds = {item.path.relative_to(ROOT).parts[1] for item in session.items if item.path.is_relative_to(ROOT / "tests")}
    if session.config.option.collectonly or not kinds & {"integration", "cluster"}:
        return
    settings = config.load()
    if settings.infra_mode != "local":
        return
    from tools.infra.servers import prepare_local

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    say = (lambda message: reporter.write_line(f"infra: {message}")) if reporter else None
    prepare_local(settings, postgres="cluster" in kinds, progress=say)


def pytest_collection_modifyitems(config, items):
    """Fault tests run after the functional ones (they restart servers), fuzz tests last:
    what their accepted requests create would disturb counting tests."""
    items.sort(key=lambda item: 2 if item.get_closest_marker("fuzz") else 1 if item.get_closest_marker("faults") else 0)

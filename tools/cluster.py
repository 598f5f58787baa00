"""The cluster topology on one machine: the production shape, with the code the manifests deploy.

``make run-cluster`` (or ``WC_TOPOLOGY=cluster make run``) and the tests under tests/cluster run:

* the engines of tools.infra.cluster: three Kafka brokers (KRaft, replication 3, min
  in-sync 2), two Elasticsearch nodes (one replica of every shard), PostgreSQL;
* every Deployment of the rendered ``prod`` overlay (deploy/k8s), as pods: two replicas of each
  gRPC service, two projection workers and two stats workers, and the relays with the replicas
  the manifests give them (one each: a relay is a single publisher per store). The bootstrap Job
  runs first, as on an install.

Each pod gets exactly what the kubelet would give it (tools/k8s/pods.py: the image's ENV, the
ConfigMap, the Secrets, ``$(VAR)`` references, mounted files under a root of its own, the
manifest's command), nothing from this process's environment, and only what its surroundings
provide is changed: the engines' addresses, its own ports (pods share this host), a namespace
(tests), and two sizes for a 2-core machine (6 partitions per topic, 1 shard per index; the
replication factors stay the overlay's). The Secrets hold this data dir's keys: the dev key pair
as the identity provider's (so the CLI's and the tests' tokens are people's tokens) and a
platform signing key of the cluster's own.

A client reaches a service's replicas through gRPC client-side round-robin over their addresses
(``ipv4:127.0.0.1:16051,127.0.0.1:16151`` with the ``round_robin`` policy,
watercooler.client.service_config), which stands in for the Kubernetes Service in front of
them: calls are spread over the replicas that answer, and one that goes away is skipped.
Elasticsearch clients are given every node (watercooler.projection.es_client).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tools.infra import cluster as engines
from tools.infra.cluster import ClusterLayout
from tools.runner import ROOT, Platform, ProcessSpec
from watercooler import auth, config
from watercooler.client import wait_serving

OVERLAY = "prod"
SERVICE_REPLICAS = 2
PROCESSOR_REPLICAS = 2
# Sized for this machine, not the overlay's 48 partitions and 6 shards: the shape (replication
# 3 with min in-sync 2, one replica per shard) is what the topology is about.
SIZING = {"WC_TOPIC_PARTITIONS": "6", "WC_ES_SHARDS": "1"}
REPLICA_NAMES = "abcdefgh"


def _manifests() -> tuple[Any, Any]:
    # Imported on use: rendering needs kustomize, fetched into the cache on first use.
    from tools.k8s import pods
    from tools.k8s.render import render

    return pods, render


def _signing_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)  # type: ignore[return-value]


@dataclass
class Replica:
    """One pod: its Deployment, its replica letter, its process spec."""

    deployment: str
    component: str
    letter: str
    spec: ProcessSpec


class Cluster:
    """The engines and the pods of the cluster topology, started and stopped together."""

    def __init__(self, settings: config.Settings, namespace: str = "", log_dir: Path | None = None, echo: bool = False, layout: ClusterLayout | None = None):
        self.settings = settings
        self.layout = layout or ClusterLayout.from_settings(settings)
        self.namespace = namespace
        self.log_dir = log_dir or self.layout.data_dir / "logs"
        self.echo = echo
        self.replicas: list[Replica] = []
        self.platform: Platform | None = None
        self._rendered_config: dict[str, str] = {}

    # --- addresses ---------------------------------------------------------------------------------
    def replica_addresses(self, service: str) -> list[str]:
        index = config.SERVICES.index(service)
        return [f"127.0.0.1:{self.layout.service_port(index, r)}" for r in range(SERVICE_REPLICAS)]

    def service_target(self, service: str) -> str:
        """The round-robin target of every replica of a service (its 'Service')."""
        return "ipv4:" + ",".join(self.replica_addresses(service))

    def search_http_ports(self) -> list[int]:
        """The search replicas' HTTP view (the JSON API and the dashboard), one port each (once up)."""
        return [int(r.spec.env["WC_SEARCH_HTTP_PORT"]) for r in self.replicas if r.deployment == "search" and r.component == "service"]

    def surroundings(self) -> dict[str, str]:
        """What the cluster around a pod provides: where the engines and the services are."""
        env = {
            "WC_KAFKA_BOOTSTRAP": self.layout.kafka_bootstrap,
            "WC_ES_URL": self.layout.es_urls,
            "WC_POSTGRES_HOST": "127.0.0.1",
            "WC_POSTGRES_PORT": str(self.layout.postgres_port),
            "WC_S3_ENDPOINT": f"http://127.0.0.1:{self.layout.s3_port}",
            "WC_NAMESPACE": self.namespace,
            **SIZING,
        }
        env |= {f"WC_{service.upper()}_ADDR": self.service_target(service) for service in config.SERVICES}
        return env

    def client_env(self) -> dict[str, str]:
        """The WC_* variables for a client process (the CLI, the seeders, the tests): the
        surroundings, the overlay's token issuer and topic shape, a store on the shared
        PostgreSQL, and the guidelines' version the services ask for (a seeder or a test accepts
        it for the people it writes as)."""
        keep = ("WC_JWT_ISSUER", "WC_JWT_AUDIENCE", "WC_TOPIC_REPLICATION", "WC_ES_REPLICAS", "WC_STORE", "WC_POSTGRES_DB", "WC_GUIDELINES_VERSION")
        env = {k: v for k, v in self.rendered_config().items() if k in keep}
        env |= self.surroundings()
        env |= {"WC_INFRA": "external", "WC_POSTGRES_USER": self.settings.postgres_user, "WC_POSTGRES_PASSWORD": self.settings.postgres_password}
        return env

    def rendered_config(self) -> dict[str, str]:
        """The overlay's ConfigMap, as every pod gets it."""
        if not self._rendered_config:
            _, render = _manifests()
            maps = [o for o in render(OVERLAY) if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("watercooler-config")]
            self._rendered_config = dict(maps[0]["data"])
        return self._rendered_config

    # --- pods --------------------------------------------------------------------------------------
    def secrets(self) -> dict[str, dict[str, bytes]]:
        pods, _ = _manifests()
        provider_path, _ = auth.ensure_dev_keys(self.settings)
        provider = serialization.load_pem_private_key(provider_path.read_bytes(), password=None)
        keys = pods.Keys(provider, _signing_key(self.layout.data_dir / "keys" / "platform-signing.pem"))  # type: ignore[arg-type]
        secrets = keys.secrets()
        # The application's database login is this PostgreSQL's.
        secrets["watercooler-pg-app"] = {"username": self.settings.postgres_user.encode(), "password": self.settings.postgres_password.encode()}
        # The object store is started with these keys (infra.cluster.s3_settings), as an S3 account's.
        secrets["watercooler-s3"] = {"access-key": self.settings.s3_access_key.encode(), "secret-key": self.settings.s3_secret_key.encode()}
        return secrets

    def _pod_env(self, pod: Any, own: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in pod.env.items()}
        env |= self.surroundings() | own
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        return env

    def _argv(self, command: list[str]) -> list[str]:
        return [sys.executable if part == "python" else part.replace("/app/", f"{ROOT}/") for part in command]

    def build_replicas(self) -> list[Replica]:
        pods, render = _manifests()
        secrets = self.secrets()
        pods_dir = self.layout.data_dir / "pods" / (self.namespace or "default")
        shutil.rmtree(pods_dir, ignore_errors=True)  # a pod's emptyDir starts empty
        replicas: list[Replica] = []
        index = 0
        for deployment in sorted((o for o in render(OVERLAY) if o["kind"] == "Deployment"), key=lambda o: o["metadata"]["name"]):
            name = deployment["metadata"]["name"]
            component = deployment["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            count = {"service": SERVICE_REPLICAS, "processor": PROCESSOR_REPLICAS}.get(component, deployment["spec"].get("replicas", 1))
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            for r in range(count):
                letter = REPLICA_NAMES[r]
                root = pods_dir / f"{name}-{letter}"
                pod = pods.make_pod(OVERLAY, deployment, letter, root, secrets)
                own = {k: str(self.layout.pod_port(index, 0)) for k in pod.env if k.endswith("_METRICS_PORT")}
                own["WC_SEARCH_HTTP_PORT"] = str(self.layout.pod_port(index, 1))
                address = None
                if component == "service":
                    port = self.layout.service_port(config.SERVICES.index(name), r)
                    own[f"WC_{name.upper()}_PORT"] = str(port)
                    address = f"127.0.0.1:{port}"
                spec = ProcessSpec(
                    f"{name}-{letter}", self._argv(container["command"]), serves=name if component == "service" else None,
                    env=self._pod_env(pod, own), address=address, cwd=root,
                )
                replicas.append(Replica(name, component, letter, spec))
                index += 1
        return replicas

    def bootstrap(self) -> None:
        """The bootstrap Job (topics, index template, first indices), run as its pod."""
        pods, render = _manifests()
        (job,) = [o for o in render(f"{OVERLAY}/jobs") if o["kind"] == "Job" and o["metadata"]["name"] == "watercooler-bootstrap"]
        root = self.layout.data_dir / "pods" / (self.namespace or "default") / "bootstrap"
        shutil.rmtree(root, ignore_errors=True)
        pod = pods.make_pod(f"{OVERLAY}/jobs", job, "job", root, self.secrets())
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = self._pod_env(pod, {}) | {"PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}"}
        done = subprocess.run(self._argv(container["command"]), cwd=root, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"the bootstrap Job failed:\n{done.stderr[-3000:]}")

    # --- lifecycle ---------------------------------------------------------------------------------
    def up(self, progress=None, timeout: float = 180.0) -> None:
        engines.up(self.settings, self.layout, progress)
        self.bootstrap()
        self.replicas = self.build_replicas()
        platform = Platform(self.settings, log_dir=self.log_dir, echo=self.echo, specs=[r.spec for r in self.replicas])
        # Nothing of this process's configuration reaches a pod: only what the manifests give it.
        platform.env = {k: v for k, v in platform.env.items() if not k.startswith(("WC_", "APP_", "POSTGRES_", "PERSISTENCE_"))}
        self.platform = platform
        # The first replica of each service creates its store's schema; the others start once it
        # serves, as a rolling start would, rather than racing to create the same tables.
        first = [r for r in self.replicas if r.component == "service" and r.letter == "a"]
        for replica in first:
            platform.start_process(replica.spec.name)
        self._wait_serving(first, timeout)
        rest = [r for r in self.replicas if r not in first]
        for replica in rest:
            platform.start_process(replica.spec.name)
        self._wait_serving([r for r in rest if r.component == "service"], timeout)

    def _wait_serving(self, replicas: list[Replica], timeout: float) -> None:
        assert self.platform is not None
        for replica in replicas:
            proc = self.platform.procs[replica.spec.name]
            if proc.poll() is not None:
                raise RuntimeError(f"{replica.spec.name} exited with {proc.returncode}; see {self.log_dir / replica.spec.name}.log")
            wait_serving(replica.spec.address or "", timeout)

    def stop(self) -> None:
        if self.platform is not None:
            self.platform.stop()
            self.platform = None

    def down(self) -> list[str]:
        self.stop()
        return engines.down(self.settings, self.layout)

    # --- what it costs -----------------------------------------------------------------------------
    def memory_kb(self, field: str = "Rss") -> dict[str, int]:
        """Memory of every process of the cluster, engines and pods (see infra.cluster.memory_kb)."""
        found = engines.memory_kb(self.settings, self.layout, field)
        if self.platform is not None:
            for name, proc in self.platform.procs.items():
                if proc.poll() is None:
                    found[name] = engines.tree_kb(proc.pid, field)
        return found


def memory_table(rss: dict[str, int], pss: dict[str, int]) -> str:
    """RSS and PSS by kind of process (all replicas of it together), largest first."""

    def group(name: str) -> str:
        return name.split("-")[0] if name.startswith(("kafka-", "es-")) else name.rsplit("-", 1)[0] if name[-2] == "-" else name

    by_group: dict[str, list[int]] = {}
    for name, kb in rss.items():
        entry = by_group.setdefault(group(name), [0, 0, 0])
        entry[0] += 1
        entry[1] += kb
        entry[2] += pss.get(name, 0)
    lines = [f"{'':<16} {'procs':>5} {'RSS MiB':>8} {'PSS MiB':>8}"]
    lines += [f"{g:<16} {n:>5} {r / 1024:8.0f} {p / 1024:8.0f}" for g, (n, r, p) in sorted(by_group.items(), key=lambda item: -item[1][1])]
    lines.append(f"{'total':<16} {len(rss):>5} {sum(rss.values()) / 1024:8.0f} {sum(pss.values()) / 1024:8.0f}")
    return "\n".join(lines)


def run_cluster(demo_size: int) -> None:
    """`make run-cluster`: the cluster topology until Ctrl-C, seeded with a demo company."""
    import grpc
    from rich.console import Console

    from tools.seed import SEEDERS

    console = Console()
    settings = config.load()
    cluster = Cluster(settings, echo=False)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started_at = time.monotonic()
    console.rule("[bold]Watercooler, cluster topology")
    try:
        cluster.up(progress=lambda message: console.print(f"  {message}"))
        os.environ.update(cluster.client_env())
        client_settings = config.load()
        console.print(f"[green]cluster up in {time.monotonic() - started_at:.0f}s; seeding the demo company ({demo_size} people)…")
        for name, seeder in SEEDERS:
            try:
                seeder(client_settings, demo_size)
            except Exception as exc:  # the platform is up and useful without a complete demo
                reason = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.RpcError) else str(exc).splitlines()[0]
                console.print(f"[yellow]  seeding {name} stopped ({reason[:200]})")
        for service in config.SERVICES:
            console.print(f"  {service:<9} {cluster.service_target(service)}")
        console.print(f"  Kafka     {cluster.layout.kafka_bootstrap}\n  ES        {cluster.layout.es_urls}\n  Postgres  127.0.0.1:{cluster.layout.postgres_port}")
        console.print(f"  logs      {cluster.log_dir}")
        console.print("Memory now:\n" + memory_table(cluster.memory_kb("Rss"), cluster.memory_kb("Pss")))
        console.print("Ctrl-C stops everything; data is kept for the next run.")
        while not stop.is_set():
            stop.wait(1.0)
    finally:
        console.print("[yellow]stopping the cluster…")
        cluster.down()


def main(argv: list[str]) -> None:
    """python -m tools.cluster run [demo size] | up | down | memory"""
    settings = config.load()
    command = argv[0] if argv else "run"
    if command == "run":
        run_cluster(int(argv[1]) if len(argv) > 1 else 300)
    elif command == "down":
        print("stopped:", ", ".join(engines.down(settings, ClusterLayout.from_settings(settings))) or "nothing")
    elif command == "memory":
        layout = ClusterLayout.from_settings(settings)
        print(memory_table(engines.memory_kb(settings, layout, "Rss"), engines.memory_kb(settings, layout, "Pss")))
    else:
        raise SystemExit(f"unknown command {command!r}: run, down or memory")


if __name__ == "__main__":
    main(sys.argv[1:])

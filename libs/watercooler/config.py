"""Configuration by environment, with defaults that work on one machine.

Every process (service, relay, processor, CLI, tests) reads the same
``Settings`` so a single set of ``WC_*`` variables points the whole platform
at local processes, an external cluster, or testcontainers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("profiles", "posts", "jams", "search")
# Services that own an event store and publish events.
EVENT_SOURCED_SERVICES = ("profiles", "posts", "jams")

DEFAULT_GRPC_PORTS = {"profiles": 50051, "posts": 50052, "jams": 50053, "search": 50054}
DEFAULT_METRICS_PORTS = {"profiles": 9461, "posts": 9462, "jams": 9463, "search": 9464}


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def _default_data_dir() -> Path:
    """`.data/` of the checkout when running from one (what `make run` uses, so the CLI's
    tokens and status match the running platform), else the XDG data dir."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "Makefile").exists() and (checkout / "services").is_dir():
        return checkout / ".data"
    return _xdg("XDG_DATA_HOME", ".local/share") / "watercooler"


@dataclass(frozen=True)
class Settings:
    # Where things live on disk. The cache holds downloaded distributions and
    # is shared by every checkout; the data dir holds state that survives restarts.
    cache_dir: Path = field(default_factory=lambda: Path(_env("WC_CACHE_DIR", str(_xdg("XDG_CACHE_HOME", ".cache") / "watercooler"))))
    data_dir: Path = field(default_factory=lambda: Path(_env("WC_DATA_DIR", str(_default_data_dir()))))

    # How Kafka / Elasticsearch / PostgreSQL are provided:
    #   local      - processes fetched from Maven Central / Debian and started by us (default)
    #   external   - an existing cluster, addressed by WC_KAFKA_BOOTSTRAP / WC_ES_URL / WC_POSTGRES_*
    #   containers - testcontainers, for machines with a Docker engine
    infra_mode: str = field(default_factory=lambda: _env("WC_INFRA", "local"))

    kafka_bootstrap: str = field(default_factory=lambda: _env("WC_KAFKA_BOOTSTRAP", f"127.0.0.1:{_env_int('WC_KAFKA_PORT', 9092)}"))
    kafka_port: int = field(default_factory=lambda: _env_int("WC_KAFKA_PORT", 9092))
    kafka_controller_port: int = field(default_factory=lambda: _env_int("WC_KAFKA_CONTROLLER_PORT", 9093))
    kafka_heap: str = field(default_factory=lambda: _env("WC_KAFKA_HEAP", "512m"))
    topic_partitions: int = field(default_factory=lambda: _env_int("WC_TOPIC_PARTITIONS", 6))
    topic_replication: int = field(default_factory=lambda: _env_int("WC_TOPIC_REPLICATION", 1))

    es_url: str = field(default_factory=lambda: _env("WC_ES_URL", f"http://127.0.0.1:{_env_int('WC_ES_PORT', 9200)}"))
    es_port: int = field(default_factory=lambda: _env_int("WC_ES_PORT", 9200))
    es_transport_port: int = field(default_factory=lambda: _env_int("WC_ES_TRANSPORT_PORT", 9300))
    es_heap: str = field(default_factory=lambda: _env("WC_ES_HEAP", "1g"))

    # The object store for media content: any S3 API. Locally a SeaweedFS `weed server -s3`
    # (master, volume and filer on the three ports after WC_S3_PORT); WC_S3_ENDPOINT for another.
    s3_port: int = field(default_factory=lambda: _env_int("WC_S3_PORT", 8333))
    s3_endpoint: str = field(default_factory=lambda: _env("WC_S3_ENDPOINT", f"http://127.0.0.1:{_env_int('WC_S3_PORT', 8333)}"))
    # The address clients' presigned URLs name, when they reach the store by another one
    # than the services do (an ingress, a CDN); the services' endpoint by default.
    s3_public_endpoint: str = field(default_factory=lambda: _env("WC_S3_PUBLIC_ENDPOINT", ""))
    s3_region: str = field(default_factory=lambda: _env("WC_S3_REGION", "us-east-1"))
    s3_access_key: str = field(default_factory=lambda: _env("WC_S3_ACCESS_KEY", "watercooler"))
    s3_secret_key: str = field(default_factory=lambda: _env("WC_S3_SECRET_KEY", "watercooler-dev-secret"))
    s3_bucket: str = field(default_factory=lambda: _env("WC_S3_BUCKET", "watercooler-media"))

    # Event store: sqlite (embedded, one file per service) or postgres (several replicas).
    store: str = field(default_factory=lambda: _env("WC_STORE", "sqlite"))
    postgres_host: str = field(default_factory=lambda: _env("WC_POSTGRES_HOST", "127.0.0.1"))
    postgres_port: int = field(default_factory=lambda: _env_int("WC_POSTGRES_PORT", 15432))
    postgres_user: str = field(default_factory=lambda: _env("WC_POSTGRES_USER", "watercooler"))
    postgres_password: str = field(default_factory=lambda: _env("WC_POSTGRES_PASSWORD", "watercooler"))
    postgres_db: str = field(default_factory=lambda: _env("WC_POSTGRES_DB", "watercooler"))
    # Group commit: the most commands whose events one store transaction (one fsync) saves
    # together; 1 saves every command in its own transaction (see eventstore.GroupCommit).
    store_group_commit: int = field(default_factory=lambda: _env_int("WC_STORE_GROUP_COMMIT", 64))

    # A prefix for every topic, index and consumer group, so several platforms
    # (or test runs) can share one Kafka and one Elasticsearch without touching each other.
    namespace: str = field(default_factory=lambda: _env("WC_NAMESPACE", ""))

    # Authentication: RS256 JWTs.  A dev key pair is generated under data_dir on first use.
    jwt_issuer: str = field(default_factory=lambda: _env("WC_JWT_ISSUER", "watercooler-dev"))
    jwt_audience: str = field(default_factory=lambda: _env("WC_JWT_AUDIENCE", "watercooler"))
    jwt_public_key_file: str = field(default_factory=lambda: _env("WC_JWT_PUBLIC_KEY_FILE", ""))
    # The identity provider's JWKS endpoint; tokens carrying a ``kid`` are verified with its key.
    jwt_jwks_url: str = field(default_factory=lambda: _env("WC_JWT_JWKS_URL", ""))
    # Mutual TLS between services (off unless all three are set): PEM files of this
    # process's certificate and key, and of the CA that signs every service's certificate.
    tls_cert: str = field(default_factory=lambda: _env("WC_TLS_CERT", ""))
    tls_key: str = field(default_factory=lambda: _env("WC_TLS_KEY", ""))
    tls_ca: str = field(default_factory=lambda: _env("WC_TLS_CA", ""))
    jwt_private_key_file: str = field(default_factory=lambda: _env("WC_JWT_PRIVATE_KEY_FILE", ""))

    # Timing of the event path (write to search hit; measured by benchmarks/freshness.py): the
    # longest an idle relay sleeps between looks at its store, and the longest a processor waits
    # to fill a batch (under load batches fill while the previous one is written anyway).
    relay_idle_max: float = field(default_factory=lambda: float(_env("WC_RELAY_IDLE_MAX", "0.05")))
    processor_batch_within: float = field(default_factory=lambda: float(_env("WC_PROCESSOR_BATCH_WITHIN", "0.05")))
    # How long a busy relay lets events gather after a batch that was not full: each batch is a
    # Kafka transaction (begin, produce, commit: round trips and request handling in the relay
    # and the broker whatever its size), so under a stream of single writes one transaction per
    # few events was most of the relay's CPU. Adds at most this much to freshness.
    relay_linger: float = field(default_factory=lambda: float(_env("WC_RELAY_LINGER", "0.05")))
    # How often a projection batch that fails (other than Elasticsearch being unreachable or
    # refusing load, which is waited out) is tried before the record at fault is found and
    # parked in the dead-letter topic (libs/watercooler/processor.py).
    processor_max_attempts: int = field(default_factory=lambda: max(1, _env_int("WC_PROCESSOR_MAX_ATTEMPTS", 5)))

    # The participation guidelines a person must have accepted before publishing (docs/guidelines.md):
    # one version for every service; a new version asks everyone again.
    guidelines_version: str = field(default_factory=lambda: _env("WC_GUIDELINES_VERSION", "2026-12"))

    log_level: str = field(default_factory=lambda: _env("WC_LOG_LEVEL", "INFO"))
    log_format: str = field(default_factory=lambda: _env("WC_LOG_FORMAT", "json"))

    def grpc_port(self, service: str) -> int:
        return _env_int(f"WC_{service.upper()}_PORT", DEFAULT_GRPC_PORTS[service])

    def grpc_address(self, service: str) -> str:
        return _env(f"WC_{service.upper()}_ADDR", f"127.0.0.1:{self.grpc_port(service)}")

    def metrics_port(self, service: str) -> int:
        return _env_int(f"WC_{service.upper()}_METRICS_PORT", DEFAULT_METRICS_PORTS[service])

    # --- names derived from the namespace -------------------------------------------------
    def topic(self, service: str) -> str:
        """The event topic of a service: ``<service>.events.v1``."""
        return f"{self.namespace}.{service}.events.v1" if self.namespace else f"{service}.events.v1"

    def fact_topic(self, kind: str) -> str:
        """A fact topic of the posts service (``views``, ``downloads``): ``posts.<kind>.v1``.
        Facts are not events of an aggregate; the stats counters read them."""
        return f"{self.namespace}.posts.{kind}.v1" if self.namespace else f"posts.{kind}.v1"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.namespace}.deadletter.v1" if self.namespace else "deadletter.v1"

    def index_alias(self, name: str) -> str:
        """The alias a projection is read and written through; indices behind it are versioned."""
        return f"{self.namespace}-wc-{name}" if self.namespace else f"wc-{name}"

    def consumer_group(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def object_prefix(self) -> str:
        """Where this platform's objects live in the bucket (several namespaces share one)."""
        return f"{self.namespace}/" if self.namespace else ""

    @property
    def service_data_dir(self) -> Path:
        return self.data_dir / "services"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


def load() -> Settings:
    return Settings()

"""Calling Watercooler services: channels with a bearer token and sane retries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .auth import issue_token
from .config import Settings, load

# Retries only for UNAVAILABLE: safe for every RPC because writes carry request ids.
_RETRIES = {
    "methodConfig": [
        {
            "name": [{}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
_SERVICE_CONFIG = json.dumps(_RETRIES)
# A target naming several replicas ("ipv4:127.0.0.1:16051,127.0.0.1:16151", the cluster topology)
# is balanced call by call over those that answer; a replica that goes away is skipped and a
# retried call (UNAVAILABLE) goes to another one. On Kubernetes the Service's address stands here.
_ROUND_ROBIN_CONFIG = json.dumps({**_RETRIES, "loadBalancingConfig": [{"round_robin": {}}]})


def service_config(address: str) -> str:
    return _ROUND_ROBIN_CONFIG if "," in address else _SERVICE_CONFIG


class _BearerAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str):
        self.token = token

    def __call__(self, context, callback):
        callback((("authorization", f"Bearer {self.token}"),), None)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def tls_enabled(settings: Settings) -> bool:
    """Mutual TLS is on when WC_TLS_CERT, WC_TLS_KEY and WC_TLS_CA are set; half a
    configuration is an error at start-up rather than a silent fall-back to plaintext."""
    given = [bool(settings.tls_cert), bool(settings.tls_key), bool(settings.tls_ca)]
    if any(given) and not all(given):
        raise ValueError("mutual TLS needs all of WC_TLS_CERT, WC_TLS_KEY and WC_TLS_CA")
    return all(given)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials:
    """Client side: trust only our CA, and present this process's certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(settings.tls_ca).read_bytes(),
        private_key=Path(settings.tls_key).read_bytes(),
        certificate_chain=Path(settings.tls_cert).read_bytes(),
    )


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    """Server side: only clients with a certificate signed by our CA get a connection."""
    return grpc.ssl_server_credentials(
        [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())],
        root_certificates=Path(settings.tls_ca).read_bytes(),
        require_client_auth=True,
    )


def _channel(address: str, settings: Settings, options: list | None = None) -> grpc.Channel:
    if tls_enabled(settings):
        return grpc.secure_channel(address, channel_credentials(settings), options=options)
    return grpc.insecure_channel(address, options=options)


def channel(settings: Settings, service: str) -> grpc.Channel:
    address = settings.grpc_address(service)
    return _channel(address, settings, [("grpc.service_config", service_config(address)), ("grpc.enable_retries", 1)])


def aio_channel(settings: Settings, service: str) -> grpc.aio.Channel:
    options = [("grpc.service_config", service_config(settings.grpc_address(service))), ("grpc.enable_retries", 1)]
    if tls_enabled(settings):
        return grpc.aio.secure_channel(settings.grpc_address(service), channel_credentials(settings), options=options)
    return grpc.aio.insecure_channel(settings.grpc_address(service), options=options)


SERVICE_TOKEN_SECONDS = 12 * 3600
# A service renews its own token this long before it expires (and clocks may differ a little).
SERVICE_TOKEN_RENEW_BEFORE_SECONDS = 3600


def service_token(settings: Settings, name: str = "watercooler-cli", ttl_seconds: int = SERVICE_TOKEN_SECONDS) -> str:
    return issue_token(settings, subject=name, kind="service", display_name=name, ttl_seconds=ttl_seconds)


class ServiceCredentials:
    """A long-running service's bearer metadata for its calls to other services, renewed before
    its token expires: a token kept for the life of the process (as it once was) made every call
    UNAUTHENTICATED after twelve hours of uptime. Safe to share between threads and tasks."""

    def __init__(self, settings: Settings, name: str, ttl_seconds: int = SERVICE_TOKEN_SECONDS, clock=time.monotonic):
        self.settings, self.name, self.ttl_seconds, self.clock = settings, name, ttl_seconds, clock
        self._renew_at = float("-inf")
        self._metadata: tuple[tuple[str, str], ...] = ()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        now = self.clock()
        if now >= self._renew_at:
            # Two callers renewing at once each sign a valid token; the last one written is kept.
            self._metadata = bearer_metadata(service_token(self.settings, self.name, self.ttl_seconds))
            self._renew_at = now + max(1, self.ttl_seconds - SERVICE_TOKEN_RENEW_BEFORE_SECONDS)
        return self._metadata


def wait_serving(address: str, timeout: float = 60.0, settings: Settings | None = None) -> None:
    """Block until the gRPC health check at ``address`` says SERVING (over mutual TLS
    when the settings, by default the environment's, turn it on)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with _channel(address, settings or load()) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last_error = exc
            time.sleep(0.2)
    raise TimeoutError(f"{address} not serving after {timeout:.0f}s ({last_error})")


def health_status(address: str, settings: Settings | None = None) -> str:
    try:
        with _channel(address, settings or load()) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            return health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    except grpc.RpcError as exc:
        return f"DOWN ({exc.code().name})"

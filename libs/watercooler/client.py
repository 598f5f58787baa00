"""Calling Watercooler services: channels with a bearer token and sane retries."""

from __future__ import annotations

import json
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .auth import issue_token
from .config import Settings

# Retries only for UNAVAILABLE: safe for every RPC because writes carry request ids.
_SERVICE_CONFIG = json.dumps(
    {
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
)


class _BearerAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str):
        self.token = token

    def __call__(self, context, callback):
        callback((("authorization", f"Bearer {self.token}"),), None)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def channel(settings: Settings, service: str) -> grpc.Channel:
    return grpc.insecure_channel(settings.grpc_address(service), options=[("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)])


def aio_channel(settings: Settings, service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(settings.grpc_address(service), options=[("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)])


def service_token(settings: Settings, name: str = "watercooler-cli") -> str:
    return issue_token(settings, subject=name, kind="service", display_name=name)


def wait_serving(address: str, timeout: float = 60.0) -> None:
    """Block until the gRPC health check at ``address`` says SERVING."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last_error = exc
            time.sleep(0.2)
    raise TimeoutError(f"{address} not serving after {timeout:.0f}s ({last_error})")


def health_status(address: str) -> str:
    try:
        with grpc.insecure_channel(address) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            return health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    except grpc.RpcError as exc:
        return f"DOWN ({exc.code().name})"

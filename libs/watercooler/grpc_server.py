"""gRPC bootstrap shared by every service.

One interceptor does, for every RPC of a service: authentication (bearer JWT
-> principal), the deadline, metrics, a structured log line, and the mapping of
domain errors to gRPC statuses with AIP-193 details naming the field.  It also
decodes the request itself and checks it (request_checks.py), so an undecodable or
out-of-range request is INVALID_ARGUMENT naming what is wrong.  An unexpected
exception becomes INTERNAL with a reference id, never UNKNOWN.  Health checking and
reflection (v1 and v1alpha) are registered; SIGTERM drains gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from . import gc_tuning, metrics
from .auth import Principal, TokenVerifier, set_current_principal
from .client import server_credentials, tls_enabled
from .config import Settings
from .errors import DomainError, InvalidArgument, ResourceExhausted, bounded, bounded_message
from .request_checks import check_request, decoder

log = logging.getLogger(__name__)

def _unavailable_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    import elastic_transport
    import eventsourcing.persistence
    import kafka.errors
    import psycopg

    return (
        elastic_transport.ConnectionError,
        elastic_transport.ConnectionTimeout,
        kafka.errors.KafkaTimeoutError,
        kafka.errors.KafkaConnectionError,
        kafka.errors.BrokerNotAvailableError,
        psycopg.OperationalError,
        sqlite3.OperationalError,
        # What the event store raises for psycopg's connection failures (a PostgreSQL restart
        # drops every pooled connection): the write did not happen, or its retry with the same
        # request id is answered from the first run.
        eventsourcing.persistence.OperationalError,
        eventsourcing.persistence.InterfaceError,
    )


UNAVAILABLE_ERRORS = _unavailable_errors()
# Elasticsearch's statuses for "not now": a full queue (429) or a node or shard away.
ENGINE_BUSY_STATUSES = frozenset({429, 502, 503, 504})


def _engine_busy(exc: BaseException) -> bool:
    import elasticsearch

    return isinstance(exc, elasticsearch.ApiError) and getattr(exc.meta, "status", None) in ENGINE_BUSY_STATUSES

# RPCs that must answer without a token: probes and tooling.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# What a shed call is told to wait before retrying (a client adds its own jittered backoff).
SHED_RETRY_AFTER_SECONDS = 0.5

# Calls gRPC's core holds while the Python server is too busy to take them.  Past the soft limit
# the core refuses calls at random, and from the hard limit all of them, and a client sees that as
# a bare CANCELLED (gRPC's defaults are 1,000 and 3,000: one profiles service offered 1,500
# calls/s had 17-18 % of its calls end so, none of them seen by this process).  Raised so that
# overload reaches PlatformInterceptor, which refuses with RESOURCE_EXHAUSTED and says why.
CORE_PENDING_SOFT_LIMIT = 10_000
CORE_PENDING_HARD_LIMIT = 20_000


class RateLimiter:
    """Token buckets per principal: ``rate`` requests a second, bursts up to ``burst``.

    Service principals get ``service_rate`` (0 = unlimited): other services and
    platform jobs are trusted and sized by their own deployment."""

    MAX_TRACKED = 200_000  # principals remembered; the least recently seen are forgotten

    def __init__(self, rate: float, burst: float, service_rate: float = 0.0):
        self.rate, self.burst, self.service_rate = rate, burst, service_rate
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @classmethod
    def from_env(cls) -> RateLimiter:
        rate = float(os.environ.get("WC_RATE_LIMIT", "50"))
        return cls(rate, float(os.environ.get("WC_RATE_BURST", str(rate * 2))), float(os.environ.get("WC_RATE_LIMIT_SERVICE", "0")))

    def check(self, principal: Principal, now: float | None = None) -> float:
        """0 if the call may go ahead, else the seconds to wait before retrying."""
        rate = self.service_rate if principal.is_service else self.rate
        if rate <= 0:
            return 0.0
        burst = max(self.burst if not principal.is_service else rate * 2, 1.0)
        now = time.monotonic() if now is None else now
        key = f"{principal.kind}:{principal.subject}"
        tokens, last = self.buckets.pop(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self.buckets[key] = (tokens, now)
        if len(self.buckets) > self.MAX_TRACKED:
            self.buckets.popitem(last=False)
        return wait


def _status_for(error: DomainError) -> status_pb2.Status:
    details = []
    retry_after = error.details.pop("retry_after_seconds", None) if error.details else None
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(float(retry_after) * 1e9))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    if isinstance(error, InvalidArgument) or error.field:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field=error.field, description=bounded_message(error.message))
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    if error.details:
        info = error_details_pb2.ErrorInfo(reason=type(error).__name__.upper(), domain="watercooler", metadata={k: bounded(str(v)) for k, v in error.details.items()})
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    return status_pb2.Status(code=error.code.value[0], message=bounded_message(str(error)), details=details)


def max_in_flight_from_env() -> int:
    return int(os.environ.get("WC_MAX_IN_FLIGHT", "512"))


class PlatformInterceptor(grpc.aio.ServerInterceptor):
    """``max_in_flight`` (WC_MAX_IN_FLIGHT, 0 = no limit) sheds load: a call arriving while that
    many are in progress in this process is refused at once with RESOURCE_EXHAUSTED and a
    RetryInfo.  Why: without it an overloaded service keeps accepting and every call waits
    longer (one profiles service offered 1,500 CreateProfile/s: p99 9.3 s, against 1.8 s with
    the limit); past CORE_PENDING_* gRPC's core refuses as a bare CANCELLED instead.  Refused
    calls stored nothing; a retry with the same request_id is safe."""

    def __init__(self, service: str, verifier: TokenVerifier, limiter: RateLimiter | None = None, max_in_flight: int | None = None):
        self.service = service
        self.verifier = verifier
        self.limiter = limiter or RateLimiter.from_env()
        self.max_in_flight = max_in_flight_from_env() if max_in_flight is None else max_in_flight
        self.in_flight = 0
        metrics.GRPC_IN_FLIGHT.labels(service).set_function(lambda: self.in_flight)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is not None and handler.unary_stream and not method.startswith(PUBLIC_PREFIXES):
            return self._server_stream(handler, method.rsplit("/", 1)[-1])
        if handler is None or method.startswith(PUBLIC_PREFIXES) or not handler.unary_unary:
            return handler
        behaviour = handler.unary_unary
        short_method = method.rsplit("/", 1)[-1]
        decode = decoder(handler.request_deserializer)

        async def wrapped(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            principal: Principal | None = None
            self.in_flight += 1
            try:
                if self.max_in_flight and self.in_flight > self.max_in_flight:
                    metrics.GRPC_SHED.labels(self.service, short_method).inc()
                    raise ResourceExhausted(
                        f"{self.service} is overloaded: {self.max_in_flight} requests are in progress (WC_MAX_IN_FLIGHT); "
                        f"nothing was stored, retry with the same request_id after backoff",
                        retry_after_seconds=SHED_RETRY_AFTER_SECONDS,
                    )
                metadata = dict(context.invocation_metadata() or ())
                principal = self.verifier.verify(metadata.get("authorization"))
                wait = self.limiter.check(principal)
                if wait:
                    raise ResourceExhausted(
                        f"rate limit of {self.limiter.rate:g} requests/s for {principal.kind} {principal.subject} exceeded; retry later",
                        retry_after_seconds=round(wait, 3),
                    )
                set_current_principal(principal)
                request = decode(body)
                check_request(request)
                remaining = context.time_remaining()
                if remaining is not None:
                    if remaining <= 0:
                        code = grpc.StatusCode.DEADLINE_EXCEEDED
                        await context.abort(code, "deadline exceeded before the request was handled")
                    # asyncio.timeout, not wait_for: wait_for runs the call in a task of its own
                    # (measured 41 us a call against 5 us, on this busy machine).
                    async with asyncio.timeout(remaining):
                        return await behaviour(request, context)
                return await behaviour(request, context)
            except DomainError as error:
                code = error.code
                await context.abort_with_status(rpc_status.to_status(_status_for(error)))
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort(code, "deadline exceeded")
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.RpcError as exc:
                # Another Watercooler service this one called: pass on that it is unavailable.
                downstream = exc.code() if callable(getattr(exc, "code", None)) else None
                if downstream in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    code = grpc.StatusCode.UNAVAILABLE
                    log.warning("downstream service unavailable", extra={"method": short_method, "error": repr(exc)[:300]})
                    await context.abort(code, "a service this call depends on is unavailable; retry with the same request_id")
                reference = uuid.uuid4().hex[:12]
                code = grpc.StatusCode.INTERNAL
                log.exception("downstream call failed", extra={"method": short_method, "reference": reference})
                await context.abort(code, f"internal error (reference {reference})")
            except UNAVAILABLE_ERRORS as exc:
                # A backend (Elasticsearch, Kafka, the database) is down or busy: the caller may retry.
                code = grpc.StatusCode.UNAVAILABLE
                log.warning("backend unavailable", extra={"method": short_method, "error": repr(exc)[:300]})
                await context.abort(code, f"a backend is unavailable ({type(exc).__name__}); retry with the same request_id")
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                if _engine_busy(exc):
                    # Elasticsearch answered that it cannot serve now (its queue full, a shard away).
                    code = grpc.StatusCode.UNAVAILABLE
                    log.warning("backend busy", extra={"method": short_method, "error": repr(exc)[:300]})
                    await context.abort(code, "the search engine could not answer now; retry after a while")
                reference = uuid.uuid4().hex[:12]
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error", extra={"method": short_method, "reference": reference})
                await context.abort(code, f"internal error (reference {reference})")
            finally:
                self.in_flight -= 1
                elapsed = time.perf_counter() - started
                metrics.GRPC_REQUESTS.labels(self.service, short_method, code.name).inc()
                metrics.GRPC_LATENCY.labels(self.service, short_method).observe(elapsed)
                if code != grpc.StatusCode.OK or log.isEnabledFor(logging.DEBUG):
                    log.info(
                        "rpc",
                        extra={
                            "method": short_method,
                            "code": code.name,
                            "ms": round(elapsed * 1000, 2),
                            "principal": principal.subject if principal else "",
                        },
                    )

        # The body arrives undecoded (no request_deserializer): grpcio would answer a body it
        # cannot decode with UNKNOWN; ``wrapped`` decodes it and refuses it as INVALID_ARGUMENT.
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            response_serializer=handler.response_serializer,
        )


    def _server_stream(self, handler: Any, short_method: str) -> Any:
        """A server-streaming call gets the unary calls' authentication, rate limit, request
        checks and error mapping. It is not counted in flight: a watch stays open for hours
        and would hold load shedding at its limit."""
        behaviour = handler.unary_stream
        decode = decoder(handler.request_deserializer)

        async def wrapped(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            code = grpc.StatusCode.OK
            try:
                metadata = dict(context.invocation_metadata() or ())
                principal = self.verifier.verify(metadata.get("authorization"))
                wait = self.limiter.check(principal)
                if wait:
                    raise ResourceExhausted(f"rate limit of {self.limiter.rate:g} requests/s for {principal.kind} {principal.subject} exceeded; retry later",
                                            retry_after_seconds=round(wait, 3))
                set_current_principal(principal)
                request = decode(body)
                check_request(request)
                async for response in behaviour(request, context):
                    yield response
            except DomainError as error:
                code = error.code
                await context.abort_with_status(rpc_status.to_status(_status_for(error)))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except UNAVAILABLE_ERRORS as exc:
                code = grpc.StatusCode.UNAVAILABLE
                log.warning("backend unavailable", extra={"method": short_method, "error": repr(exc)[:300]})
                await context.abort(code, f"a backend is unavailable ({type(exc).__name__}); call again")
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                reference = uuid.uuid4().hex[:12]
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error", extra={"method": short_method, "reference": reference})
                await context.abort(code, f"internal error (reference {reference})")
            finally:
                metrics.GRPC_REQUESTS.labels(self.service, short_method, code.name).inc()

        return grpc.unary_stream_rpc_method_handler(wrapped, response_serializer=handler.response_serializer)


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _add_reflection_v1_descriptor() -> None:
    """grpc.reflection.v1 is v1alpha under another package (the same messages, field for field),
    but grpcio-reflection's Python package ships only v1alpha: add the v1 file to the
    descriptor pool so that reflection can describe itself under both names."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(REFLECTION_V1)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    for method in file.service[0].method:
        method.input_type = method.input_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
        method.output_type = method.output_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    pool.Add(file)


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Server reflection as both grpc.reflection.v1 (what current tools ask for first) and
    v1alpha, answered by one servicer: the two protocols are the same bytes on the wire."""
    _add_reflection_v1_descriptor()
    names = [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1}),))


def new_server(service: str, settings: Settings) -> grpc.aio.Server:
    """The gRPC server every service runs (servicers are added by the caller)."""
    return grpc.aio.server(
        interceptors=[PlatformInterceptor(service, TokenVerifier(settings))],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", CORE_PENDING_SOFT_LIMIT),
            ("grpc.server.max_pending_requests_hard_limit", CORE_PENDING_HARD_LIMIT),
        ],
    )


async def serve(
    service: str,
    settings: Settings,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run a service's gRPC server until SIGTERM/SIGINT.

    ``register`` adds the servicers and returns their full service names (for
    health and reflection)."""
    server = new_server(service, settings)
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, [*names, health.SERVICE_NAME])
    address = f"0.0.0.0:{settings.grpc_port(service)}"
    if tls_enabled(settings):  # mutual TLS: WC_TLS_CERT / WC_TLS_KEY / WC_TLS_CA
        server.add_secure_port(address, server_credentials(settings))
    else:
        server.add_insecure_port(address)
    await server.start()
    gc_tuning.tune_for_service()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    metrics.serve(settings.metrics_port(service))
    log.info("serving", extra={"service": service, "address": address, "metrics_port": settings.metrics_port(service)})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("draining", extra={"service": service})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=10)
    if on_stop is not None:
        await on_stop()
    log.info("stopped", extra={"service": service})

"""Property-based bad input for every RPC of every service (hypothesis).

For each RPC, at least 200 generated requests — random and hostile strings
(control characters, huge, mixed scripts), out-of-range numbers, unknown enum
values, plausible and implausible resource names, timestamps and durations from
year 1 to past 9999 (and the int64 ends) — sent as a service principal
and as an employee.  Whatever comes back must be a deliberate answer: never
UNKNOWN, INTERNAL or UNIMPLEMENTED, the service keeps serving, and a rejected
request stores nothing (the service's event store does not move).

Runs last (see conftest): what the accepted requests create would otherwise
disturb tests that count things.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections import Counter
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import watercooler
from tests.conftest import ARTIFACTS
from tools.runner import has_application
from watercooler.config import EVENT_SOURCED_SERVICES, SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

EXAMPLES_PER_RPC = 200
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED}
COLLECTIONS = ["profiles", "communities", "blogs", "posts", "comments", "bookmarks", "spaces", "pages", "media", "jams", "ideas", "forums", "threads", "invitations"]


def _rpcs() -> list[tuple[str, Any]]:
    found = []
    for service in SERVICES:
        package = importlib.import_module(f"watercooler.{service}.v1")
        for module_info in pkgutil.iter_modules(package.__path__):
            if not module_info.name.endswith("_pb2"):
                continue
            module = importlib.import_module(f"watercooler.{service}.v1.{module_info.name}")
            for service_descriptor in module.DESCRIPTOR.services_by_name.values():
                for method in service_descriptor.methods:
                    if not method.client_streaming:
                        found.append((service, method))
    return found


RPCS = _rpcs()

hostile_text = st.one_of(
    st.text(max_size=40),
    # Long (200-3,000 characters of any script): a drawn run of characters repeated; drawing
    # each of thousands of characters one by one took a fifth of the suite's generation time.
    st.builds(lambda unit, times: (unit * times)[:3000], st.text(alphabet=st.characters(codec="utf-8"), min_size=20, max_size=150), st.integers(10, 150)),
    st.sampled_from(["", " ", "\x00", "\u202e", "a\u0007b", "💥" * 100, "Zoë", "王芳", "' OR 1=1 --", '{"query":{"match_all":{}}}', "*", "../../etc/passwd", "javascript:alert(1)", "http://", "https://example.com/a?b=c#d"]),
)
name_text = st.one_of(
    hostile_text,
    st.builds(lambda c, i: f"{c}/{i}", st.sampled_from(COLLECTIONS), st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=12)),
    st.builds(lambda c, i, c2, j: f"{c}/{i}/{c2}/{j}", st.sampled_from(COLLECTIONS), st.text(alphabet="abc123", min_size=1, max_size=6), st.sampled_from(COLLECTIONS), st.text(alphabet="abc123", min_size=1, max_size=6)),
)


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return name_text if field.name in ("name", "parent") or field.name.endswith(("_name", "target", "profile", "blog", "jam", "idea", "page", "space")) else hostile_text
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == d.FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 99))
    if kind in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 1000))
    return st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-3, 1000))


def message_strategy(descriptor: d.Descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        # Plausible values, and the extremes: year 1, past 9999, the int64 ends, negative or
        # over-large nanos (the platform must refuse them as INVALID_ARGUMENT, never crash).
        extreme_seconds = st.sampled_from([-62_135_596_800, -1, 0, 253_402_300_799, 253_402_300_800, 315_576_000_001, -(2**63), 2**63 - 1])
        extreme_nanos = st.sampled_from([-1, 0, 999_999_999, 1_000_000_000, -(2**31), 2**31 - 1])
        plausible = st.builds(lambda s, n: cls(seconds=s, nanos=n), st.integers(-(2**34), 2**34), st.integers(0, 999_999_999))
        extreme = st.builds(lambda s, n: cls(seconds=s, nanos=n), st.one_of(extreme_seconds, st.integers(-(2**63), 2**63 - 1)), st.one_of(extreme_nanos, st.integers(0, 999_999_999)))
        return st.one_of(plausible, extreme)
    if descriptor.full_name == "google.protobuf.FieldMask":
        return st.builds(lambda paths: cls(paths=paths), st.lists(st.one_of(st.sampled_from([f.name for f in descriptor.fields] + ["*", "title", "display_name", "state"]), hostile_text), max_size=4))
    fields: dict[str, st.SearchStrategy] = {}
    for field in descriptor.fields:
        if field.type == d.FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry or depth >= 2:
                continue
            inner = message_strategy(field.message_type, depth + 1)
        else:
            inner = _scalar(field)
        is_repeated = getattr(field, "is_repeated", None)
        repeated = is_repeated if isinstance(is_repeated, bool) else field.label == d.FieldDescriptor.LABEL_REPEATED
        fields[field.name] = st.lists(inner, max_size=4) if repeated else inner

    @st.composite
    def build(draw):
        message = cls()
        for name, strategy in fields.items():
            if draw(st.booleans()):
                value = draw(strategy)
                field = descriptor.fields_by_name[name]
                try:
                    if field.type == d.FieldDescriptor.TYPE_MESSAGE:
                        if isinstance(value, list):
                            getattr(message, name).extend(value)
                        else:
                            getattr(message, name).CopyFrom(value)
                    elif isinstance(value, list):
                        getattr(message, name).extend(value)
                    else:
                        setattr(message, name, value)
                except (ValueError, TypeError):
                    continue  # e.g. an unknown value for a closed enum: leave it unset
        return message

    return build()


def _store_position(platform, service: str) -> int:
    if service not in EVENT_SOURCED_SERVICES or not has_application(service):
        return 0
    app = _apps.get(service)
    if app is None:
        module = importlib.import_module(f"services.{service}.application")
        app = _apps[service] = module.APPLICATION(platform.settings)
    return app.recorder.max_notification_id() or 0


_apps: dict[str, Any] = {}
_outcomes: Counter = Counter()


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[f"{s}.{m.name}" for s, m in RPCS])
def test_generated_requests_never_break_an_rpc(platform, service, method):
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:
        stream = platform.channel(service).unary_stream(path, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString)

        def call(request, metadata, timeout):
            # A stream that opens is read for a moment; its deadline then ends it, as a client's would.
            try:
                return list(stream(request, metadata=metadata, timeout=2))
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                return []
    else:
        call = platform.channel(service).unary_unary(path, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString)
    callers = [platform.metadata("fuzz-service", "service"), platform.metadata("e-fuzz", "employee"), platform.metadata("g-fuzz", "guest")]

    @settings(max_examples=EXAMPLES_PER_RPC, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
    @given(request=message_strategy(method.input_type), who=st.integers(0, len(callers) - 1))
    def check(request, who):
        before = _store_position(platform, service)
        try:
            call(request, metadata=callers[who], timeout=30)
            _outcomes[(service, method.name, "OK")] += 1
        except grpc.RpcError as error:
            code = error.code()
            _outcomes[(service, method.name, code.name)] += 1
            assert code not in FORBIDDEN, f"{method.name} answered {code.name}: {error.details()} for {request!r}"
            assert error.details(), f"{method.name} answered {code.name} without a message"
            assert _store_position(platform, service) == before, f"{method.name} stored events although it answered {code.name}"

    check()
    health = health_pb2_grpc.HealthStub(platform.channel(service)).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    total = sum(n for (s, m, _), n in _outcomes.items() if (s, m) == (service, method.name))
    assert total >= EXAMPLES_PER_RPC
    _write_outcomes()


def _write_outcomes() -> None:
    """test-artifacts/fuzz.json: per RPC, how many generated requests got which status."""
    per_rpc: dict[str, dict[str, int]] = {}
    for (service, rpc, code), n in sorted(_outcomes.items()):
        per_rpc.setdefault(f"{service}.{rpc}", {})[code] = n
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps(per_rpc, indent=1))


def test_every_service_has_rpcs_under_fuzz():
    assert {s for s, _ in RPCS} >= {"profiles", "search"}
    assert watercooler is not None

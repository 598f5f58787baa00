"""Prometheus metrics, structured logs and server reflection, as an operator sees them."""

from __future__ import annotations

import json
import urllib.request
import uuid

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from tests.conftest import eventually
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_requests_and_stored_events_are_counted(platform):
    port = platform.settings.metrics_port("profiles")
    before = scrape(port)
    stub = platform.stub(pg.ProfileServiceStub, "profiles")
    stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=f"m{uuid.uuid4().hex[:8]}", display_name="Metric Person")), metadata=platform.metadata())
    with pytest.raises(grpc.RpcError):
        stub.GetProfile(pp.GetProfileRequest(name="profiles/nobody-at-all"), metadata=platform.metadata())

    def counted() -> bool:
        # An error's status reaches the caller as the call aborts, a moment before the server
        # records its metrics: a scrape right after can be early, never wrong.
        after = scrape(port)

        def delta(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        assert delta('wc_grpc_requests_total{code="OK",method="CreateProfile",service="profiles"}') == 1
        assert delta('wc_grpc_requests_total{code="NOT_FOUND",method="GetProfile",service="profiles"}') == 1
        assert delta('wc_events_stored_total{service="profiles"}') == 1
        assert delta('wc_grpc_request_seconds_count{method="CreateProfile",service="profiles"}') == 1
        return True

    eventually(counted, timeout=10, message="the requests counted once each")


def test_logs_are_one_json_object_per_line(platform):
    log_file = platform.platform.log_dir / "profiles.log"
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"ts", "level", "component", "msg"} <= set(entry)
    errors = [json.loads(line) for line in lines if '"code": "NOT_FOUND"' in line]
    assert errors and errors[-1]["method"] == "GetProfile"


def test_reflection_answers_as_v1_and_v1alpha(platform):
    """grpcurl, Postman and other current tools ask for grpc.reflection.v1 first."""
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for service in ("profiles", "posts", "jams", "search"):
        channel = platform.channel(service)
        for version in ("v1", "v1alpha"):
            # v1 and v1alpha are the same messages on the wire, under different packages
            call = channel.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                         request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            names = {s.name for r in call(iter([request]), timeout=10) for s in r.list_services_response.service}
            assert {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names, (service, version, names)
            assert any(n.startswith(f"watercooler.{service}.v1.") for n in names), (service, version, names)
        # A v1 client describes the v1 reflection service itself.
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection")
        (answer,) = list(call(iter([symbol]), timeout=10))
        assert answer.HasField("file_descriptor_response"), answer

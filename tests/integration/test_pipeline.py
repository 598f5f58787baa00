"""The thin slice through every layer, for real: gRPC command -> event store ->
relay -> Kafka -> faust processor -> Elasticsearch -> search gRPC."""

from __future__ import annotations

import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.config import SERVICES
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def profiles(platform):
    return platform.stub(pg.ProfileServiceStub, "profiles")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def test_every_service_is_healthy_and_reflects_its_api(platform):
    for service in SERVICES:
        channel = platform.channel(service)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert f"watercooler.{service}.v1.{ {'profiles': 'Profile', 'posts': 'Post', 'jams': 'Jam', 'search': 'Search'}[service]}Service" in names
        assert "grpc.health.v1.Health" in names


def test_calls_without_a_valid_token_are_unauthenticated(platform, profiles, search):
    request = pp.GetProfileRequest(name="profiles/e1")
    assert rpc_error(profiles.GetProfile, request).code() == grpc.StatusCode.UNAUTHENTICATED
    assert rpc_error(profiles.GetProfile, request, metadata=(("authorization", "Bearer nonsense"),)).code() == grpc.StatusCode.UNAUTHENTICATED
    expired = (("authorization", f"Bearer {platform.token('e1', ttl=-5)}"),)
    error = rpc_error(search.SearchPeople, sp.SearchPeopleRequest(query="x"), metadata=expired)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in error.details()


def test_profile_becomes_an_event_in_kafka_and_a_search_hit(platform, profiles, search):
    employee = unique("e")
    metadata = platform.metadata(employee, "employee")
    created = profiles.CreateProfile(
        pp.CreateProfileRequest(
            profile=pp.Profile(employee_id=employee, display_name="Zoë Ångström-Núñez", department="Research", country="se", expertise=["Quantum", "kafka"]),
            request_id=str(uuid.uuid4()),
        ),
        metadata=metadata + (("x-correlation-id", "corr-slice"),),
    )
    assert created.name == f"profiles/{employee}"
    assert created.country == "SE" and list(created.expertise) == ["quantum", "kafka"]
    assert created.state == pp.Profile.ACTIVE and created.etag == '"1"'
    assert profiles.GetProfile(pp.GetProfileRequest(name=created.name), metadata=metadata).display_name == "Zoë Ångström-Núñez"

    # In Kafka, once, with the whole envelope.
    def published():
        events = [e for e in read_events(platform.settings, "profiles") if e.payload.DESCRIPTOR.name == "ProfileCreated" and e.payload.employee_id == employee]
        return events

    events = eventually(published, message="ProfileCreated in Kafka")
    assert len(events) == 1
    envelope = events[0].envelope
    assert envelope.actor.subject == employee and envelope.actor.kind == "employee"
    assert envelope.correlation_id == "corr-slice"
    assert envelope.aggregate_type == "Profile" and envelope.aggregate_version == 1

    # Found by name, without accents and with a typo.
    def found(query):
        response = search.SearchPeople(sp.SearchPeopleRequest(query=query, department="Research"), metadata=metadata)
        return [p for p in response.people if p.profile == created.name]

    hit = eventually(lambda: found("zoe angstrom"), message="search hit")[0]
    assert hit.country == "SE" and not hit.alumni
    assert found("Zoë Angström-Nuñes")  # one letter wrong
    assert found("ANGSTROM")


def test_retry_with_the_same_request_id_returns_the_first_result(platform, profiles):
    employee = unique("e")
    metadata = platform.metadata()
    request = pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name="Ada Lovelace"), request_id=str(uuid.uuid4()))
    first = profiles.CreateProfile(request, metadata=metadata)
    second = profiles.CreateProfile(request, metadata=metadata)
    assert second == first
    other = pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name="Grace Hopper"), request_id=request.request_id)
    error = rpc_error(profiles.CreateProfile, other, metadata=metadata)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["request_id"]
    eventually(lambda: [e for e in read_events(platform.settings, "profiles") if e.payload.DESCRIPTOR.name == "ProfileCreated" and e.payload.employee_id == employee])
    created = [e for e in read_events(platform.settings, "profiles") if e.payload.DESCRIPTOR.name == "ProfileCreated" and e.payload.employee_id == employee]
    assert len(created) == 1


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        (pp.Profile(employee_id="", display_name="A"), "profile.employee_id"),
        (pp.Profile(employee_id="bad id!", display_name="A"), "profile.employee_id"),
        (pp.Profile(employee_id="ok1", display_name=""), "profile.display_name"),
        (pp.Profile(employee_id="ok2", display_name="A" * 201), "profile.display_name"),
        (pp.Profile(employee_id="ok3", display_name="A\u0007B"), "profile.display_name"),
        (pp.Profile(employee_id="ok4", display_name="A", country="Germany"), "profile.country"),
        (pp.Profile(employee_id="ok5", display_name="A", manager="profiles/nobody-here"), "profile.manager"),
        (pp.Profile(employee_id="ok6", display_name="A", manager="people/x"), "profile.manager"),
        (pp.Profile(employee_id="ok7", display_name="A", photo_uri="javascript:alert(1)"), "profile.photo_uri"),
        (pp.Profile(employee_id="ok8", display_name="A", expertise=["x" * 51]), "profile.expertise"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(platform, profiles, profile, field):
    metadata = platform.metadata()
    error = rpc_error(profiles.CreateProfile, pp.CreateProfileRequest(profile=profile), metadata=metadata)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_request_fields(error) == [field]
    assert field.split(".")[-1] in error.details()
    if profile.employee_id and " " not in profile.employee_id:
        missing = rpc_error(profiles.GetProfile, pp.GetProfileRequest(name=f"profiles/{profile.employee_id}"), metadata=metadata)
        assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_duplicates_stale_etags_and_strangers_are_refused(platform, profiles):
    employee = unique("e")
    service = platform.metadata()
    created = profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name="Ada")), metadata=service)
    again = rpc_error(profiles.CreateProfile, pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee, display_name="Ada")), metadata=service)
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS

    own = platform.metadata(employee, "employee")
    mask = {"paths": ["title"]}
    updated = profiles.UpdateProfile(pp.UpdateProfileRequest(profile=pp.Profile(name=created.name, title="Engineer", etag=created.etag), update_mask=mask), metadata=own)
    assert updated.title == "Engineer" and updated.etag == '"2"'
    stale = rpc_error(profiles.UpdateProfile, pp.UpdateProfileRequest(profile=pp.Profile(name=created.name, title="Boss", etag=created.etag), update_mask=mask), metadata=own)
    assert stale.code() == grpc.StatusCode.ABORTED

    stranger = platform.metadata(unique("e"), "employee")
    denied = rpc_error(profiles.UpdateProfile, pp.UpdateProfileRequest(profile=pp.Profile(name=created.name, title="Pwned"), update_mask=mask), metadata=stranger)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    unknown_mask = rpc_error(profiles.UpdateProfile, pp.UpdateProfileRequest(profile=pp.Profile(name=created.name), update_mask={"paths": ["state"]}), metadata=own)
    assert unknown_mask.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(unknown_mask) == ["update_mask"]
    assert profiles.GetProfile(pp.GetProfileRequest(name=created.name), metadata=own).title == "Engineer"

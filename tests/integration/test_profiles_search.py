"""Find-an-expert: declared expertise first, then what people have written about the
topic (only writing the caller may see counts), alumni left out unless asked."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import eventually
from watercooler.posts.v1 import posts_pb2, posts_pb2_grpc
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def test_experts_rank_declared_tags_then_writers_then_mentions(platform):
    profiles = platform.stub(pg.ProfileServiceStub, "profiles")
    posts = platform.stub(posts_pb2_grpc.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    topic = f"topic{uuid.uuid4().hex[:6]}"
    declared, writer, private_writer, bio_only, nobody = (f"x{uuid.uuid4().hex[:8]}" for _ in range(5))
    service = platform.metadata()
    profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=declared, display_name="Declared Expert", expertise=[topic])), metadata=service)
    profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=writer, display_name="Prolific Writer")), metadata=service)
    profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=private_writer, display_name="Secret Writer")), metadata=service)
    profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=bio_only, display_name="Bio Mention", bio=f"Once heard of {topic}.")), metadata=service)
    profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=nobody, display_name="Nobody Special")), metadata=service)
    platform.accept_guidelines(writer)
    for i in range(3):
        posts.CreateMicropost(posts_pb2.CreateMicropostRequest(micropost=posts_pb2.Micropost(text=f"more about #{topic} ({i})", visibility=posts_pb2.Audience.INTERNAL)), metadata=platform.metadata(writer, "employee"))
    posts.CreateMicropost(posts_pb2.CreateMicropostRequest(micropost=posts_pb2.Micropost(text=f"#{topic} notes to self", visibility=posts_pb2.Audience.PRIVATE)), metadata=platform.metadata(private_writer, "employee"))
    reader = platform.metadata(f"r{uuid.uuid4().hex[:6]}", "employee")

    def experts():
        return [p.profile.split("/")[1] for p in search.FindExperts(sp.FindExpertsRequest(topic=topic), metadata=reader).people]

    eventually(lambda: experts() == [declared, writer, bio_only], message="experts ranked")
    # The private writer's own view counts their private notes; nobody else's does.
    def as_private():
        return [p.profile.split("/")[1] for p in search.FindExperts(sp.FindExpertsRequest(topic=topic), metadata=platform.metadata(private_writer, "employee")).people]

    # Their private note may be indexed a moment after the others' posts.
    eventually(lambda: private_writer in as_private(), message="the private writer sees their own notes count")
    assert nobody not in as_private()

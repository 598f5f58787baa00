"""The real service processes, each started with exactly its Deployment's rendered environment
and mounted files (tools/k8s/pods.py), call each other with the tokens they sign.

posts resolves a blog's owner with a service token to profiles, and profiles an avatar's media
item with one to posts; jams signs the token a guest
gets for a redeemed invitation, which profiles must accept. Each process runs in a pod root of
its own. Only what the pod's surroundings give it is changed, never a key: its ports (the pods
share this host), the other services' addresses (in the cluster their Services), the Kafka
address, topic shape and a namespace (the test run's Kafka: posts creates its fact topics at
start), and the store (SQLite in the pod's own data dir, since no PostgreSQL runs here).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import grpc
import jwt
import pytest
from google.protobuf import timestamp_pb2

from tests.k8s.test_manifests import OVERLAYS, ROOT, signing_services
from tools.k8s.pods import Keys, Pod, make_pod, new_key, pem_private, service_deployments
from watercooler.client import wait_serving
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.profiles.v1 import profiles_pb2_grpc as prg

STARTED = ("profiles", "posts", "jams")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    def __init__(self, pods: dict[str, Pod], addresses: dict[str, str], keys: Keys):
        self.pods, self.addresses, self.keys = pods, addresses, keys
        self.channels = {name: grpc.insecure_channel(address) for name, address in addresses.items()}

    def provider_token(self, subject: str, kind: str) -> tuple[tuple[str, str], ...]:
        """A token from the identity provider (the `watercooler-jwt` key), as people's clients send."""
        settings = self.pods["profiles"].settings()
        claims = {"sub": subject, "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": int(time.time()) + 600, "wc_kind": kind}
        return (("authorization", f"Bearer {jwt.encode(claims, pem_private(self.keys.provider), algorithm='RS256')}"),)


def process_env(pod: Pod, name: str, ports: dict[str, int], infra) -> dict[str, str]:
    """The pod's environment, with only what its surroundings give it changed (never a key)."""
    network = {f"WC_{n.upper()}_PORT": str(p) for n, p in ports.items()} | {f"WC_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in ports.items()}
    network |= {f"WC_{name.upper()}_METRICS_PORT": "0", "WC_STORE": "sqlite", "WC_NAMESPACE": infra.namespace}
    # The test run's Kafka: one broker, so the topic shape is the test's, not the overlay's.
    network |= {"WC_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "WC_TOPIC_REPLICATION": str(infra.topic_replication), "WC_TOPIC_PARTITIONS": str(infra.topic_partitions)}
    assert not any(k.startswith("WC_JWT_") for k in network)
    return {**pod.env, **network, "PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}", "WC_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module", params=OVERLAYS)
def running(request, infra, tmp_path_factory) -> Iterator[Running]:
    build = request.param
    keys = Keys(new_key(), new_key())
    deployments = {d["metadata"]["name"]: d for d in service_deployments(build)}
    pods = {name: make_pod(build, deployments[name], "a", tmp_path_factory.mktemp(f"{build}-{name}"), keys.secrets()) for name in STARTED}
    ports = {name: free_port() for name in STARTED}
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    processes = []
    try:
        for name, pod in pods.items():
            with (pod.root / "process.log").open("w") as log:
                processes.append(
                    subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=pod.root, env=process_env(pod, name, ports, infra), stdout=log, stderr=subprocess.STDOUT)
                )
        for name, address in addresses.items():
            try:
                wait_serving(address, timeout=120)
            except TimeoutError:
                pytest.fail(f"{build}/{name} did not start:\n{(pods[name].root / 'process.log').read_text()[-3000:]}")
        handle = Running(pods, addresses, keys)
        yield handle
        for channel in handle.channels.values():
            channel.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def in_hours(hours: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromSeconds(int(time.time()) + hours * 3600)
    return stamp


def call(method, request, metadata):
    try:
        return method(request, metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        pytest.fail(f"{type(request).__name__}: {exc.code().name} {exc.details()}")


def test_posts_calls_profiles_with_a_service_token_profiles_accepts(running: Running) -> None:
    alice = f"e{uuid.uuid4().hex[:8]}"
    as_alice = running.provider_token(alice, "employee")
    profiles = prg.ProfileServiceStub(running.channels["profiles"])
    posts = pg.PostServiceStub(running.channels["posts"])
    call(profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=alice, display_name="Alice Example")), as_alice)
    call(profiles.AcceptGuidelines, prp.AcceptGuidelinesRequest(name=f"profiles/{alice}", version=running.pods["profiles"].settings().guidelines_version), as_alice)
    # Creating a blog makes posts look its owner up in profiles, with its own service token.
    blog = call(posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=f"b-{alice}", title="Notes", visibility=pb.Audience.INTERNAL)), as_alice)
    # (Had profiles refused the token, the lookup would have failed and so would the blog.)
    assert blog.owner == f"profiles/{alice}"


def test_profiles_calls_posts_with_a_service_token_posts_accepts(running: Running) -> None:
    ada = f"e{uuid.uuid4().hex[:8]}"
    as_ada = running.provider_token(ada, "employee")
    profiles = prg.ProfileServiceStub(running.channels["profiles"])
    call(profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=ada, display_name="Ada Example")), as_ada)
    # The manifests' ConfigMap names the guidelines' version every Deployment asks for.
    version = next(line.split("=", 1)[1] for line in (ROOT / "deploy/k8s/base/config/config.env").read_text().splitlines() if line.startswith("WC_GUIDELINES_VERSION="))
    call(profiles.AcceptGuidelines, prp.AcceptGuidelinesRequest(name=f"profiles/{ada}", version=version), as_ada)
    item = mp.MediaItem(title="Portrait", kind=mp.MediaItem.IMAGE, size_bytes=10, content_type="image/jpeg", visibility=wp.PUBLIC, storage_uri="s3://b/p")
    portrait = call(mg.MediaServiceStub(running.channels["posts"]).RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=item), as_ada).name
    # Setting an avatar makes profiles look the media item up in posts, with its own service token.
    assert call(profiles.SetProfilePhoto, prp.SetProfilePhotoRequest(name=f"profiles/{ada}", photo=portrait), as_ada).photo == portrait


def test_a_guest_token_jams_signs_is_accepted_by_profiles(running: Running) -> None:
    host = f"e{uuid.uuid4().hex[:8]}"
    as_host = running.provider_token(host, "employee")
    profiles = prg.ProfileServiceStub(running.channels["profiles"])
    jams = jg.JamServiceStub(running.channels["jams"])
    call(profiles.CreateProfile, prp.CreateProfileRequest(profile=prp.Profile(employee_id=host, display_name="Hannah Host")), as_host)
    jam_id = f"jam-{uuid.uuid4().hex[:8]}"
    jam = jp.Jam(title="Keys Jam", vote_budget=3, top_n=3, open_time=in_hours(1), voting_time=in_hours(2), close_time=in_hours(3))
    call(jams.CreateJam, jp.CreateJamRequest(jam_id=jam_id, jam=jam), as_host)
    code = call(jams.CreateInvitation, jp.CreateInvitationRequest(parent=f"jams/{jam_id}"), as_host).code
    redeemed = call(jams.RedeemInvitation, jp.RedeemInvitationRequest(code=code, jam=f"jams/{jam_id}"), running.provider_token("g-visitor", "guest"))
    as_guest = (("authorization", f"Bearer {redeemed.token}"),)
    # Another Deployment accepts the token jams signed: a guest may read a jam host's profile.
    assert call(profiles.GetProfile, prp.GetProfileRequest(name=f"profiles/{host}"), as_guest).display_name == "Hannah Host"


@pytest.mark.parametrize("service", sorted(signing_services()))
def test_a_signing_service_without_its_signing_key_stops_at_start_naming_it(service: str, infra, tmp_path) -> None:
    deployment = next(d for d in service_deployments("prod") if d["metadata"]["name"] == service)
    pod = make_pod("prod", deployment, "a", tmp_path, Keys(new_key(), new_key()).secrets())
    del pod.env["WC_JWT_PRIVATE_KEY_FILE"]  # real keys to verify with, none to sign with
    env = process_env(pod, service, {service: free_port()}, infra)
    try:
        done = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=pod.root, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{service} started without a signing key")
    assert done.returncode != 0
    assert "SigningKeyNotConfigured" in done.stderr and "WC_JWT_PRIVATE_KEY_FILE is not" in done.stderr, done.stderr[-2000:]
    assert not list(pod.root.rglob("jwt-dev-*.pem")), "no dev key pair was generated"

"""Optional mutual TLS between services (WC_TLS_CERT / WC_TLS_KEY / WC_TLS_CA): a
profiles process started with it accepts only clients presenting a certificate signed
by the same CA; and a whole platform started with it (every service, relay and
processor, each with a certificate of its own) works end to end, service-to-service
calls included, while a client without a certificate is refused by every service.
Certificates are generated here with ``cryptography``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import ARTIFACTS, eventually, free_port
from tests.integration.test_faults import _drop_namespace
from tools.runner import ROOT, Platform
from watercooler import client
from watercooler.config import SERVICES
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pbg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_ca(name: str):
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(ca_key, ca_cert, name: str, usage) -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1/localhost; ``usage`` is one extended key usage or a list."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage if isinstance(usage, list) else [usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_key(key), cert.public_bytes(serialization.Encoding.PEM)


def write_identity(directory: Path, name: str, ca_key, ca_cert, usage) -> dict[str, str]:
    key, cert = issue(ca_key, ca_cert, name, usage)
    (directory / f"{name}.key").write_bytes(key)
    (directory / f"{name}.crt").write_bytes(cert)
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return {"tls_cert": str(directory / f"{name}.crt"), "tls_key": str(directory / f"{name}.key"), "tls_ca": str(directory / "ca.crt")}


@pytest.fixture()
def tls_profiles(platform, tmp_path):
    """A second profiles process on the platform's store, serving only over mutual TLS."""
    ca_key, ca_cert = make_ca("watercooler-test-ca")
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server = write_identity(tmp_path / "server", "profiles", ca_key, ca_cert, ExtendedKeyUsageOID.SERVER_AUTH)
    good_client = write_identity(tmp_path / "client", "posts", ca_key, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH)
    port = free_port()
    env = {**os.environ, "WC_PROFILES_PORT": str(port), "WC_PROFILES_METRICS_PORT": "0",
           "WC_TLS_CERT": server["tls_cert"], "WC_TLS_KEY": server["tls_key"], "WC_TLS_CA": server["tls_ca"]}
    proc = subprocess.Popen([sys.executable, "-m", "services.profiles"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = dataclasses.replace(platform.settings, **good_client)
    try:
        client.wait_serving(f"127.0.0.1:{port}", 60, settings=settings)  # the health check itself goes over mTLS
        yield port, settings, (ca_key, ca_cert), tmp_path
    finally:
        proc.terminate()
        proc.wait(20)


def get_profile(channel: grpc.Channel, platform) -> grpc.StatusCode:
    try:
        pg.ProfileServiceStub(channel).GetProfile(pp.GetProfileRequest(name="profiles/nobody-here"), metadata=platform.metadata(), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


def test_only_clients_with_our_ca_certificate_get_through(platform, tls_profiles):
    port, settings, _, tmp_path = tls_profiles
    address = f"127.0.0.1:{port}"
    assert client.tls_enabled(settings)
    # A client with a certificate from our CA reaches the service (NOT_FOUND: the RPC ran).
    with grpc.secure_channel(address, client.channel_credentials(settings)) as ok:
        assert get_profile(ok, platform) == grpc.StatusCode.NOT_FOUND
    # Plaintext, TLS without a client certificate, and a certificate from another CA: no connection.
    with grpc.insecure_channel(address) as plain:
        assert get_profile(plain, platform) == grpc.StatusCode.UNAVAILABLE
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=Path(settings.tls_ca).read_bytes())) as anonymous:
        assert get_profile(anonymous, platform) == grpc.StatusCode.UNAVAILABLE
    rogue_key, rogue_ca = make_ca("someone-else")
    (tmp_path / "rogue").mkdir()
    rogue = write_identity(tmp_path / "rogue", "posts", rogue_key, rogue_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_credentials = grpc.ssl_channel_credentials(root_certificates=Path(settings.tls_ca).read_bytes(), private_key=Path(rogue["tls_key"]).read_bytes(),
                                                     certificate_chain=Path(rogue["tls_cert"]).read_bytes())
    with grpc.secure_channel(address, rogue_credentials) as impostor:
        assert get_profile(impostor, platform) == grpc.StatusCode.UNAVAILABLE


def test_half_a_tls_configuration_is_refused(platform):
    with pytest.raises(ValueError, match="WC_TLS_CA"):
        client.tls_enabled(dataclasses.replace(platform.settings, tls_cert="/x.crt", tls_key="/x.key", tls_ca=""))
    assert not client.tls_enabled(platform.settings)  # off by default


# --- a whole platform over mutual TLS -----------------------------------------------------------------
BOTH_WAYS = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.fixture()
def tls_platform(platform, tmp_path):
    """Every process of the platform (services, relays, processors) in a namespace of its own,
    each with its own certificate (server and client) from a CA made for the test; returns the
    service addresses and the settings of a client holding a certificate from that CA."""
    ca_key, ca_cert = make_ca("watercooler-platform-test-ca")
    namespace = f"{platform.settings.namespace}tls"
    ports = {service: free_port() for service in SERVICES}
    env = {"WC_NAMESPACE": namespace, "WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_RATE_LIMIT": "5000",
           "WC_SEARCH_HTTP_PORT": str(free_port())}
    for service, port in ports.items():
        env[f"WC_{service.upper()}_PORT"] = str(port)
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    running = Platform(platform.settings, env=env, log_dir=ARTIFACTS / "logs" / namespace)
    for name, spec in running.specs.items():
        (tmp_path / name).mkdir()
        identity = write_identity(tmp_path / name, name, ca_key, ca_cert, BOTH_WAYS)
        spec.env = {"WC_TLS_CERT": identity["tls_cert"], "WC_TLS_KEY": identity["tls_key"], "WC_TLS_CA": identity["tls_ca"]}
    (tmp_path / "client").mkdir()
    settings = dataclasses.replace(platform.settings, namespace=namespace,
                                   **write_identity(tmp_path / "client", "dashboard", ca_key, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH))
    addresses = {service: f"127.0.0.1:{port}" for service, port in ports.items()}
    try:
        # Not running.start(): its readiness check would dial this process's own ports, in plaintext.
        for name in running.specs:
            running.start_process(name)
        for address in addresses.values():
            client.wait_serving(address, 180, settings=settings)  # health checks over mutual TLS
        yield addresses, settings
    finally:
        running.stop()
        _drop_namespace(platform, namespace)


def test_a_whole_platform_over_mutual_tls_serves_end_to_end_and_refuses_clients_without_a_certificate(platform, tls_platform):
    addresses, settings = tls_platform
    channels = {service: grpc.secure_channel(address, client.channel_credentials(settings)) for service, address in addresses.items()}
    try:
        profiles, communities = pg.ProfileServiceStub(channels["profiles"]), cg.CommunityServiceStub(channels["profiles"])
        posts, wiki, search = pbg.PostServiceStub(channels["posts"]), wg.WikiServiceStub(channels["posts"]), sg.SearchServiceStub(channels["search"])
        tag = uuid.uuid4().hex[:8]
        ana, mia, olaf = (f"{who}-{tag}" for who in ("ana", "mia", "olaf"))
        department = f"Dept-{tag}"
        for person in (ana, mia, olaf):
            profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=person, display_name=person, department=department)),
                                   metadata=platform.metadata(), timeout=10)
        for person in (ana, mia, olaf):  # they write what others read
            profiles.AcceptGuidelines(pp.AcceptGuidelinesRequest(name=f"profiles/{person}", version=platform.settings.guidelines_version),
                                      metadata=platform.metadata(), timeout=10)
        as_ana, as_mia, as_olaf = (platform.metadata(p, "employee") for p in (ana, mia, olaf))
        community = communities.CreateCommunity(
            cp.CreateCommunityRequest(community=cp.Community(community_id=f"tls-{tag}", display_name="Guild", access=cp.Community.OPEN)), metadata=as_ana, timeout=10
        ).name
        communities.JoinCommunity(cp.JoinCommunityRequest(name=community), metadata=as_mia, timeout=10)

        # posts -> profiles (sync client): the blog owner's profile, then community membership.
        blog = posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=f"b-{tag}", title="Guild blog", visibility=pb.Audience.INTERNAL)), metadata=as_ana, timeout=10)
        draft = posts.CreatePost(pb.CreatePostRequest(parent=blog.name, post=pb.Post(title=f"guild plans {tag}", visibility=pb.Audience.COMMUNITY, community=community)),
                                 metadata=as_ana, timeout=10)
        post = posts.PublishPost(pb.PublishPostRequest(name=draft.name), metadata=as_ana, timeout=10)
        assert posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_mia, timeout=10).title == f"guild plans {tag}"
        with pytest.raises(grpc.RpcError) as refused:
            posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_olaf, timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND

        # posts -> profiles (asyncio client): the viewer's department is looked up when a view is recorded.
        space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=f"tls-{tag}", display_name="TLS", visibility=wp.INTERNAL)), metadata=as_ana, timeout=10)
        page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Seen", body="x")), metadata=as_ana, timeout=10)
        assert wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=as_mia, timeout=10).recorded == 1

        # Relays, Kafka, the projections and stats workers, Elasticsearch, and search over mutual TLS.
        def found(metadata) -> set[str]:
            return {hit.name for hit in search.SearchPosts(sp.SearchPostsRequest(author=f"profiles/{ana}"), metadata=metadata, timeout=10).posts}

        eventually(lambda: post.name in found(as_mia), timeout=90, message="the community post searchable by a member")
        assert post.name not in found(as_olaf)
        stats = sp.GetStatsRequest(metric="wiki_views", target=page.name, department=department)
        def views_counted() -> float:
            try:
                return search.GetStats(stats, metadata=platform.metadata(), timeout=10).total
            except grpc.RpcError as error:  # NOT_FOUND until the page itself is projected
                assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
                return -1

        eventually(lambda: views_counted() == 1, timeout=90, message="the view counted under the viewer's department")
    finally:
        for channel in channels.values():
            channel.close()

    # Without a certificate of our CA, no service lets a client in.
    for service, address in addresses.items():
        with grpc.insecure_channel(address) as plain:
            assert _health(plain) == grpc.StatusCode.UNAVAILABLE, f"{service} answered plaintext"
        with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=Path(settings.tls_ca).read_bytes())) as anonymous:
            assert _health(anonymous) == grpc.StatusCode.UNAVAILABLE, f"{service} let in a client without a certificate"


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()

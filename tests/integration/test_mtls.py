"""Optional mutual TLS between services (WC_TLS_CERT / WC_TLS_KEY / WC_TLS_CA): a
profiles process started with it accepts only clients presenting a certificate signed
by the same CA. Certificates are generated here with ``cryptography``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port
from watercooler import client
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.runner import ROOT

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
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
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

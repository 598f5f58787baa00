"""Bearer tokens: what is accepted and what is UNAUTHENTICATED."""

from __future__ import annotations

import dataclasses
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from watercooler import auth, config
from watercooler.errors import Unauthenticated


@pytest.fixture()
def settings(tmp_path):
    return dataclasses.replace(config.load(), data_dir=tmp_path)


def test_token_round_trip(settings):
    token = auth.issue_token(settings, "e1", "guest", jams=("jam-2026",))
    principal = auth.TokenVerifier(settings).verify(f"Bearer {token}")
    assert principal == auth.Principal("e1", "guest", "", ("jam-2026",))


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer not.a.jwt"])
def test_missing_or_malformed(settings, header):
    with pytest.raises(Unauthenticated):
        auth.TokenVerifier(settings).verify(header)


def test_expired(settings):
    token = auth.issue_token(settings, "e1", ttl_seconds=-10)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.TokenVerifier(settings).verify(f"Bearer {token}")


def test_wrong_signature(settings):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    token = jwt.encode({"sub": "e1", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": 2**40}, pem, algorithm="RS256")
    with pytest.raises(Unauthenticated):
        auth.TokenVerifier(settings).verify(f"Bearer {token}")


def test_wrong_audience(settings):
    token = auth.issue_token(dataclasses.replace(settings, jwt_audience="someone-else"), "e1")
    with pytest.raises(Unauthenticated):
        auth.TokenVerifier(settings).verify(f"Bearer {token}")


def test_unsigned_token_is_refused(settings):
    token = jwt.encode({"sub": "e1", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": 2**40}, None, algorithm="none")
    with pytest.raises(Unauthenticated):
        auth.TokenVerifier(settings).verify(f"Bearer {token}")


def test_a_remembered_token_is_still_refused_once_it_expires(settings, monkeypatch):
    token = auth.issue_token(settings, "e1", ttl_seconds=30)
    verifier = auth.TokenVerifier(settings)
    first = verifier.verify(f"Bearer {token}")
    calls = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    assert verifier.verify(f"Bearer {token}") == first and calls == []  # remembered, not checked again
    clock = auth.time.time() + 31
    monkeypatch.setattr(auth.time, "time", lambda: clock)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token}")


def test_a_remembered_token_is_verified_again_after_the_ttl(settings, monkeypatch):
    token = auth.issue_token(settings, "e1", ttl_seconds=3600)
    verifier = auth.TokenVerifier(settings)
    verifier.verify(f"Bearer {token}")
    calls = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    clock = auth.time.time() + verifier.VERIFIED_TTL + 1
    monkeypatch.setattr(auth.time, "time", lambda: clock)
    assert verifier.verify(f"Bearer {token}").subject == "e1" and len(calls) == 1


def test_a_services_own_token_is_renewed_before_it_expires(settings):
    """A long-running service (posts asking profiles) must never call with an expired token."""
    from watercooler.client import SERVICE_TOKEN_RENEW_BEFORE_SECONDS, ServiceCredentials

    now = [1000.0]
    credentials = ServiceCredentials(settings, "posts", ttl_seconds=2 * SERVICE_TOKEN_RENEW_BEFORE_SECONDS, clock=lambda: now[0])

    def expiry(metadata) -> int:
        return jwt.decode(dict(metadata)["authorization"].split(" ", 1)[1], options={"verify_signature": False})["exp"]

    first = credentials.metadata()
    assert auth.TokenVerifier(settings).verify(dict(first)["authorization"]).kind == "service"
    now[0] += SERVICE_TOKEN_RENEW_BEFORE_SECONDS - 1
    assert credentials.metadata() == first, "kept while far from its expiry"
    now[0] += 2
    time.sleep(1.1)  # the renewed token's iat/exp are whole seconds of the real clock
    renewed = credentials.metadata()
    assert renewed != first and expiry(renewed) > expiry(first), "renewed an hour before it expires"

"""Bearer tokens: what is accepted and what is UNAUTHENTICATED."""

from __future__ import annotations

import dataclasses

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

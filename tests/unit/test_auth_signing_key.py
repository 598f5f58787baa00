"""The platform's own signing key (WC_JWT_PRIVATE_KEY_FILE): trusted next to the identity
provider's key, rotated with a bundle of public keys, and never replaced by a generated dev key
once real keys are configured."""

from __future__ import annotations

import dataclasses
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from watercooler import auth, config
from watercooler.errors import Unauthenticated


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(*keys: rsa.RSAPrivateKey) -> bytes:
    return b"".join(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) for k in keys)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture()
def settings(tmp_path):
    return dataclasses.replace(config.load(), data_dir=tmp_path / "data", jwt_public_key_file="", jwt_private_key_file="", jwt_jwks_url="")


def write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def provider_token(settings, key, subject: str) -> str:
    claims = {"sub": subject, "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": int(time.time()) + 60}
    return jwt.encode(claims, private_pem(key), algorithm="RS256")  # no kid, as many providers' static keys


@pytest.mark.parametrize("configured", ["WC_JWT_PUBLIC_KEY_FILE", "WC_JWT_JWKS_URL"])
def test_real_keys_without_a_signing_key_refuse_to_sign_naming_the_variable(settings, tmp_path, configured):
    if configured == "WC_JWT_PUBLIC_KEY_FILE":
        settings = dataclasses.replace(settings, jwt_public_key_file=write(tmp_path / "idp.pem", public_pem(new_key())))
    else:
        settings = dataclasses.replace(settings, jwt_jwks_url="http://127.0.0.1:9/jwks")
    with pytest.raises(auth.SigningKeyNotConfigured, match=f"{configured} is set but WC_JWT_PRIVATE_KEY_FILE is not"):
        auth.issue_token(settings, "posts", "service")
    assert not settings.keys_dir.exists(), "no dev key pair was generated to sign with"


def test_nothing_configured_signs_with_the_dev_key_pair(settings):
    token = auth.issue_token(settings, "e1")
    assert (settings.keys_dir / "jwt-dev-private.pem").exists()
    assert auth.TokenVerifier(settings).verify(f"Bearer {token}").subject == "e1"


def test_the_provider_key_and_the_platform_key_are_both_trusted(settings, tmp_path):
    provider, platform, stranger = new_key(), new_key(), new_key()
    verifying = dataclasses.replace(
        settings, jwt_public_key_file=os.pathsep.join([write(tmp_path / "idp.pem", public_pem(provider)), write(tmp_path / "platform.pem", public_pem(platform))])
    )
    signing = dataclasses.replace(verifying, jwt_private_key_file=write(tmp_path / "private.pem", private_pem(platform)))
    verifier = auth.TokenVerifier(verifying)

    ours = auth.issue_token(signing, "posts", "service")
    assert jwt.get_unverified_header(ours)["kid"] == auth.key_id(platform.public_key())
    assert verifier.verify(f"Bearer {ours}") == auth.Principal("posts", "service")
    assert verifier.verify(f"Bearer {provider_token(settings, provider, 'e1')}").subject == "e1"
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        verifier.verify(f"Bearer {provider_token(settings, stranger, 'mallory')}")
    # A kid copied from our key does not make a stranger's signature valid.
    forged = jwt.encode(
        {"sub": "mallory", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": int(time.time()) + 60},
        private_pem(stranger), algorithm="RS256", headers={"kid": auth.key_id(platform.public_key())},
    )
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        verifier.verify(f"Bearer {forged}")
    assert not settings.keys_dir.exists(), "configured keys never touch the dev key pair"


def test_a_rotation_bundle_trusts_the_old_and_the_new_key(settings, tmp_path):
    old, new = new_key(), new_key()
    bundle = write(tmp_path / "platform.pem", public_pem(new, old))
    tokens = [
        auth.issue_token(dataclasses.replace(settings, jwt_public_key_file=bundle, jwt_private_key_file=write(tmp_path / f"{name}.pem", private_pem(key))), name)
        for name, key in (("old", old), ("new", new))
    ]
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_public_key_file=bundle))
    assert [verifier.verify(f"Bearer {t}").subject for t in tokens] == ["old", "new"]


def test_a_key_file_without_a_key_is_refused_naming_it(settings, tmp_path):
    empty = write(tmp_path / "public.pem", b"")
    with pytest.raises(ValueError, match="public.pem .WC_JWT_PUBLIC_KEY_FILE. holds no PEM public key"):
        auth.TokenVerifier(dataclasses.replace(settings, jwt_public_key_file=empty))

"""Bearer tokens verified with keys from a JWKS endpoint (WC_JWT_JWKS_URL), picked by
``kid``: a real HTTP server on localhost serves a key set generated here."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from watercooler import auth, config
from watercooler.errors import Unauthenticated


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer:
    """Serves {"keys": [...]} at /jwks and counts the fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.fetches += 1
                jwks = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "use": "sig", "alg": "RS256"} for kid, k in outer.keys.items()]}
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def jwks():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture()
def settings(tmp_path):
    return dataclasses.replace(config.load(), data_dir=tmp_path)


def token(settings, key: rsa.RSAPrivateKey, kid: str | None, subject: str = "e1", kind: str = "employee", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": subject, "iat": now, "exp": now + 600, "wc_kind": kind, **overrides}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def test_key_is_picked_by_kid_from_the_jwks(settings, jwks):
    first, second = new_key(), new_key()
    jwks.keys = {"k1": first, "k2": second}
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url=jwks.url))
    assert verifier.verify(f"Bearer {token(settings, first, 'k1', 'ada')}").subject == "ada"
    assert verifier.verify(f"Bearer {token(settings, second, 'k2', 'bob', 'service')}") == auth.Principal("bob", "service")
    # Signed with k1's key but naming k2: the signature check fails.
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier.verify(f"Bearer {token(settings, first, 'k2')}")


def test_rotation_unknown_kid_refetches_then_unknown_is_refused(settings, jwks):
    old, rotated = new_key(), new_key()
    jwks.keys = {"old": old}
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url=jwks.url))
    verifier.verify(f"Bearer {token(settings, old, 'old')}")
    fetched = jwks.fetches
    verifier.verify(f"Bearer {token(settings, old, 'old')}")
    assert jwks.fetches == fetched, "the key set is cached"
    jwks.keys["new"] = rotated  # the provider rotates
    # Within the library's cooldown (30 s) after a fetch an unknown kid does not refetch, so
    # a flood of made-up kids cannot hammer the provider.
    with pytest.raises(Unauthenticated, match="no signing key for kid 'new'"):
        verifier.verify(f"Bearer {token(settings, rotated, 'new', 'cy')}")
    assert jwks.fetches == fetched
    verifier.jwks.cooldown_duration = 0  # as if the cooldown had passed
    assert verifier.verify(f"Bearer {token(settings, rotated, 'new', 'cy')}").subject == "cy"
    assert jwks.fetches == fetched + 1
    with pytest.raises(Unauthenticated, match="no signing key for kid 'nope'"):
        verifier.verify(f"Bearer {token(settings, new_key(), 'nope')}")


def test_jwks_only_never_falls_back_to_dev_keys(settings, jwks):
    jwks.keys = {"k1": new_key()}
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url=jwks.url))
    assert verifier.public_keys == {}
    # A token signed with the locally generated dev key (its kid is not in the set) is refused.
    dev_token = auth.issue_token(settings, "mallory")
    with pytest.raises(Unauthenticated, match="no signing key for kid"):
        verifier.verify(f"Bearer {dev_token}")


def test_file_key_and_jwks_together(settings, jwks, tmp_path):
    file_key, idp_key = new_key(), new_key()
    path = tmp_path / "public.pem"
    path.write_bytes(file_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    jwks.keys = {"idp": idp_key}
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url=jwks.url, jwt_public_key_file=str(path)))
    assert verifier.verify(f"Bearer {token(settings, file_key, None, 'from-file')}").subject == "from-file"
    assert verifier.verify(f"Bearer {token(settings, idp_key, 'idp', 'from-idp')}").subject == "from-idp"
    with pytest.raises(Unauthenticated):
        verifier.verify(f"Bearer {token(settings, idp_key, None)}")  # no kid: the file key, which does not match


def test_claims_are_still_checked_with_jwks_keys(settings, jwks):
    key = new_key()
    jwks.keys = {"k": key}
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url=jwks.url))
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(f"Bearer {token(settings, key, 'k', exp=int(time.time()) - 60)}")
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier.verify(f"Bearer {token(settings, key, 'k', aud='someone-else')}")
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier.verify(f"Bearer {token(settings, key, 'k', iss='evil')}")


def test_unreachable_jwks_is_unauthenticated(settings):
    verifier = auth.TokenVerifier(dataclasses.replace(settings, jwt_jwks_url="http://127.0.0.1:9/jwks"))
    with pytest.raises(Unauthenticated, match="no signing key"):
        verifier.verify(f"Bearer {token(settings, new_key(), 'k')}")

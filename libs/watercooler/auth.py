"""Who is calling: bearer JWTs (RS256) turned into principals.

Kinds of principal:
- employee: works here; may publish internal content
- alumni:   left the company; profile stays, may not publish internal content
- guest:    family, clients, partners invited to specific jams (claim ``jams``)
- service:  another Watercooler service or a platform job

In development a key pair is generated once under ``<data_dir>/keys`` and
``watercooler token`` signs tokens with it; in production the public key comes
from ``WC_JWT_PUBLIC_KEY_FILE`` and tokens from the company's identity provider, whose signing keys may instead (or as well)
be published at a JWKS endpoint, ``WC_JWT_JWKS_URL``: a token's ``kid`` header picks
the key there, so the provider can rotate keys without a redeploy.
"""

from __future__ import annotations

import collections
import contextvars
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .config import Settings
from .errors import Unauthenticated

KINDS = ("employee", "alumni", "guest", "service")


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str
    display_name: str = ""
    # For guests: the jams that invited them.
    jams: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def is_employee(self) -> bool:
        return self.kind == "employee"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated principal", field="authorization")
    return principal


def set_current_principal(principal: Principal | None) -> contextvars.Token:
    return _current.set(principal)


# --- keys ----------------------------------------------------------------------------------
def _dev_key_paths(settings: Settings) -> tuple[Path, Path]:
    return settings.keys_dir / "jwt-dev-private.pem", settings.keys_dir / "jwt-dev-public.pem"


def ensure_dev_keys(settings: Settings) -> tuple[Path, Path]:
    """Create the dev key pair once. Safe when several processes start together:
    the pair is written to temporary files and renamed into place."""
    private_path, public_path = _dev_key_paths(settings)
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    settings.keys_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    suffix = f".{os.getpid()}.tmp"
    tmp_private, tmp_public = private_path.with_name(private_path.name + suffix), public_path.with_name(public_path.name + suffix)
    tmp_private.write_bytes(private_pem)
    os.chmod(tmp_private, 0o600)
    tmp_public.write_bytes(public_pem)
    # Public first, so whoever sees the private key also finds its public half.
    if not private_path.exists():
        os.replace(tmp_public, public_path)
        os.replace(tmp_private, private_path)
    else:
        tmp_private.unlink(missing_ok=True)
        tmp_public.unlink(missing_ok=True)
    return private_path, public_path


def _public_key(settings: Settings) -> bytes:
    path = Path(settings.jwt_public_key_file) if settings.jwt_public_key_file else ensure_dev_keys(settings)[1]
    return path.read_bytes()


def _private_key(settings: Settings) -> bytes:
    path = Path(settings.jwt_private_key_file) if settings.jwt_private_key_file else ensure_dev_keys(settings)[0]
    return path.read_bytes()


def issue_token(
    settings: Settings,
    subject: str,
    kind: str = "employee",
    display_name: str = "",
    jams: tuple[str, ...] | list[str] = (),
    ttl_seconds: int = 12 * 3600,
) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "wc_kind": kind,
    }
    if display_name:
        claims["name"] = display_name
    if jams:
        claims["wc_jams"] = list(jams)
    return jwt.encode(claims, _private_key(settings), algorithm="RS256")


class TokenVerifier:
    def __init__(self, settings: Settings):
        self.settings = settings
        # With a JWKS endpoint and no key file there is no file key: never fall back to the
        # locally generated dev keys, which anyone on the host could sign with.
        use_file = bool(settings.jwt_public_key_file) or not settings.jwt_jwks_url
        self.public_key: bytes | None = _public_key(settings) if use_file else None
        # The key set is cached (5 min) and refetched when an unknown kid shows up (rotation).
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_jwk_set=True, lifespan=300, timeout=5) if settings.jwt_jwks_url else None
        # A client sends the same token with every call: an RS256 check per call was a few
        # per cent of a write's CPU.  Verified tokens are remembered briefly (expiry still
        # checked on each use; a rotated-out key stops being trusted within VERIFIED_TTL).
        self._verified: collections.OrderedDict[str, tuple[Principal, float, float]] = collections.OrderedDict()

    VERIFIED_TTL = 60.0
    VERIFIED_MAX = 10_000

    def _key_for(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", field="authorization") from None
        if self.jwks is not None and (kid or self.public_key is None):
            if not kid:
                raise Unauthenticated("token has no 'kid' header to pick a key from the JWKS", field="authorization")
            try:
                return self.jwks.get_signing_key(str(kid)).key
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated(f"no signing key for kid {kid!r}: {exc}", field="authorization") from None
        return self.public_key

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing bearer token in 'authorization' metadata", field="authorization")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization must be 'Bearer <jwt>'", field="authorization")
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at, verified_at = cached
            del self._verified[token]
            if now >= expires_at:
                raise Unauthenticated("token expired", field="authorization")
            if now - verified_at < self.VERIFIED_TTL:
                self._verified[token] = cached  # most recently used last
                return principal
        principal, expires_at = self._verify(token)
        self._verified[token] = (principal, expires_at, now)
        if len(self._verified) > self.VERIFIED_MAX:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", field="authorization") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", field="authorization") from None
        kind = claims.get("wc_kind", "employee")
        if kind not in KINDS:
            raise Unauthenticated(f"unknown principal kind {kind!r}", field="authorization")
        return Principal(
            subject=str(claims["sub"]),
            kind=kind,
            display_name=str(claims.get("name", "")),
            jams=tuple(claims.get("wc_jams", ())),
        ), float(claims["exp"])

"""Who is calling: bearer JWTs (RS256) turned into principals.

Kinds of principal:
- employee: works here; may publish internal content
- alumni:   left the company; profile stays, may not publish internal content
- guest:    family, clients, partners invited to specific jams (claim ``jams``)
- service:  another Watercooler service or a platform job

In development a key pair is generated once under ``<data_dir>/keys`` and
``watercooler token`` signs tokens with it; in production the public keys come
from ``WC_JWT_PUBLIC_KEY_FILE`` and tokens from the company's identity provider, whose signing keys may instead (or as well)
be published at a JWKS endpoint, ``WC_JWT_JWKS_URL``: a token's ``kid`` header picks
the key there, so the provider can rotate keys without a redeploy.

The platform signs tokens of its own too (service tokens, the guest tokens of a redeemed
invitation) with ``WC_JWT_PRIVATE_KEY_FILE``, one key shared by every process that signs; the
verifiers trust its public half through ``WC_JWT_PUBLIC_KEY_FILE``, which may name several PEM
files (separated like PATH) each holding one or more public keys.  Every token we sign carries
the RFC 7638 thumbprint of its key as ``kid``, so a verifier picks the key without trying each.
"""

from __future__ import annotations

import base64
import collections
import contextvars
import functools
import hashlib
import json
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


def caller_or_none() -> Principal | None:
    """The principal of the call being served, None outside any call (a background task)."""
    return _current.get()


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


class SigningKeyNotConfigured(RuntimeError):
    """Real keys are configured but not the one to sign with: a generated dev key would sign
    tokens that no other process accepts."""


def public_key_paths(settings: Settings) -> list[Path]:
    if settings.jwt_public_key_file:
        return [Path(p) for p in settings.jwt_public_key_file.split(os.pathsep) if p]
    return [ensure_dev_keys(settings)[1]]


def _public_keys(settings: Settings) -> list[Any]:
    """Every public key of the configured files (a file may hold several PEM blocks, e.g. the
    old and the new key during a rotation)."""
    keys = []
    for path in public_key_paths(settings):
        pem = path.read_bytes()
        blocks = [b"-----BEGIN" + block for block in pem.split(b"-----BEGIN")[1:]]
        if not blocks:
            raise ValueError(f"{path} (WC_JWT_PUBLIC_KEY_FILE) holds no PEM public key")
        for block in blocks:
            key = serialization.load_pem_public_key(block)
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError(f"{path} (WC_JWT_PUBLIC_KEY_FILE) holds a {type(key).__name__}; tokens are RS256, keys must be RSA")
            keys.append(key)
    return keys


def key_id(public_key: Any) -> str:
    """RFC 7638 thumbprint of an RSA public key: the same on every process holding the key."""
    numbers = public_key.public_numbers()

    def b64(number: int) -> str:
        return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    canonical = json.dumps({"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _private_key(settings: Settings) -> Any:
    if settings.jwt_private_key_file:
        path = Path(settings.jwt_private_key_file)
    elif settings.jwt_public_key_file or settings.jwt_jwks_url:
        configured = "WC_JWT_PUBLIC_KEY_FILE" if settings.jwt_public_key_file else "WC_JWT_JWKS_URL"
        raise SigningKeyNotConfigured(
            f"cannot sign a token: {configured} is set but WC_JWT_PRIVATE_KEY_FILE is not; set WC_JWT_PRIVATE_KEY_FILE to the "
            "platform's signing key (the other processes trust its public half), a generated dev key would be rejected by all of them"
        )
    else:
        path = ensure_dev_keys(settings)[0]
    stat = path.stat()
    return _load_private_key(str(path), stat.st_mtime_ns, stat.st_size)


def require_signing_key(settings: Settings) -> None:
    """For a process that signs tokens, at start: a missing or unreadable signing key stops it
    there (a crash loop naming the variable) rather than failing each call that signs."""
    try:
        _private_key(settings)
    except (OSError, ValueError) as exc:
        raise SigningKeyNotConfigured(f"cannot sign tokens with WC_JWT_PRIVATE_KEY_FILE={settings.jwt_private_key_file}: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _load_private_key(path: str, mtime_ns: int, size: int) -> Any:
    # Parsed once per file version: a guest token is signed per redeemed invitation.
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


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
    key = _private_key(settings)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key())})


class TokenVerifier:
    def __init__(self, settings: Settings):
        self.settings = settings
        # With a JWKS endpoint and no key file there is no file key: never fall back to the
        # locally generated dev keys, which anyone on the host could sign with.
        use_file = bool(settings.jwt_public_key_file) or not settings.jwt_jwks_url
        # kid -> key, in the files' order (the identity provider's and the platform's own keys).
        self.public_keys: dict[str, Any] = {key_id(k): k for k in _public_keys(settings)} if use_file else {}
        # The key set is cached (5 min) and refetched when an unknown kid shows up (rotation).
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_jwk_set=True, lifespan=300, timeout=5) if settings.jwt_jwks_url else None
        # A client sends the same token with every call: an RS256 check per call was a few
        # per cent of a write's CPU.  Verified tokens are remembered briefly (expiry still
        # checked on each use): a token whose key was since rotated out is accepted at most
        # VERIFIED_TTL after it was last verified, as a new token with that key is for as long
        # as the JWKS key set is cached.
        self._verified: collections.OrderedDict[str, tuple[Principal, float, float]] = collections.OrderedDict()

    # The JWKS cache's lifespan above. One minute re-checked the token of everyone who calls
    # less often than that (most of a company's 400,000 people, between two pages they read).
    # Key files are read when the process starts; a new one comes with a restart, which
    # forgets every token.
    VERIFIED_TTL = 300.0
    VERIFIED_MAX = 10_000

    def _keys_for(self, token: str) -> list[Any]:
        """The keys that may have signed ``token``: the one its kid names, else every file key."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", field="authorization") from None
        if kid is not None and str(kid) in self.public_keys:
            return [self.public_keys[str(kid)]]
        if self.jwks is not None and (kid or not self.public_keys):
            if not kid:
                raise Unauthenticated("token has no 'kid' header to pick a key from the JWKS", field="authorization")
            try:
                return [self.jwks.get_signing_key(str(kid)).key]
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated(f"no signing key for kid {kid!r}: {exc}", field="authorization") from None
        # No kid, or one of the provider's own naming for its key file: each file key is tried.
        return list(self.public_keys.values())

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
        keys = self._keys_for(token)
        for n, key in enumerate(keys):
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    options={"require": ["exp", "sub", "iss", "aud"]},
                )
                break
            except jwt.InvalidSignatureError:
                if n == len(keys) - 1:
                    raise Unauthenticated("invalid token: Signature verification failed", field="authorization") from None
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

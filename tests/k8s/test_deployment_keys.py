"""Each gRPC service Deployment, configured exactly as the rendered manifests configure it,
accepts the tokens every other one signs.

For every overlay, each Deployment of a gRPC service becomes two simulated pods (two
replicas): the image's ENV, then the container's ``envFrom`` and ``env`` as Kubernetes
resolves them (ConfigMaps as rendered, Secrets filled with test values and keys generated
here, ``$(VAR)`` references expanded), and every volume mount (Secret, projected, ConfigMap,
emptyDir) materialised as files under the pod's own temporary root, paths in the environment
mapped there. Nothing is shared between pods but what the manifests share, so a key a pod
generates for itself on its own ``/tmp`` is seen for what it is. Under that environment the
test runs what a service runs to decide keys: ``config.load()``, ``auth.issue_token`` (as
``service_token`` and the guest tokens of a redeemed invitation do) and ``auth.TokenVerifier``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.k8s.test_manifests import OVERLAYS, ROOT, render, signing_services
from watercooler import auth, config
from watercooler.errors import Unauthenticated

REPLICAS = ("a", "b")


# --- the Secrets a platform team creates (deploy/k8s/README.md, "Install"), with test values --------
def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Keys:
    provider: rsa.RSAPrivateKey  # the company's identity provider: signs people's tokens
    platform: rsa.RSAPrivateKey  # the platform's own signing key

    def secrets(self) -> dict[str, dict[str, bytes]]:
        return {
            "watercooler-jwt": {"public.pem": _pem_public(self.provider)},
            "watercooler-jwt-signing": {"private.pem": _pem_private(self.platform), "public.pem": _pem_public(self.platform)},
            "watercooler-page-tokens": {"secret": b"0" * 64},
            "watercooler-pg-app": {"username": b"app", "password": b"pg-password"},
            "watercooler-es-user": {"username": b"watercooler", "password": b"es-password", "roles": b"watercooler_platform"},
        }


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(*(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)))


# --- a pod as the kubelet would set it up ---------------------------------------------------------
def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's last stage (a container starts with it); PATH and PYTHONPATH
    stay the test's own, since the code runs from this checkout rather than from /app."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    last_stage = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line[4:]) if "=" in pair)
    return {k: v for k, v in env.items() if k not in ("PATH", "PYTHONPATH")}


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are substituted, $$ escapes a $."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


@dataclass
class Pod:
    build: str
    deployment: str
    replica: str
    root: Path
    env: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.build}/{self.deployment}-{self.replica}"

    def files(self) -> Iterator[Path]:
        return (p for p in self.root.rglob("*") if p.is_file())

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if k in ("PATH", "PYTHONPATH", "LANG", "LC_ALL")})
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def settings(self) -> config.Settings:
        with self.environment():
            return config.load()


def _project(files: dict[str, bytes], items: list[dict[str, Any]] | None, source: str) -> dict[str, bytes]:
    if items is None:
        return dict(files)
    missing = [i["key"] for i in items if i["key"] not in files]
    assert not missing, f"{source} has no key {missing} (deploy/k8s/README.md says how it is created)"
    return {i["path"]: files[i["key"]] for i in items}


def make_pod(build: str, deployment: dict[str, Any], replica: str, root: Path, secrets: dict[str, dict[str, bytes]]) -> Pod:
    config_maps = {o["metadata"]["name"]: {k: v.encode() for k, v in o.get("data", {}).items()} for o in render(build) if o["kind"] == "ConfigMap"}

    def secret(name: str) -> dict[str, bytes]:
        assert name in secrets, f"{deployment['metadata']['name']} uses Secret {name}, which no install step creates (add it to deploy/k8s/README.md and here)"
        return secrets[name]

    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = image_env()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update({k: v.decode() for k, v in config_maps[source["configMapRef"]["name"]].items()})
        else:
            env.update({k: v.decode() for k, v in secret(source["secretRef"]["name"]).items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = _expand(entry["value"], env)
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            env[entry["name"]] = secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]].decode()
        elif "configMapKeyRef" in ref:
            env[entry["name"]] = config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]].decode()
        else:
            env[entry["name"]] = {"metadata.name": f"{deployment['metadata']['name']}-{replica}"}.get(ref["fieldRef"]["fieldPath"], "test")

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: len(m["mountPath"]), reverse=True)
    for mount in mounts:
        volume = volumes[mount["name"]]
        files: dict[str, bytes] = {}
        if "secret" in volume:
            files = _project(secret(volume["secret"]["secretName"]), volume["secret"].get("items"), f"Secret {volume['secret']['secretName']}")
        elif "configMap" in volume:
            files = _project(config_maps[volume["configMap"]["name"]], volume["configMap"].get("items"), f"ConfigMap {volume['configMap']['name']}")
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                if "secret" in source:
                    files.update(_project(secret(source["secret"]["name"]), source["secret"].get("items"), f"Secret {source['secret']['name']}"))
                elif "configMap" in source:
                    files.update(_project(config_maps[source["configMap"]["name"]], source["configMap"].get("items"), f"ConfigMap {source['configMap']['name']}"))
                else:
                    raise AssertionError(f"{deployment['metadata']['name']}: projected source {sorted(source)} not simulated")
        else:
            assert "emptyDir" in volume, f"{deployment['metadata']['name']}: volume {mount['name']} of a kind this test does not simulate"
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        for path, content in files.items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_bytes(content)
    # Paths in the environment point into the pod's own root, in one pass (the root may itself
    # be under /tmp); the longest mount first, so a mount inside another one wins. A path starts
    # a value or follows a list separator.
    if mounts:
        separators = re.escape(os.pathsep + ",")
        pattern = re.compile(rf"(?:^|(?<=[{separators}=\s]))({'|'.join(re.escape(m['mountPath']) for m in mounts)})(?=/|$|[{separators}])")
        env = {k: pattern.sub(lambda m: str(root / m.group(1).lstrip("/")), v) for k, v in env.items()}
    return Pod(build, deployment["metadata"]["name"], replica, root, env)


def service_deployments(build: str) -> list[dict[str, Any]]:
    found = [
        o
        for o in render(build)
        if o["kind"] == "Deployment" and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    ]
    assert {d["metadata"]["name"] for d in found} == set(config.SERVICES), f"{build}: one Deployment per gRPC service"
    return found


@pytest.fixture(scope="module", params=OVERLAYS)
def pods(request, keys: Keys, tmp_path_factory) -> list[Pod]:
    build = request.param
    secrets = keys.secrets()
    return [
        make_pod(build, deployment, replica, tmp_path_factory.mktemp(f"{build}-{deployment['metadata']['name']}-{replica}"), secrets)
        for deployment in service_deployments(build)
        for replica in REPLICAS
    ]


def test_the_code_signs_in_posts_and_jams() -> None:
    # The check below is only as good as this list: posts calls profiles with service tokens,
    # jams signs the guest tokens of redeemed invitations.
    assert signing_services() == {"posts", "jams"}


def test_a_token_signed_by_one_deployment_is_accepted_by_every_other(pods: list[Pod]) -> None:
    signers = signing_services()
    verifiers = {pod.name: auth.TokenVerifier(pod.settings()) for pod in pods}
    refused = []
    for pod in (p for p in pods if p.deployment in signers):
        settings = pod.settings()
        try:
            tokens = {
                "service token": auth.issue_token(settings, pod.deployment, "service"),
                "guest token": auth.issue_token(settings, "guest-1", "guest", jams=("jam-1",)),
            }
        except auth.SigningKeyNotConfigured as exc:
            pytest.fail(f"{pod.name} signs tokens in its code but cannot: {exc}")
        for what, token in tokens.items():
            for name, verifier in verifiers.items():
                try:
                    verifier.verify(f"Bearer {token}")
                except Unauthenticated as exc:
                    refused.append(f"a {what} of {pod.name} is refused by {name}: {exc}")
    assert not refused, "\n".join(refused)


def test_the_identity_providers_tokens_are_accepted_by_every_deployment(pods: list[Pod], keys: Keys) -> None:
    for pod in pods:
        settings = pod.settings()
        claims = {"sub": "e1", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": int(time.time()) + 60, "wc_kind": "employee"}
        token = jwt.encode(claims, _pem_private(keys.provider), algorithm="RS256")
        assert auth.TokenVerifier(settings).verify(f"Bearer {token}").subject == "e1", pod.name


def test_only_the_signing_deployments_hold_the_signing_key(pods: list[Pod], keys: Keys) -> None:
    private = _pem_private(keys.platform)
    signers = signing_services()
    for pod in pods:
        holds = any(path.read_bytes() == private for path in pod.files())
        assert holds == (pod.deployment in signers), f"{pod.name} {'holds' if holds else 'lacks'} the platform's signing key"
        if pod.deployment not in signers:
            # Real keys are configured: refusing to sign beats a generated key nobody trusts.
            with pytest.raises(auth.SigningKeyNotConfigured, match="WC_JWT_PRIVATE_KEY_FILE"):
                auth.issue_token(pod.settings(), "someone", "service")


def test_the_simulated_pods_share_nothing_but_the_manifests(pods: list[Pod]) -> None:
    # The data dir (where a dev key pair would be generated) is each pod's own emptyDir.
    data_dirs = [pod.settings().data_dir for pod in pods]
    assert len(set(data_dirs)) == len(pods)
    assert all(str(d).startswith(str(pod.root)) for d, pod in zip(data_dirs, pods, strict=True))


def test_page_token_and_database_secrets_reach_the_environment(pods: list[Pod], keys: Keys) -> None:
    # The simulation resolves secretKeyRef and $(VAR) as the kubelet does.
    search = next(p for p in pods if p.deployment == "search")
    assert search.env["WC_ES_URL"].startswith("http://watercooler:es-password@")
    posts = next(p for p in pods if p.deployment == "posts")
    assert posts.env["WC_POSTGRES_PASSWORD"] == "pg-password"
    assert {p.env["WC_PAGE_TOKEN_SECRET"] for p in pods} == {"0" * 64}

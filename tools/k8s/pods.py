"""Pods as the kubelet would set them up from the rendered manifests, without a cluster.

A pod of a Deployment gets the image's ENV, then its container's ``envFrom`` and ``env`` as
Kubernetes resolves them (ConfigMaps as rendered, Secrets filled with test values and keys,
``$(VAR)`` references expanded), and every volume mount (Secret, projected, ConfigMap, emptyDir)
materialised as files under a temporary root of its own, with the paths in its environment
mapped there. Nothing is shared between pods but what the manifests share.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tools.k8s.render import ROOT, render
from watercooler import config


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- the Secrets a platform team creates (deploy/k8s/README.md, "Install"), with test values --------
def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Keys:
    provider: rsa.RSAPrivateKey  # the company's identity provider: signs people's tokens
    platform: rsa.RSAPrivateKey  # the platform's own signing key

    def secrets(self) -> dict[str, dict[str, bytes]]:
        return {
            "watercooler-jwt": {"public.pem": pem_public(self.provider)},
            "watercooler-jwt-signing": {"private.pem": pem_private(self.platform), "public.pem": pem_public(self.platform)},
            "watercooler-page-tokens": {"secret": b"0" * 64},
            "watercooler-s3": {"access-key": b"AKIAEXAMPLE", "secret-key": b"s3-secret"},
            "watercooler-pg-app": {"username": b"app", "password": b"pg-password"},
            "watercooler-es-user": {"username": b"watercooler", "password": b"es-password", "roles": b"watercooler_platform"},
        }


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

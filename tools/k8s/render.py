"""deploy/k8s rendered by kustomize (fetched into the cache by tools.k8s.fetch), as parsed objects."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tools.k8s import fetch

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


class RenderFailed(RuntimeError):
    """kustomize rejected an overlay (its message says why)."""


@cache
def kustomize() -> Path:
    return fetch.kustomize()


@cache
def render(build: str) -> tuple[dict[str, Any], ...]:
    """Every object of ``deploy/k8s/overlays/<build>`` (e.g. ``prod``, ``dev/jobs``), in order."""
    done = subprocess.run([str(kustomize()), "build", str(K8S / "overlays" / build)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RenderFailed(f"kustomize build overlays/{build} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)

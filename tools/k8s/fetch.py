"""What rendering and validating deploy/k8s needs, installed on first use and cached, never committed.

- kustomize, built from the Go module proxy (`go install`), cached as
  ``$WC_CACHE_DIR/bin/kustomize-<version>``.
- The operators' own CRD schemas: ECK's and CloudNativePG's from their Go modules
  (`go mod download -json`), Strimzi's from its Maven artifact ``io.strimzi:api:<v>:tests``
  (the jar holds the CRDs its build generated, the same generator as the install files),
  copied to ``$WC_CACHE_DIR/crds/<operator>-<version>/``.

``python -m tools.k8s.fetch`` fetches everything (what `make k8s-validate` runs first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

KUSTOMIZE_VERSION = "v5.8.2"  # builds with this machine's Go 1.26; v5.8.3 needs Go 1.27
ECK = ("github.com/elastic/cloud-on-k8s/v3", "v3.5.0", ["config/crds/v1/all-crds.yaml"])
CNPG = ("github.com/cloudnative-pg/cloudnative-pg", "v1.27.1", ["config/crd/bases/postgresql.cnpg.io_clusters.yaml"])
STRIMZI = ("io.strimzi", "api", "0.49.0")  # the :tests jar carries crds/v1beta2/*.yaml


class ToolUnavailable(RuntimeError):
    """A tool or schema could not be installed on this machine (the tests then skip, saying why)."""


def cache_dir() -> Path:
    base = os.environ.get("WC_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "watercooler")
    return Path(base)


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise ToolUnavailable("no Go toolchain (apt-get install golang-go, or put go on PATH) to build kustomize and fetch the ECK/CloudNativePG CRDs")
    return go


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolUnavailable(f"{' '.join(argv[:4])}: {exc}") from exc
    if done.returncode != 0:
        raise ToolUnavailable(f"{' '.join(argv[:4])} failed: {(done.stderr or done.stdout).strip()[-600:]}")
    return done.stdout


def kustomize() -> Path:
    target = cache_dir() / "bin" / f"kustomize-{KUSTOMIZE_VERSION}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run([_go(), "install", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"], Path(tmp), {"GOBIN": tmp, "GOFLAGS": "-mod=mod"})
        shutil.move(str(Path(tmp) / "kustomize"), target)
    return target


def _go_module_crds(name: str, module: str, version: str, paths: list[str]) -> Path:
    target = cache_dir() / "crds" / f"{name}-{version}"
    if target.exists() and all((target / Path(p).name).exists() for p in paths):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        info = json.loads(_run([_go(), "mod", "download", "-json", f"{module}@{version}"], Path(tmp), {"GOFLAGS": "-mod=mod"}))
    if info.get("Error"):
        raise ToolUnavailable(f"go mod download {module}@{version}: {info['Error']}")
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copyfile(Path(info["Dir"]) / path, target / Path(path).name)
    return target


def eck_crds() -> Path:
    return _go_module_crds("eck", *ECK)


def cnpg_crds() -> Path:
    return _go_module_crds("cloudnative-pg", *CNPG)


def strimzi_crds() -> Path:
    group, artifact, version = STRIMZI
    target = cache_dir() / "crds" / f"strimzi-{version}"
    if target.exists() and any(target.glob("*.yaml")):
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolUnavailable("no Maven (apt-get install maven) to fetch Strimzi's CRDs from io.strimzi:api")
    repo = cache_dir() / "m2"
    _run(
        [mvn, "-q", "-B", "dependency:get", f"-Dartifact={group}:{artifact}:{version}:jar:tests", "-Dtransitive=false", f"-Dmaven.repo.local={repo}"],
        Path(tempfile.gettempdir()),
        timeout=600,
    )
    jar = repo / group.replace(".", "/") / artifact / version / f"{artifact}-{version}-tests.jar"
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        for entry in archive.namelist():
            if entry.startswith("crds/v1beta2/") and entry.endswith(".yaml"):
                (target / Path(entry).name).write_bytes(archive.read(entry))
    return target


if __name__ == "__main__":
    for fetch in (kustomize, eck_crds, cnpg_crds, strimzi_crds):
        print(f"{fetch.__name__}: {fetch()}")

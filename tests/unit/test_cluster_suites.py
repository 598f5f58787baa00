"""The end-to-end slice and every visibility-matrix module run against the cluster topology too
(`make test-cluster`): each has a module in tests/cluster that imports its tests unchanged, so a
visibility rule that held only on one process (one replica's cache, its own writes) shows up."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "tests" / "integration"
SHARED = [INTEGRATION / "test_pipeline.py", *sorted(INTEGRATION.glob("test_visibility_matrix*.py"))]


def test_the_slice_and_every_visibility_matrix_module_run_on_the_cluster():
    assert len(SHARED) > 2
    missing = []
    for module in SHARED:
        twin = ROOT / "tests" / "cluster" / f"test_on_cluster_{module.stem.removeprefix('test_')}.py"
        if not twin.exists() or f"from tests.integration.{module.stem} import *" not in twin.read_text():
            missing.append(f"{twin.relative_to(ROOT)} (imports tests.integration.{module.stem})")
    assert not missing, "modules to run against the cluster topology missing:\n" + "\n".join(missing)

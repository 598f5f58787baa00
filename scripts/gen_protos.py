"""Generate Python code from protos/ into libs/ (build step; output is git-ignored).

Run by `make protos`; every make target that runs code depends on it.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs"


def main() -> int:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = ["protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={OUT}", f"--pyi_out={OUT}", f"--grpc_python_out={OUT}", *files]
    code = protoc.main(args)
    if code != 0:
        print("protoc failed", file=sys.stderr)
        return code
    print(f"generated {len(files)} proto files into {OUT.relative_to(ROOT)}/watercooler/*/v1/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

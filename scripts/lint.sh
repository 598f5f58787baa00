#!/usr/bin/env bash
# `make lint`: buf for the protos (installed from the Go module proxy into the cache),
# ruff for the Python, import-linter for its layering (the contracts in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF_VERSION=v1.75.0
BIN="${WC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/watercooler}/bin"
mkdir -p "$BIN"
if [ ! -x "$BIN/buf-$BUF_VERSION" ]; then
  command -v go >/dev/null || { echo "lint: Go is needed to install buf: apt-get install -y golang" >&2; exit 2; }
  echo "lint: installing buf $BUF_VERSION from the Go module proxy"
  GOBIN="$BIN" go install "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
  mv "$BIN/buf" "$BIN/buf-$BUF_VERSION"
fi
(cd protos && "$BIN/buf-$BUF_VERSION" lint)
echo "lint: protos ok"
.venv/bin/python -m ruff check libs services tools tests scripts benchmarks
echo "lint: python ok"
.venv/bin/lint-imports
echo "lint: layering ok"

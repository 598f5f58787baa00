#!/usr/bin/env bash
# Creates the project virtualenv and installs the pinned dependencies.
# Installs what it can (Debian packages when run as root); otherwise says what to install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need() { echo "watercooler: $1" >&2; exit 2; }

command -v "$PYTHON" >/dev/null || need "Python 3.11+ is required: apt-get install -y python3 python3-venv"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || need "Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1)): apt-get install -y python3.11 python3.11-venv"
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    need "the Python venv module is missing: sudo apt-get install -y python3-venv"
  fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements.lock
"$VENV/bin/python" -m pip install -q --no-deps -e .
echo "watercooler: virtualenv ready in $VENV"

#!/usr/bin/env bash
# What `make run` and `make test` need from the machine and cannot install themselves.
# Stops at once, naming exactly what to install. (Maven, PostgreSQL and Chromium are
# installed by the setup itself with apt-get when it runs as root.)
set -uo pipefail
PYTHON=${PYTHON:-python3}
fail() { echo "watercooler: $1" >&2; exit 2; }

command -v "$PYTHON" >/dev/null 2>&1 || fail "Python 3.11 or newer is required: apt-get install -y python3 python3-venv"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1)): apt-get install -y python3.11 python3.11-venv"

java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
found=""
for java in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} /usr/lib/jvm/*/bin/java "$(command -v java 2>/dev/null)"; do
  [ -x "$java" ] || continue
  major=$(java_major "$java")
  if [ -n "$major" ] && [ "$major" -ge 17 ]; then found=$java; break; fi
done
[ -n "$found" ] || fail "Kafka and Elasticsearch need a JDK 17 or newer, and none was found (JAVA_HOME, /usr/lib/jvm, PATH): apt-get install -y openjdk-17-jdk-headless"
exit 0

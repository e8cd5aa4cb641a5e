#!/usr/bin/env bash
# Set up (Debian packages, venv) and run every check and test: ruff, mypy, then pytest.
# The tests start their own Kamailio, Mosquitto and peer SIP agents on loopback ports.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
venv=${SIPAGENT_VENV:-.venv}
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
# The core strictly (it has no untyped library to excuse it), then everything in agent/.
"$venv/bin/mypy" --strict agent/core
"$venv/bin/mypy"
exec "$venv/bin/pytest" "$@"

#!/usr/bin/env bash
# Set up and run the agent on its embedded default: direct SIP on 127.0.0.1:5060,
# mock GPIO pins (lamp, gate), no MQTT. Extra arguments go to `sipagent run`,
# e.g. scripts/demo.sh --config examples/loopback.toml (adds MQTT on localhost).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${SIPAGENT_VENV:-.venv}
cat <<MSG

sipagent is starting. Talk to it from a second terminal:
  $venv/bin/sipagent send sip:agent@127.0.0.1:5060 "on lamp"
  $venv/bin/sipagent send sip:agent@127.0.0.1:5060 help
Stop it with Ctrl-C.

MSG
exec "$venv/bin/sipagent" run "$@"

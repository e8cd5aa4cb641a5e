#!/usr/bin/env bash
# Prepare this checkout on Debian / Raspberry Pi OS Bookworm: the Debian packages the agent
# (and, with --test, its test lab) needs, then a venv with the project installed in it.
#
#   scripts/setup.sh [--test]      venv at $SIPAGENT_VENV (default: .venv in the checkout)
#
# Safe to run again: it installs only what is missing and reuses the venv while
# pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1
venv=${SIPAGENT_VENV:-.venv}
python=${PYTHON:-python3}

# systemd-python compiles against libsystemd; venv/pip need python3-venv on Debian.
packages=(python3-venv python3-dev gcc pkg-config libsystemd-dev)
if [ "$with_tests" = 1 ]; then
  packages+=(kamailio kamailio-presence-modules mosquitto mosquitto-clients systemd sip-tester)
  packages+=(baresip-core)  # a second, independent presence watcher in the tests
  packages+=(linphone-cli)  # Linphone's linphonec: CPIM and delivery notices, end to end
  packages+=(zbar-tools)  # reads back the QR codes of `sipagent totp new`
  # The install tests boot a Debian bookworm container with systemd as PID 1.
  packages+=(systemd-container debootstrap)
  # The network tests: Kamailio's TLS listener, a CA made with openssl, namespaces with an
  # nftables NAT router, and a STUN server and client.
  packages+=(kamailio-tls-modules openssl iproute2 nftables stun-server stun-client)
  # Providers: a DNS server with SRV/NAPTR records (dnsmasq-base: the binary, no service)
  # and Kamailio's SIP outbound (RFC 5626) module.
  packages+=(dnsmasq-base kamailio-outbound-modules)
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # The broker package starts a system-wide mosquitto on 1883; the tests start their own.
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $python is $("$python" -V 2>&1); sipagent needs Python 3.11 or newer" >&2
  exit 1
fi

# Reuse the venv while nothing it was built from has changed.
stamp="$venv/.sipagent-stamp"
want=$(cat pyproject.toml lab/pyproject.toml <("$python" -V 2>&1) | sha256sum | cut -d' ' -f1)-$with_tests
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building the venv in $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  extras=""
  [ "$with_tests" = 1 ] && extras="[test]"
  arch=$(uname -m)
  if [ "$arch" != x86_64 ]; then
    echo "setup: note: PyPI has no pjsua2 wheel for $arch; install your own pjsua2 binding" \
         "into $venv (scripts/install.sh explains the options)" >&2
  fi
  "$venv/bin/pip" install -q -e ".$extras"
  # The test lab, a package of its own (lab/pyproject.toml), for the tests and benchmarks.
  if [ "$with_tests" = 1 ]; then "$venv/bin/pip" install -q -e ./lab; fi
  echo "$want" > "$stamp"
else
  # The checkout may have moved (CI clones afresh): point the editable installs here.
  "$venv/bin/pip" install -q --no-deps -e . >/dev/null
  if [ "$with_tests" = 1 ]; then "$venv/bin/pip" install -q --no-deps -e ./lab >/dev/null; fi
fi
echo "setup: ready ($("$venv/bin/python" -c 'import pjsua2; ep = pjsua2.Endpoint(); print("pjsua2", ep.libVersion().full)' 2>/dev/null || echo "pjsua2 MISSING"))"

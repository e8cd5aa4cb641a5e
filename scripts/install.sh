#!/usr/bin/env bash
# Install sipagent as a systemd service on Raspberry Pi OS / Debian Bookworm
# (arm64, armhf, x86_64). Run it as root from a checkout of this repository:
#
#   sudo scripts/install.sh [--binding WHEEL] [--config FILE] [--check]
#
#   --binding WHEEL  a pjsua2 wheel built for this machine (also: SIPAGENT_BINDING=WHEEL).
#                    Needed where PyPI has no pjsua2 wheel (everywhere but x86_64), unless
#                    the system Python can already `import pjsua2`.
#   --config FILE    the config to install as /etc/sipagent/agent.toml when there is none yet
#                    (default: examples/agent.toml, which you then edit).
#   --check          only check that this machine can run sipagent; change nothing.
#
# What it does, in order: checks (root, systemd, a pjsua2 binding) before changing anything;
# apt packages; user and group `sipagent` (and group `gpio` if missing); the venv
# /opt/sipagent; /etc/sipagent/agent.toml (mode 0640, never overwritten) and the credential
# files; the unit; `systemctl enable --now`. Safe to run again: it changes only what differs
# from what it would install, never a config or a credential that exists, and restarts a
# running service only when its code or unit changed. scripts/uninstall.sh undoes it.
#
# SIPAGENT_ARCH overrides the detected machine architecture. It is meant for testing (to see
# what happens on a machine without a pjsua2 wheel), not for installing.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
venv=/opt/sipagent
etc=/etc/sipagent
unit_dest=/etc/systemd/system/sipagent.service
binding=${SIPAGENT_BINDING:-}
config_src=""
check_only=0

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binding) binding=${2:?--binding needs a wheel file}; shift 2 ;;
    --config) config_src=${2:?--config needs a file}; shift 2 ;;
    --check) check_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# ---- checks: nothing on the system changes before all of them pass -------------------------

[ "$(id -u)" = 0 ] || die "run me as root (sudo $0)"
[ -d /run/systemd/system ] || die "systemd is not running here: sipagent installs as a systemd service"
[ -f "$src/pyproject.toml" ] && [ -f "$src/systemd/sipagent.service" ] \
  || die "$src is not a sipagent checkout"
if [ -n "$config_src" ]; then
  [ -f "$config_src" ] || die "--config $config_src: no such file"
  config_src=$(cd "$(dirname "$config_src")" && pwd)/$(basename "$config_src")
fi

arch=${SIPAGENT_ARCH:-$(uname -m)}
python=$(command -v python3 || true)

# Import pjsua2 with the system Python (optionally from an unpacked wheel) and print
# "<pjproject version> <deferred responses yes|no>"; fails when it cannot import.
probe_binding() {
  local path=${1:-}
  PYTHONPATH=$path "$python" - <<'EOF'
import pjsua2
print(pjsua2.Endpoint().libVersion().full, "yes" if hasattr(pjsua2, "DeferredResponse") else "no")
EOF
}

binding_kind=""
if [ -n "$binding" ]; then
  [ -f "$binding" ] || die "--binding $binding: no such file"
  case "$binding" in *.whl) ;; *) die "--binding $binding: not a wheel (.whl) file" ;; esac
  [ -n "$python" ] || die "python3 is missing; it is needed to check the pjsua2 wheel $binding"
  binding=$(cd "$(dirname "$binding")" && pwd)/$(basename "$binding")
  unpacked=$(mktemp -d)
  trap 'rm -rf "$unpacked"' EXIT
  "$python" -m zipfile -e "$binding" "$unpacked" >/dev/null 2>&1 \
    || die "--binding $binding: not a readable wheel (zip) file"
  if ! found=$(probe_binding "$unpacked" 2>&1); then
    die "the pjsua2 wheel $binding does not import with $("$python" -V 2>&1) on $arch:
${found##*$'\n'}
Build it for this Python and architecture (pjsip documents how to build its Python binding:
https://docs.pjsip.org/en/latest/pjsua2/building.html). Nothing was changed."
  fi
  binding_kind="wheel $binding"
elif [ "$arch" = x86_64 ]; then
  binding_kind="PyPI wheel pjsua2-python"
elif [ -n "$python" ] && found=$(probe_binding 2>/dev/null); then
  binding_kind="the system Python's pjsua2"
else
  cat >&2 <<EOF
install: no pjsua2 Python binding for $arch: nothing was changed.

  sipagent needs pjsua2, pjsip's Python binding. PyPI's pjsua2-python wheel exists for
  x86_64 Linux only, and sipagent never builds pjproject itself. Provide one of:
    - a binding the system Python can import: check with  python3 -c 'import pjsua2'
    - a wheel built for this machine:  sudo $0 --binding /path/to/pjsua2-...whl
      (or SIPAGENT_BINDING=/path/to/pjsua2-...whl)
  pjsip documents how to build its Python binding (build it on a machine with enough
  memory, or cross-build):  https://docs.pjsip.org/en/latest/pjsua2/building.html
EOF
  exit 2
fi
if [ -n "${found:-}" ]; then
  read -r pj_version deferred <<<"$found"
  say "pjsua2 binding: $binding_kind (pjproject $pj_version, deferred MESSAGE responses: $deferred)"
else
  say "pjsua2 binding: $binding_kind"
fi
if [ "$check_only" = 1 ]; then
  say "check passed: this machine can run sipagent ($arch); nothing was changed"
  exit 0
fi

# ---- apt ------------------------------------------------------------------------------------

# python3-systemd from Debian: no compiler needed for systemd-python on a small Pi.
# procps: /bin/kill, which the unit's ExecReload= runs (a minimal Debian lacks it).
packages=(python3 python3-venv python3-systemd procps)
# Raspberry Pi OS ships lgpio for gpiozero; plain Debian has no such package.
if apt-cache show python3-lgpio >/dev/null 2>&1; then packages+=(python3-lgpio); fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  # A fresh Pi runs apt-daily soon after boot: wait for its lock rather than fail.
  apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
  python=$(command -v python3)
fi

# ---- user and groups ------------------------------------------------------------------------

manifest=$etc/.installed
record() { mkdir -p "$etc"; grep -qxF "$1" "$manifest" 2>/dev/null || echo "$1" >>"$manifest"; }
if ! getent group gpio >/dev/null; then
  groupadd --system gpio
  record "group gpio"
  say "created group gpio (no GPIO chips here are owned by it; on a Pi udev gives them to it)"
fi
if ! getent passwd sipagent >/dev/null; then
  useradd --system --user-group --groups gpio --home-dir /var/lib/sipagent --no-create-home \
    --shell /usr/sbin/nologin --comment "sipagent service" sipagent
  say "created user sipagent (groups: sipagent, gpio)"
elif ! id -nG sipagent | tr ' ' '\n' | grep -qx gpio; then
  usermod -aG gpio sipagent
  say "added user sipagent to group gpio"
fi
record "user sipagent"

# ---- venv -----------------------------------------------------------------------------------

# The system site-packages stay visible: Raspberry Pi OS's GPIO libraries (lgpio), Debian's
# systemd-python, and a pjsua2 binding installed for the system Python.
changed=0
stamp=$venv/.sipagent-source
want=$( (cd "$src" && find agent pyproject.toml -type f -name '*.py' -o -name pyproject.toml \
          | LC_ALL=C sort | xargs sha256sum; echo "$binding_kind"; sha256sum "${binding:-/dev/null}") \
        | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  say "creating the venv $venv"
  "$python" -m venv --system-site-packages "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing sipagent into $venv"
  [ -n "$binding" ] && "$venv/bin/pip" install -q --disable-pip-version-check "$binding"
  # [qr]: segno, for the QR code of `sipagent totp new` (pure Python, no dependencies).
  "$venv/bin/pip" install -q --disable-pip-version-check "$src[qr]"
  echo "$want" >"$stamp"
  changed=1
fi
"$venv/bin/python" -c 'import pjsua2' 2>/dev/null || die "pjsua2 does not import in $venv"
# `sipagent status`, `sipagent totp new` from any shell.
if [ "$(readlink /usr/local/bin/sipagent 2>/dev/null)" != "$venv/bin/sipagent" ]; then
  ln -sfn "$venv/bin/sipagent" /usr/local/bin/sipagent
  say "linked /usr/local/bin/sipagent"
fi
say "$("$venv/bin/sipagent" version)"

# ---- config and credentials -----------------------------------------------------------------

install -d -m 0750 -o root -g sipagent "$etc"
if [ ! -e "$etc/agent.toml" ]; then
  install -m 0640 -o root -g sipagent "${config_src:-$src/examples/agent.toml}" "$etc/agent.toml"
  say "wrote $etc/agent.toml from ${config_src:-examples/agent.toml}"
else
  say "kept the existing $etc/agent.toml"
fi
# The unit loads these with LoadCredential=, which needs the files to exist. They stay
# root-only: the service reads them from $CREDENTIALS_DIRECTORY, never from here.
for secret in sip-password mqtt-password; do
  if [ ! -e "$etc/$secret" ]; then
    install -m 0600 -o root -g root /dev/null "$etc/$secret"
    say "created empty $etc/$secret (for password_file = \"$secret\")"
  fi
done

# One-time code secrets (`sipagent totp new`); the unit loads the directory with
# LoadCredential=, so it must exist, root-only, even while empty.
install -d -m 0700 -o root -g root "$etc/totp"

# ---- unit -----------------------------------------------------------------------------------

if ! cmp -s "$src/systemd/sipagent.service" "$unit_dest"; then
  install -m 0644 "$src/systemd/sipagent.service" "$unit_dest"
  systemctl daemon-reload
  say "installed $unit_dest"
  changed=1
fi

# ---- start ----------------------------------------------------------------------------------

systemctl enable --quiet sipagent
if cmp -s "$src/examples/agent.toml" "$etc/agent.toml"; then
  say "enabled sipagent; not started: $etc/agent.toml is still the example. Edit it, then:"
  say "  sudo $venv/bin/sipagent check-config $etc/agent.toml && sudo systemctl start sipagent"
  exit 0
fi
if ! problems=$("$venv/bin/sipagent" check-config "$etc/agent.toml" 2>&1); then
  echo "$problems" >&2
  say "enabled sipagent; not (re)started: fix $etc/agent.toml, then: sudo systemctl restart sipagent"
  exit 0
fi
# Warnings (e.g. an unusable state directory) do not stop the start: the agent runs degraded.
printf '%s\n' "$problems" | grep '^warning:' >&2 || true
if systemctl is-active --quiet sipagent; then
  if [ "$changed" = 1 ]; then
    say "restarting sipagent (code or unit changed)"
    systemctl restart sipagent
  fi
else
  say "starting sipagent"
  systemctl start sipagent || die "sipagent did not start: journalctl -u sipagent -n 50"
fi
say "done: $(systemctl is-active sipagent); logs: journalctl -u sipagent -f"

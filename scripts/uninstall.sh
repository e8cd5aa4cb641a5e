#!/usr/bin/env bash
# Remove what scripts/install.sh added: the service, its unit and the venv /opt/sipagent.
#
#   sudo scripts/uninstall.sh [--purge]
#
# The config and credentials (/etc/sipagent), the state (/var/lib/sipagent) and the user
# `sipagent` stay, so a later install picks up where this one left off. --purge removes them
# too, and the group `gpio` if the installer created it and nobody else is in it. Debian
# packages the installer added stay: other software may use them.
set -euo pipefail

purge=0
case "${1:-}" in
  --purge) purge=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "uninstall: unknown argument '$1' (see --help)" >&2; exit 1 ;;
esac
say() { echo "uninstall: $*"; }
[ "$(id -u)" = 0 ] || { echo "uninstall: run me as root (sudo $0)" >&2; exit 1; }

unit=/etc/systemd/system/sipagent.service
if [ -d /run/systemd/system ] && systemctl cat sipagent.service >/dev/null 2>&1; then
  systemctl disable --now --quiet sipagent.service || true
  say "stopped and disabled sipagent"
fi
if [ -e "$unit" ]; then
  rm -f "$unit"
  say "removed $unit"
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl reset-failed sipagent.service 2>/dev/null || true
fi
if [ "$(readlink /usr/local/bin/sipagent 2>/dev/null)" = /opt/sipagent/bin/sipagent ]; then
  rm -f /usr/local/bin/sipagent
  say "removed /usr/local/bin/sipagent"
fi
if [ -d /opt/sipagent ]; then
  rm -rf /opt/sipagent
  say "removed /opt/sipagent"
fi

if [ "$purge" = 0 ]; then
  say "kept /etc/sipagent (config, credentials), /var/lib/sipagent and user sipagent (--purge removes them)"
  exit 0
fi
manifest=/etc/sipagent/.installed
created_gpio=0
grep -qxF "group gpio" "$manifest" 2>/dev/null && created_gpio=1
rm -rf /etc/sipagent /var/lib/sipagent /var/lib/private/sipagent
say "removed /etc/sipagent and /var/lib/sipagent"
if getent passwd sipagent >/dev/null; then
  userdel sipagent
  say "removed user sipagent"
fi
if getent group sipagent >/dev/null; then groupdel sipagent; fi
if [ "$created_gpio" = 1 ] && [ -z "$(getent group gpio | cut -d: -f4)" ]; then
  groupdel gpio
  say "removed group gpio (the installer had created it)"
fi

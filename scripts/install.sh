#!/usr/bin/env bash
# Install pulse on a Debian 12 server from this checkout: a virtualenv under /opt/pulse
# (pulse and pulsectl linked into /usr/local/sbin), the systemd unit and the logrotate
# snippet. Run as root. docs/operations.md explains every step and how to undo it.
#
#   scripts/install.sh                 # /opt/pulse, unit and logrotate installed
#   scripts/install.sh --prefix DIR    # another venv location (the unit is adjusted)
#   scripts/install.sh --no-system     # only the venv (no unit, no links, no logrotate)
#   scripts/install.sh --with PLUGIN   # also a contrib plugin, e.g. --with pulse-mailto
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/pulse
system=1
plugins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --no-system) system=0; shift ;;
    --with) plugins+=("contrib/$2"); shift 2 ;;
    *) echo "usage: $0 [--prefix DIR] [--no-system] [--with PLUGIN]..." >&2; exit 2 ;;
  esac
done
for p in "${plugins[@]}"; do
  [ -f "$p/pyproject.toml" ] || { echo "install: no plugin $p" >&2; exit 2; }
done
command -v ip >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || {
  echo "install: needs iproute2 and python3-venv (apt-get install iproute2 python3-venv)" >&2
  exit 1
}
[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/pip" install -q --upgrade pip >/dev/null
"$prefix/bin/pip" install -q . "${plugins[@]}"
echo "install: $("$prefix/bin/pulse" --version) in $prefix"
if [ "$system" = 1 ]; then
  ln -sf "$prefix/bin/pulse" /usr/local/sbin/pulse
  ln -sf "$prefix/bin/pulsectl" /usr/local/sbin/pulsectl
  sed "s#/opt/pulse/bin#$prefix/bin#g" contrib/systemd/pulse.service \
    > /etc/systemd/system/pulse.service
  install -m 0644 contrib/logrotate/pulse /etc/logrotate.d/pulse
  install -d -m 0755 /usr/local/share/man/man8 /usr/local/share/man/man5
  install -m 0644 docs/man/pulse.8 docs/man/pulsectl.8 /usr/local/share/man/man8/
  install -m 0644 docs/man/pulse.toml.5 /usr/local/share/man/man5/
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "install: enable with: systemctl enable --now pulse   (after pulse check -c /etc/ha.d)"
  else
    echo "install: systemd is not running here; the unit is in /etc/systemd/system"
  fi
fi

#!/usr/bin/env bash
# Set up everything pulse needs on a fresh Debian machine: Debian packages (when root
# and missing) and a virtualenv in .venv with pulse installed in editable mode.
# Usage: scripts/bootstrap.sh [--demo|--test]
#   --demo adds pulse-lab (lab/: the namespace lab that `pulse demo` comes from);
#   --test adds pulse-lab, the contrib plugins, test tools and test-only packages.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
want_lab=0
case "${1:-}" in
  --test) want_test=1; want_lab=1 ;;
  --demo) want_lab=1 ;;
  "") ;;
  *) echo "usage: $0 [--demo|--test]" >&2; exit 2 ;;
esac

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v socat >/dev/null || need+=(socat)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "$want_test" = 1 ]; then
  # Debian's Heartbeat 3.0.6 (wire compatibility), real OCF agents, ping for the VIP tests.
  [ -x /usr/libexec/heartbeat/heartbeat ] || [ -x /usr/lib/heartbeat/heartbeat ] || need+=(heartbeat)
  [ -x /usr/lib/ocf/resource.d/heartbeat/Dummy ] || need+=(resource-agents)
  command -v ping >/dev/null || need+=(iputils-ping)
  # contrib plugins: MariaDB for pulse-mysql, cluster-glue's stonith for pulse-stonith,
  # openssl for pulse-mailto's STARTTLS test.
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server mariadb-client)
  [ -x /usr/sbin/stonith ] || need+=(cluster-glue)
  command -v openssl >/dev/null || need+=(openssl)
  # bench/compare's smoke test runs keepalived next to pulse and Heartbeat.
  [ -x /usr/sbin/keepalived ] || need+=(keepalived)
  # pulse-etcd's e2e tests run a real three-member etcd (Debian 12: 3.4.23).
  command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || need+=(etcd-server)
  command -v curl >/dev/null || need+=(curl)  # their health and leader probes
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting services (heartbeat) on this machine.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    apt-get update -qq || true
    apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/pulse-apt.log 2>&1 \
      || { tail -20 /tmp/pulse-apt.log; [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  else
    echo "bootstrap: not root; skipping Debian packages ${need[*]} (network tests will be skipped)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.pulse-installed-$want_test$want_lab"
if [ ! -e "$stamp" ] || [ -n "$(find pyproject.toml lab contrib -name pyproject.toml -newer "$stamp" 2>/dev/null)" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  if [ "$want_test" = 1 ]; then
    .venv/bin/pip install -q -e '.[test]'
  else
    .venv/bin/pip install -q -e .
  fi
  # pulse-lab is a distribution of its own (the daemon ships no lab); it needs pulse-ha,
  # installed just above.
  if [ "$want_test" = 1 ]; then
    .venv/bin/pip install -q -e 'lab[test]'
  elif [ "$want_lab" = 1 ]; then
    .venv/bin/pip install -q -e lab
  fi
  if [ "$want_test" = 1 ]; then
    # The contrib plugins are distributions of their own, installed as a user would.
    for dist in contrib/*/; do
      [ -f "$dist/pyproject.toml" ] && .venv/bin/pip install -q -e "$dist[test]"
    done
  fi
  touch "$stamp"
fi

#!/usr/bin/env bash
# Set up (Debian packages + .venv with pulse and pulse-lab) and run the demo cluster in
# network namespaces. `pulse demo` comes from pulse-lab (lab/), which bootstrap --demo installs.
# Extra arguments go to `pulse demo`, e.g. scripts/demo.sh --nodes 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --demo
exec .venv/bin/pulse demo "$@"

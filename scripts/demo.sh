#!/usr/bin/env bash
# Set up (Debian packages + .venv) and run the demo cluster in network namespaces.
# Extra arguments go to `pulse demo`, e.g. scripts/demo.sh --nodes 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/pulse demo "$@"

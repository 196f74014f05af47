#!/usr/bin/env bash
# Set up (Debian packages + .venv) and run every check CI runs: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k wire -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
. .venv/bin/activate
echo "== ruff"; ruff check src tests contrib plugins bench lab && ruff format --check --quiet src tests contrib plugins bench lab
echo "== mypy"; mypy
echo "== pytest"; pytest "$@"

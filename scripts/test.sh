#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite: unit tests (no root needed), then the
# integration and end-to-end tests against real Open vSwitch, FRR and namespaces (root only).
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ $EUID -ne 0 ]]; then
  echo "test: not root: running unit tests only (integration and end-to-end tests need root)" >&2
  exec python3 -m pytest -q -p no:cacheprovider tests/unit "$@"
fi
exec python3 -m pytest -q -p no:cacheprovider -rs tests "$@"

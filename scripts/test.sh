#!/usr/bin/env bash
# Set up (if needed) and run the whole suite: unit, Ray, multi-node placement and real-engine tiers.
# Extra arguments go to pytest (e.g. -m unit for the fast tier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check fleet tests examples bench
exec .venv/bin/python -m pytest "$@"

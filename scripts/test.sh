#!/usr/bin/env bash
# Set up (if needed), lint, type-check and run the whole suite: unit, Ray, multi-node placement and real-engine tiers.
# Extra arguments go to pytest (e.g. -m unit for the fast tier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check fleet tests examples bench
# The typed contracts between rooms (CoordinatorAPI, AgentAPI, StateStore) and everything else in fleet/:
# mypy strict (pyproject.toml [tool.mypy]); a broken contract fails here, before any test runs.
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up (if needed) and run one real deliberation on the embedded CPU default, printed for a person.
# Extra arguments go to `fleet deliberate` (e.g. --json, --full, --rounds 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleet deliberate "Add rate limiting to the login endpoint" --role DEV --agents 3 --rounds 1 "$@"

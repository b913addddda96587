#!/usr/bin/env bash
# Set up (if needed) and run one real deliberation on the embedded CPU default (Qwen2.5-Coder-0.5B),
# printed for a person: a rate limiter with visible tests (shown to the agents) and hidden ones
# (grading only), run in the sandbox; the architect picks the winner among the top 2.
# Extra arguments go to `fleet deliberate` (e.g. --json, --full, --rounds 2, --model smollm2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleet deliberate --task-file examples/rate_limiter.json --role DEV --agents 3 --rounds 1 "$@"

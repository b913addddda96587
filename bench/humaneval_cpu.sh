#!/usr/bin/env bash
# The table in bench/results/humaneval-cpu.md: HumanEval problems 0-39, all four strategies, 3 DEV agents
# x 1 round, the default coder model on vLLM's CPU build. Resumable: rerun to finish an interrupted run.
# Runs in blocks of 10 problems (a block's councils, then its vote) so an interrupted run still compares
# every strategy on the problems it reached; vote's N is fixed by the first block's equal-budget ratio
# (the table reports the spend of every strategy, so the equality can be checked).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/humaneval-cpu.jsonl}
TABLE=${TABLE:-bench/results/humaneval-cpu.md}
ARGS=(eval humaneval --config bench/humaneval-cpu.yaml --agents 3 --rounds 1 --concurrency 12
      --prompt-layout persona_first --out "$OUT")
.venv/bin/fleet "${ARGS[@]}" --limit 10 --table "$TABLE"
N=$(.venv/bin/python -c "import json,sys; print(next(json.loads(l)['detail']['n'] for l in open(sys.argv[1]) if '\"vote\"' in l))" "$OUT")
for limit in 20 30 40; do
  .venv/bin/fleet "${ARGS[@]}" --limit "$limit" --vote-n "$N" --table "$TABLE"
done

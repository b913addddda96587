#!/usr/bin/env bash
# The table in bench/results/humaneval-cpu.md: HumanEval problems 0-39, the default coder model on vLLM's
# CPU build in the engine's default dtype, three strategies through the same coordinator:
#   single   the council's first agent, one greedy answer;
#   vote     N = 12 samples from the council's agents in turn, chosen by the consensus rule (fleet/selection);
#   council  a council drafting wide: AGENTS DEV agents (each its persona, lens, seed, temperature) draft at
#            once, every candidate runs on the probe inputs and is grouped by behaviour; critique + revision go
#            only to candidates that fail a visible test or disagree with the leading group (ring: each
#            failing candidate's critic is the next agent), the consensus selector picks (architect on a tie).
#            The judge is off: the consensus ranks by tests and agreement, never by the judge's score.
#            A budget of BUDGET completion tokens a problem (DeliberationConfig.budget_tokens): eight drafts and
#            the probe writer reserve 8 x 320 + 160 = 2,720, so repair gets what the drafts leave of it; without
#            one, councils that repaired spent 3,089-4,064 tokens where vote N = 12 spends ~2,700 (2026-12-01).
# Then vote again with N = the council's measured spend / single's (equal spend), in a second file.
# Resumable: rerun to finish an interrupted run (each file keeps what is done).
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${AGENTS:-8}
BUDGET=${BUDGET:-3000}
OUT=${OUT:-bench/results/humaneval-cpu.jsonl}
TABLE=${TABLE:-bench/results/humaneval-cpu.md}
LIMIT=${LIMIT:-40}
ARGS=(eval humaneval --config bench/humaneval-cpu.yaml --agents "$AGENTS" --rounds 1 --topology ring --no-judge
      --budget-tokens "$BUDGET" --concurrency 12 --limit "$LIMIT")
.venv/bin/fleet "${ARGS[@]}" --strategies single,council,vote --vote-n 12 --out "$OUT" --table "$TABLE"
# vote at the council's spend: N = mean council completion tokens / mean single completion tokens.
N=$(.venv/bin/python -c "
import json, sys
from fleet.eval.rows import EvalRow
from fleet.eval.run import budget_vote_n
print(budget_vote_n([EvalRow.model_validate_json(l) for l in open(sys.argv[1]) if l.strip()]))" "$OUT")
.venv/bin/fleet "${ARGS[@]}" --strategies vote --vote-n "$N" --out "${OUT%.jsonl}-vote-spend.jsonl" \
    --table "${TABLE%.md}-vote-spend.md"

"""Grounded judgement on the embedded default model (Qwen2.5-Coder-0.5B on vLLM's CPU build): the
judge separates a known-good from a known-bad proposal, and a deliberation on a task with tests runs
the drafts' code in the sandbox (visible tests as feedback, hidden ones graded) and lets the architect
choose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet import DeliberationConfig
from fleet.config.deliberation import Timeouts
from fleet.config.task import Rubric, Task
from fleet.engine.client import engine_client
from fleet.scoring.checks import grade
from fleet.scoring.judge import Judge

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]

TASK = Task.model_validate(json.loads((Path(__file__).parent.parent / "examples" / "rate_limiter.json").read_text()))
GOOD = """```python
def allow_request(timestamps, now, limit, window_s):
    recent = [t for t in timestamps if now - t < window_s]
    return len(recent) < limit
```
It counts the logins inside the window and allows the request while they are fewer than the limit."""
BAD = """```python
def allow_request(timestamps, now, limit, window_s):
    timestamps.append(now)
    return True
```
It always allows the request."""


async def test_the_judge_scores_a_good_proposal_above_a_bad_one(coder_fleet):
    # Criteria a wrong answer cannot meet by being short (the demo's "simplicity" would reward BAD).
    task = TASK.model_copy(update={"rubric": Rubric(criteria={
        "correctness": "allow_request follows the rule exactly, including the window boundary and limit 0.",
        "safety": "It leaves its input unchanged and never allows a login beyond the limit."})})
    engine = coder_fleet.config.engine
    judge = Judge(engine_client(engine), engine.model_id, max_tokens=256)
    verdicts = {}
    for name, text in (("good", GOOD), ("bad", BAD)):
        checks = await grade(task, "DEV", text, DeliberationConfig().sandbox)
        verdicts[name] = await judge.verdict(task, name, text, checks)
    assert [c.criterion for c in verdicts["good"].criteria] == ["correctness", "safety"]
    assert verdicts["good"].score > verdicts["bad"].score, verdicts


async def test_a_deliberation_with_tests_on_the_default_model(coder_fleet):
    # Drafts, their checks and the architect on the coder model (its judge is the test above; review
    # rounds run on SmolLM2 in test_real_engine): the CPU engine makes a few tokens a second under the
    # suite's load, so every call gets room.
    config = DeliberationConfig(judge=False, timeouts=Timeouts(call_s=900, stage_s=900, deliberation_s=1200))
    record = await coder_fleet.deliberate(TASK, role="DEV", num_agents=2, rounds=0, config=config)
    assert record.status in ("completed", "degraded"), record.failures
    # every proposal's code ran against the visible tests (2) in the sandbox; hidden ones only graded
    for p in record.proposals:
        assert p.feedback is not None
        assert p.feedback.tests_total == (2 if p.feedback.code_found else 0)
    for card in record.scores:
        tests = {c.name: c for c in card.checks}
        assert tests["tests:visible"].tests_total == 2 and tests["tests:hidden"].tests_total == 4
        assert tests["tests:hidden"].sandbox in ("bwrap", "rlimit")
        assert set(card.components) >= {"tests", "structure"} and card.judge is None
    assert "check" in {t.phase for t in record.timings}
    # a code task: the consensus of behaviour chose (one candidate per group, best first), the architect
    # broke a tie, or no code ran and the top total won (issue 20)
    sel = record.selection
    assert sel.winner_candidate in sel.candidates and 1 <= len(sel.candidates) <= 2
    assert record.behaviour is not None and len(record.behaviour.table) == len(record.proposals)
    if sel.method == "architect":
        assert sel.runner_up in sel.candidates and sel.reason and sel.usage.completion_tokens > 0
    elif sel.method == "top-score":
        assert "no candidate's code ran" in sel.reason
    else:
        assert sel.method == "consensus" and sel.winner_candidate == record.behaviour.groups[0].members[0]

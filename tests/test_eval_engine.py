"""`fleet eval humaneval` end to end on the suite's real engine (SmolLM2: fast, the answers are
mostly wrong; this checks the plumbing and the accounting, not the scores): 2 problems x every
strategy (a council of 2), through the coordinator, graded in the sandbox, then resumed."""

from __future__ import annotations

import pytest

from fleet.eval.rows import STRATEGIES, EvalSettings
from fleet.eval.run import EvalConfig, Evaluation, budget_vote_n

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


async def test_two_problems_every_strategy_then_resume(real_fleet, tmp_path):
    # 2 agents: every strategy's path, at half a 3-agent council's calls (CI runs this on 2 cores)
    settings = EvalSettings(model=real_fleet.config.engine.model_id, judge=False, agents=2)
    config = EvalConfig(settings=settings, limit=2, out=tmp_path / "rows.jsonl", concurrency=8)
    rows = await Evaluation(real_fleet, config).run()
    assert [(r.problem, r.strategy) for r in rows] == [(f"HumanEval/{i}", s) for i in range(2) for s in STRATEGIES]
    for r in rows:
        assert r.error is None, (r.problem, r.strategy, r.error)
        assert r.prompt_tokens > 0 and r.completion_tokens > 0 and r.answer, (r.problem, r.strategy)
        assert r.passed or r.grade_output, (r.problem, r.strategy)  # a failure says why
    by = {(r.problem, r.strategy): r for r in rows}
    n = budget_vote_n(rows)
    assert all(by[(f"HumanEval/{i}", "vote")].detail["n"] == n for i in range(2))
    assert all(by[(f"HumanEval/{i}", "vote")].calls == n for i in range(2))
    assert all(by[(f"HumanEval/{i}", "single")].calls == 1 for i in range(2))
    council = by[("HumanEval/0", "council")]
    assert council.detail["winner"].startswith("agent-dev-")
    assert council.calls >= (2 if council.detail["early_stop"] else 2 + 2 + 1)  # drafts, critiques, a revision
    # Resume: nothing left to run, nothing appended.
    again = await Evaluation(real_fleet, config).run()
    assert again == rows and len(config.out.read_text().splitlines()) == 8

"""Checks, judge, ranking and selection."""

from __future__ import annotations

import pytest
from helpers import make_task

from fleet.config.engine import FakeEngineConfig
from fleet.engine.fake import FakeEngine
from fleet.engine.protocol import ChatRequest, ChatResult, EngineClient
from fleet.errors import EngineError
from fleet.record import Check
from fleet.scoring.checks import coverage_check, python_check, role_content_check, run_checks
from fleet.scoring.judge import Judge
from fleet.scoring.ranking import rank, select_top_k

pytestmark = pytest.mark.unit

GOOD_DEV = """My approach: a sliding-window counter per user and IP, validated input, and tests.

```python
def allow(store, key, limit=5):
    return store.incr(key) <= limit
```

Risk: a shared store outage; mitigate by failing closed with an error and an alert. The function is in
the login module; the tests cover the limit and the reset.""" + " detail" * 40


def test_good_dev_proposal_passes_every_check():
    checks = run_checks("DEV", GOOD_DEV)
    assert [c.name for c in checks] == ["coverage", "role_content", "python_parses", "length"]
    assert all(c.passed for c in checks), checks


def test_python_that_does_not_parse_fails_with_the_line():
    check = python_check("DEV", "```python\ndef broken(:\n    pass\n```")
    assert not check.passed and "line 1" in check.detail


def test_dev_without_code_fails_but_other_roles_are_not_judged_on_code():
    assert not python_check("DEV", "no code here").passed
    assert python_check("QA", "no code here") is None


def test_role_content_is_role_specific():
    qa = "We test the edge case of a boundary burst, add a regression test, and assert the 429."
    assert role_content_check("QA", qa).passed
    assert role_content_check("DATA", qa).score < 0.5
    assert role_content_check("CUSTOM", qa) is None


def test_coverage_counts_what_is_missing():
    check = coverage_check("My approach is a token bucket.")
    assert check.score == pytest.approx(1 / 3) and "approach" in check.detail


def test_rank_orders_by_total_and_breaks_ties_by_id():
    cards = rank({
        "b": ([Check(name="x", passed=True, score=0.5)], None),
        "a": ([Check(name="x", passed=True, score=0.5)], None),
        "c": ([Check(name="x", passed=True, score=0.9)], None),
    })
    assert [(c.author_id, c.rank) for c in cards] == [("c", 1), ("a", 2), ("b", 3)]


def test_selection_considers_only_the_top_k():
    cards = rank({a: ([Check(name="x", passed=True, score=s)], None) for a, s in
                  [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.1)]})
    sel = select_top_k(cards, k=2)
    assert sel.candidates == ["a", "b"] and sel.winner_id == "a"
    assert "ahead of b" in sel.reason


async def test_judge_reads_schema_constrained_json():
    engine = FakeEngine(FakeEngineConfig())
    verdict = await Judge(engine, "fake").verdict(make_task(), "agent-dev-001", GOOD_DEV)
    assert 1 <= verdict.score <= 10
    [call] = engine.calls
    assert call.json_schema["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert call.temperature == 0.0


class _Rambler(EngineClient):
    async def chat(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text='{"score": 7, "reason": "unfinished', prompt_tokens=1, completion_tokens=96,
                          finish_reason="length", latency_ms=1.0)


async def test_judge_rejects_truncated_json_instead_of_guessing():
    with pytest.raises(EngineError, match="not valid JSON verdict"):
        await Judge(_Rambler(), "m").verdict(make_task(), "agent-dev-001", "text")


async def test_checks_of_concurrent_scorers_share_one_thread():
    """CPython 3.11's ast.parse is not thread-safe (gh-106905; seen here as "AST constructor recursion
    depth mismatch" in a full run). The invariant that prevents it: one thread runs every check."""
    import asyncio
    import threading
    import time

    from fleet.scoring.scorer import RubricScorer

    seen: set[int] = set()

    def slow_check(role, text):
        seen.add(threading.get_ident())
        time.sleep(0.05)  # long enough that concurrent scorers would overlap on separate threads
        return Check(name="slow", passed=True, score=1.0)

    proposals = {f"agent-dev-{i:03d}": "text" for i in range(3)}
    scorers = [RubricScorer(checks=(slow_check,)) for _ in range(4)]
    await asyncio.gather(*(s.score(make_task(), "DEV", proposals, 30) for s in scorers))
    assert len(seen) == 1 and threading.get_ident() not in seen


def test_judge_weight_sets_the_judges_share():
    from fleet.messages import CallUsage
    from fleet.record import JudgeVerdict
    from fleet.scoring.ranking import total_score

    usage = CallUsage(agent_id="judge", stage="judge", round=0, prompt_tokens=1, completion_tokens=1,
                      latency_ms=1, finish_reason="stop")
    checks, verdict = [Check(name="x", passed=True, score=1.0)], JudgeVerdict(score=1, reason="r", usage=usage)
    assert total_score(checks, verdict, 0.0) == (1.0, 1.0)
    assert total_score(checks, verdict, 1.0) == (1.0, 0.0)
    assert total_score(checks, verdict, 0.3) == (1.0, pytest.approx(0.7))

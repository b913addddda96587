"""Checks (code found, parsed, linted, run against visible and hidden tests), judge, ranking."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers import make_task

from fleet.config.engine import FakeEngineConfig
from fleet.config.scoring import SandboxLimits, ScoreWeights
from fleet.config.task import Task, TestSuite
from fleet.engine.fake import FakeEngine
from fleet.engine.protocol import ChatRequest, ChatResult, EngineClient
from fleet.errors import EngineError
from fleet.schemas.scoring import Check
from fleet.scoring import extract as extract_mod
from fleet.scoring import lint as lint_mod
from fleet.scoring.checks import coverage_check, feedback, grade, role_content_check
from fleet.scoring.extract import extract_code
from fleet.scoring.judge import Judge
from fleet.scoring.lint import lint
from fleet.scoring.ranking import components, rank, select_top_score, total_score

pytestmark = pytest.mark.unit

LIMITS = SandboxLimits(wall_s=20)
VISIBLE = "from solution import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n"
HIDDEN = ("from solution import add\n\n\ndef test_negative():\n    assert add(-1, 1) == 0\n\n\n"
          "def test_large():\n    assert add(10**12, 1) == 10**12 + 1\n")
TASK = Task(description="Write add(a, b) that returns the sum of two integers.",
            tests=[TestSuite(source=VISIBLE, visible=True), TestSuite(source=HIDDEN)])
GOOD = "Approach: use +.\n\n```python\ndef add(a, b):\n    return a + b\n```\nRisk: none."
WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
PASSES_VISIBLE_ONLY = "```python\ndef add(a, b):\n    return 3 if (a, b) == (1, 2) else 0\n```"
CUT_OFF = "Here is my solution:\n```python\ndef add(a, b):\n    return (a +"
LINTY = "```python\nimport os\n\n\ndef add(a, b):\n    return a + b + undefined_name\n```"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_extract_takes_the_defining_blocks_and_flags_a_block_cut_off():
    text = "```python\nimport math\n\ndef f(x):\n    return math.sqrt(x)\n```\nUsage:\n```python\nprint(f(4))\n```"
    got = extract_code(text)
    assert got.code.startswith("import math") and "print" not in got.code and got.blocks == 2
    assert not got.truncated and got.parse_error is None
    cut = extract_code(CUT_OFF)
    assert cut.truncated and cut.parse_error is not None and cut.code.startswith("def add")
    assert extract_code("No code, only words.").code is None


async def test_known_good_code_passes_every_check_in_the_sandbox():
    checks = by_name(await grade(TASK, "DEV", GOOD, LIMITS))
    assert checks["parses"].passed and checks["lint"].passed
    assert (checks["tests:visible"].tests_passed, checks["tests:visible"].tests_total) == (1, 1)
    assert (checks["tests:hidden"].tests_passed, checks["tests:hidden"].tests_total) == (2, 2)
    assert checks["tests:hidden"].sandbox in ("bwrap", "rlimit")


async def test_known_wrong_code_fails_the_tests_with_the_first_failure():
    checks = by_name(await grade(TASK, "DEV", WRONG, LIMITS))
    assert checks["parses"].passed
    assert checks["tests:visible"].status == "failed" and checks["tests:visible"].tests_passed == 0
    assert "assert -1 == 3" in checks["tests:visible"].output
    assert checks["tests:hidden"].tests_passed == 0 and checks["tests:hidden"].tests_total == 2


async def test_a_cut_off_block_is_a_finding_not_missing_code():
    checks = by_name(await grade(TASK, "DEV", CUT_OFF, LIMITS))
    assert checks["parses"].status == "failed" and "cut off by max_tokens" in checks["parses"].detail
    assert checks["tests:hidden"].tests_total == 2 and checks["tests:hidden"].tests_passed == 0
    fb = await feedback(TASK, "DEV", CUT_OFF, LIMITS)
    assert fb.code_found and fb.truncated and "cut off" in fb.render()


async def test_no_code_fails_where_code_is_expected_and_is_skipped_elsewhere():
    dev = by_name(await grade(TASK, "DEV", "I would add the numbers.", LIMITS))
    assert dev["parses"].status == "failed" and dev["parses"].detail == "no code block"
    assert dev["tests:visible"].tests_passed == 0 and dev["tests:visible"].tests_total == 1
    qa = by_name(await grade(make_task(), "QA", "We test the edge cases.", LIMITS))
    assert qa["parses"].status == "skipped" and qa["tests:hidden"].status == "skipped"


async def test_lint_counts_ruff_findings():
    findings = await lint("import os\n\n\ndef add(a, b):\n    return a + b + undefined_name\n")
    assert {f.split()[0] for f in findings} == {"F401", "F821"}
    checks = by_name(await grade(TASK, "DEV", LINTY, LIMITS))
    assert checks["lint"].status == "failed" and checks["lint"].score == pytest.approx(0.8)
    assert await lint("def add(a, b):\n    return a + b\n") == []


async def test_lint_runs_ruff_once_per_code_and_says_when_ruff_fails(monkeypatch, tmp_path):
    runs = []
    real_run = lint_mod.subprocess.run
    monkeypatch.setattr(lint_mod.subprocess, "run", lambda argv, **kw: runs.append(argv) or real_run(argv, **kw))
    unique = f"def add(a, b):\n    return a + b  # {tmp_path}\n"
    first = await lint(unique)
    assert await lint(unique) == first and len(runs) == 1  # the feedback's lint, then the grade's: one run

    broken = tmp_path / "ruff"
    broken.write_text("#!/bin/sh\necho 'ruff: broken install' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(lint_mod, "_ruff", lambda: str(broken))
    with pytest.raises(RuntimeError, match=r"ruff failed \(3\): ruff: broken install"):
        await lint(unique + "\n")  # new code: not cached
    with pytest.raises(RuntimeError):
        await lint(unique + "\n")  # a failure is not cached


async def test_feedback_shows_visible_results_and_never_hidden_ones():
    fb = await feedback(TASK, "DEV", PASSES_VISIBLE_ONLY, LIMITS)
    assert (fb.tests_passed, fb.tests_total) == (1, 1) and fb.all_passed  # hidden ones fail, unseen
    fb = await feedback(TASK, "DEV", WRONG, LIMITS)
    assert (fb.tests_passed, fb.tests_total) == (0, 1) and "assert -1 == 3" in fb.render()
    assert "test_negative" not in fb.render() and "10**12" not in fb.render()


def test_agents_see_visible_tests_never_hidden_ones():
    text = TASK.render()
    assert "def test_small" in text
    assert "test_negative" not in text and "10**12" not in text


def test_coverage_and_role_content_stay_as_the_structure_check():
    assert coverage_check("My approach is a token bucket.").score == pytest.approx(1 / 3)
    qa = "We test the edge case of a boundary burst, add a regression test, and assert the 429."
    assert role_content_check("QA", qa).passed and role_content_check("CUSTOM", qa) is None


async def test_tests_outweigh_lint_and_the_judge_in_the_ranking():
    good, wrong = await grade(TASK, "DEV", GOOD, LIMITS), await grade(TASK, "DEV", WRONG, LIMITS)
    cards = rank({"agent-dev-002": (good, None), "agent-dev-001": (wrong, None)}, ScoreWeights())
    assert [c.author_id for c in cards] == ["agent-dev-002", "agent-dev-001"]
    assert cards[0].components["tests"] == 1.0 and cards[1].components["tests"] == 0.0
    # absent components renormalise the rest
    assert total_score({"tests": 1.0}, ScoreWeights()) == 1.0
    assert components([Check(name="structure", status="passed", score=0.5)], None) == {"structure": 0.5}


def test_top_score_selection_considers_only_the_top_k():
    cards = rank({a: ([Check(name="structure", status="passed", score=s)], None) for a, s in
                  [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.1)]}, ScoreWeights())
    sel = select_top_score(cards, k=2)
    assert sel.candidates == ["a", "b"] and sel.winner_id == "a" and sel.runner_up == "b"
    assert "ahead of b" in sel.reason and sel.method == "top-score"


async def test_judge_scores_each_criterion_under_a_schema():
    engine = FakeEngine(FakeEngineConfig())
    task = make_task()
    verdict = await Judge(engine, "fake").verdict(task, "agent-dev-001", GOOD, [])
    assert [c.criterion for c in verdict.criteria] == list(task.rubric.criteria)
    assert all(1 <= c.score <= 10 and c.reason for c in verdict.criteria)
    [call] = engine.calls
    entry = call.json_schema["properties"]["limits"]
    assert entry["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert call.json_schema["required"] == ["limits"] and call.temperature == 0.0


async def test_the_judge_reads_the_checks_but_never_a_test_source():
    engine = FakeEngine(FakeEngineConfig())
    checks = await grade(TASK, "DEV", WRONG, LIMITS)
    await Judge(engine, "fake").verdict(TASK, "agent-dev-001", WRONG, checks)
    prompt = "\n".join(m.content for m in engine.calls[0].messages)
    assert "tests:hidden: 0 of 2 tests passed (FAILED)" in prompt and "assert -1 == 3" in prompt  # visible
    assert "test_negative" not in prompt and "10**12" not in prompt


class _Rambler(EngineClient):
    async def chat(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text='{"limits": {"reason": "unfinished', prompt_tokens=1, completion_tokens=96,
                          finish_reason="length", latency_ms=1.0)


async def test_judge_rejects_truncated_json_instead_of_guessing():
    with pytest.raises(EngineError, match="not a valid verdict"):
        await Judge(_Rambler(), "m").verdict(make_task(), "agent-dev-001", "text", [])


async def test_all_parsing_of_model_code_runs_on_one_thread(monkeypatch):
    """CPython 3.11's ast.parse is not thread-safe (gh-106905; seen as "AST constructor recursion
    depth mismatch" in a full run). The invariant that prevents it: one thread parses model code."""
    import ast

    from fleet.scoring.scorer import RubricScorer

    seen: set[int] = set()
    real_parse = ast.parse

    def spy(*args, **kwargs):
        seen.add(threading.get_ident())
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(extract_mod.ast, "parse", spy)
    proposals = {f"agent-dev-{i:03d}": GOOD for i in range(3)}
    await asyncio.gather(*(RubricScorer(limits=LIMITS).score(TASK, "DEV", proposals, 30) for _ in range(3)))
    assert len(seen) == 1 and threading.get_ident() not in seen

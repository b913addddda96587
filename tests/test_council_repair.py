"""Repair aimed at failures, early stop on consensus and the token budget: over in-process agents and
the fake engine with given code per agent."""

from __future__ import annotations

import pytest
from helpers import local_deliberation
from test_council_selection import NEEDS_RE, RIGHT, RIGHT_TOO, add_task, code, engine_with

from fleet.agents.agent import PROBE_MAX_TOKENS
from fleet.coordinator.budget import call_cap
from fleet.errors import DeliberationFailedError

pytestmark = pytest.mark.unit

TIMES = code("def add(a, b):\n    return a * b")  # add(1, 2) == 2: fails the first visible example


def stages(engine) -> list[tuple[str, str]]:
    return [(c.tags["stage"], c.tags["agent_id"]) for c in engine.calls]


async def test_only_a_failing_candidate_is_critiqued_and_its_critique_starts_with_the_counterexample():
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [NEEDS_RE, RIGHT_TOO]})
    d, _ = local_deliberation(n=2, rounds=1, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    # 001 passes (no critique of it, no revision); 002 crashes on the visible inputs: critiqued, revises
    assert [(c.critic_id, c.author_id) for c in record.critiques] == [("agent-dev-001", "agent-dev-002")]
    assert [p.candidate_id for p in record.proposals] == ["agent-dev-001@r0", "agent-dev-002@r0", "agent-dev-002@r1"]
    assert any("['agent-dev-001'] received no critique and keep their proposal" in n for n in record.notes)
    [critique] = [c for c in engine.calls if c.tags["stage"] == "critique"]
    prompt = critique.messages[-1].content
    example = ("agent-dev-002's code fails on this input:\nInput: add(1, 2)\nExpected: 3\n"
               "This code raised: NameError: name 're' is not defined")
    assert example in prompt
    assert prompt.index(example) < prompt.index("A colleague (agent-dev-002) proposed")  # before any prose
    # the author reads it too, and the lint's undefined name
    [revise] = [c for c in engine.calls if c.tags["stage"] == "revise"]
    assert "Counterexample:\nInput: add(1, 2)" in revise.messages[-1].content
    assert "F821" in revise.messages[-1].content
    assert record.proposals[2].feedback.all_passed and not record.proposals[2].feedback.failing


async def test_a_wrong_answer_is_a_counterexample_with_expected_and_returned_values():
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [TIMES]})
    d, _ = local_deliberation(n=2, rounds=1, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    fb = record.proposals[1].feedback
    assert fb.counterexample == "Input: add(1, 2)\nExpected: 3\nThis code returned: 2"
    assert fb.outputs == ["2", "4"] and fb.tests_passed == 1


async def test_early_stop_once_the_leading_group_passes_every_visible_test_and_holds_a_majority():
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [RIGHT_TOO], "agent-dev-003": [TIMES]})
    d, _ = local_deliberation(n=3, rounds=2, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    assert {s for s, _ in stages(engine)} == {"generate", "probe"}  # no review: 2 of 3 agree and pass
    assert any(n.startswith("early stop: on consensus, 2 of 3 live proposals agree and pass all visible tests "
                            "after the drafts; rounds 1..2 skipped") for n in record.notes)
    assert record.selection.method == "consensus" and record.selection.winner_id in ("agent-dev-001", "agent-dev-002")
    # no majority (two different right-on-the-examples answers and a wrong one): review goes on
    other = code("def add(a, b):\n    return a + b if a > -100 else 0")
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [other], "agent-dev-003": [TIMES]},
                         probe_answer="add(-200, 1)")
    d, _ = local_deliberation(n=3, rounds=1, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    assert not any(n.startswith("early stop") for n in record.notes)
    assert {a for s, a in stages(engine) if s == "revise"} == {"agent-dev-003"}  # repair aimed at the failure


@pytest.mark.parametrize("extra", [300, 900])
async def test_the_token_budget_is_never_exceeded_and_the_record_says_where_tokens_went(extra):
    answers = {"agent-dev-001": [TIMES], "agent-dev-002": [TIMES], "agent-dev-003": [TIMES]}
    full, _ = local_deliberation(n=3, rounds=2, task=add_task(), engine=engine_with(answers))
    unbounded = await full.run()
    # the drafts and the probe writer fit (their max_tokens are held while they run); review does not, whole
    budget = 3 * call_cap(full.request, full.council, "agent-dev-001", "generate") + PROBE_MAX_TOKENS + extra
    d, engine = local_deliberation(n=3, rounds=2, task=add_task(), engine=engine_with(answers), budget_tokens=budget)
    record = await d.run()
    spent = sum(u.completion_tokens for u in record.usage)
    assert spent <= budget and len(engine.calls) < sum(1 for _ in unbounded.usage)
    assert sum(record.stage_tokens.values()) == spent == record.tokens.completion_tokens
    assert record.stage_tokens["generate"] > 0 and set(record.stage_tokens) <= set(unbounded.stage_tokens)
    assert any(n.startswith("budget:") for n in record.notes)  # what was not started, and why
    assert record.selection is not None  # a budget cuts review short; the deliberation still chooses


async def test_a_budget_that_cannot_cover_the_drafts_loses_the_quorum_with_the_reason():
    d, _ = local_deliberation(n=3, rounds=1, judge=False, task=add_task(), engine=engine_with({}))
    cap = call_cap(d.request, d.council, "agent-dev-001", "generate")
    d, _ = local_deliberation(n=3, rounds=1, judge=False, task=add_task(), engine=engine_with({}),
                              budget_tokens=cap + 1)
    with pytest.raises(DeliberationFailedError, match="BudgetExhaustedError"):
        await d.run()


async def test_a_passing_candidate_that_disagrees_with_the_leading_group_is_repaired_with_that_input():
    other = code("def add(a, b):\n    return a + b if a > -100 else 0")  # passes the examples, differs at -200
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [RIGHT_TOO], "agent-dev-003": [other],
                          "agent-dev-004": [TIMES]}, probe_answer="add(-200, 1)")
    d, _ = local_deliberation(n=4, rounds=1, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    assert not any(n.startswith("early stop") for n in record.notes)  # 2 of 4 agree: no majority
    assert {c.author_id for c in record.critiques} == {"agent-dev-003", "agent-dev-004"}
    assert {a for s, a in stages(engine) if s == "revise"} == {"agent-dev-003", "agent-dev-004"}
    example = ("agent-dev-003's code answers this input unlike most candidates:\n"
               "Input: add(-200, 1)\nMost candidates return: -199\nThis code returned: 0")
    prompts = [c.messages[-1].content for c in engine.calls if c.tags["stage"] == "critique"]
    of_003 = [p for p in prompts if example in p]
    assert len(of_003) == 3  # its three critics, each shown where it differs before any prose
    assert all(p.index(example) < p.index("A colleague (agent-dev-003) proposed") for p in of_003)

"""Every candidate kept, behaviour on probe inputs, and the selectors: over in-process agents and the
fake engine, with given code per agent (`FakeEngineConfig.answers`)."""

from __future__ import annotations

import pytest
from helpers import local_deliberation

from fleet.config.engine import FakeEngineConfig
from fleet.config.task import Task, TestSuite
from fleet.engine.fake import FakeEngine
from fleet.schemas.record import DeliberationRecord, Proposal
from fleet.schemas.scoring import Check, ScoreCard
from fleet.schemas.usage import CallUsage
from fleet.scoring.extract import extract_code
from fleet.selection.base import Pool, demote_regressions
from fleet.selection.consensus import Consensus
from fleet.selection.models import Behaviour, BehaviourGroup
from fleet.selection.probes import parse_written, visible_inputs
from fleet.transcript import render

pytestmark = pytest.mark.unit

VISIBLE = ">>> add(1, 2)\n3\n>>> add(2, 2)\n4\n"
HIDDEN = ("from solution import add\n\n\ndef test_a():\n    assert add(5, 5) == 10\n\n\n"
          "def test_b():\n    assert add(6, 1) == 7\n\n\ndef test_c():\n    assert add(7, 0) == 7\n")


def add_task(**kw) -> Task:
    return Task(description="Write add(a, b): the sum of two integers.", k=2,
                tests=[TestSuite(kind="doctest", source=VISIBLE, visible=True),
                       TestSuite(kind="pytest", source=HIDDEN)], **kw)


def code(body: str) -> str:
    return f"Here:\n```python\n{body}\n```\nDone."


RIGHT = code("def add(a, b):\n    return a + b")
RIGHT_TOO = code("def add(x, y):\n    total = y + x\n    return total")
NEEDS_RE = code("def add(a, b):\n    return int(re.sub('x', '', str(a))) + b")  # no `import re`: NameError


def engine_with(answers: dict[str, list[str]], probe_answer: str = "") -> FakeEngine:
    return FakeEngine(FakeEngineConfig(answers=answers, probe_answer=probe_answer))


async def test_candidates_are_grouped_by_their_outputs_and_a_crashing_one_stands_apart():
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [RIGHT_TOO], "agent-dev-003": [NEEDS_RE]},
                         probe_answer="add(0, 0)\nadd(-1, 1) == 0\nprint(add(3, 4))\nadd(-5, 2)\nsub(1, 1)")
    d, _ = local_deliberation(n=3, rounds=0, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    b = record.behaviour
    # the visible tests' calls, then the agent's calls (inputs only: `== 0` and `print` dropped; `sub` is
    # defined by no candidate)
    assert [(p.expression, p.source) for p in b.probes] == [
        ("add(1, 2)", "visible"), ("add(2, 2)", "visible"), ("add(0, 0)", "agent"), ("add(-1, 1)", "agent"),
        ("add(3, 4)", "agent"), ("add(-5, 2)", "agent")]
    table = {r.candidate_id: r.outputs for r in b.table}
    assert table["agent-dev-001@r0"] == table["agent-dev-002@r0"] == ["3", "4", "0", "0", "7", "-3"]
    assert table["agent-dev-003@r0"] == ["!NameError"] * 6
    crash = next(r for r in b.table if r.candidate_id == "agent-dev-003@r0")
    assert "name 're' is not defined" in crash.errors[0]
    assert [sorted(g.members) for g in b.groups] == [["agent-dev-001@r0", "agent-dev-002@r0"], ["agent-dev-003@r0"]]
    assert [(g.visible_passed, g.agreement) for g in b.groups] == [(2, 2), (0, 1)]
    # the consensus chooses the leading group's representative (its better card); no architect (no tie)
    rep = b.groups[0].members[0]
    assert rep == min(b.groups[0].members, key=lambda c: next(s.rank for s in record.scores if s.candidate_id == c))
    sel = record.selection
    assert (sel.method, sel.winner_candidate, sel.winner_id) == ("consensus", rep, rep.split("@")[0])
    assert "2 of 3 lineages agree" in sel.reason
    assert "select" not in {c.tags["stage"] for c in engine.calls}
    probe_calls = [c for c in engine.calls if c.tags["stage"] == "probe"]
    assert len(probe_calls) == 1 and "no expected outputs" in probe_calls[0].messages[-1].content
    assert record.oracle_pool is True and any(u.stage == "probe" for u in record.usage)
    # the crash also reached the lint: F821 for `re`
    assert any("F821" in f for f in record.proposals[2].feedback.lint)
    # the transcript shows the probe table, the groups and why the winner won
    text = render(record)
    assert "p6 (agent): add(-5, 2)" in text and "group 2: 0/2 visible tests, 1 of 3 lineages agree" in text
    assert f"WINNER: {rep}  chosen by the consensus of behaviour" in text


async def test_a_near_tie_goes_to_the_architect_with_the_inputs_where_the_groups_differ():
    only_positive = code("def add(a, b):\n    return a + b if a >= 0 else 0")
    engine = engine_with({"agent-dev-001": [RIGHT], "agent-dev-002": [only_positive]}, probe_answer="add(-2, 1)")
    d, _ = local_deliberation(n=2, rounds=0, judge=False, task=add_task(), engine=engine)
    record = await d.run()
    assert [(g.visible_passed, g.agreement) for g in record.behaviour.groups] == [(2, 1), (2, 1)]
    sel = record.selection
    assert sel.method == "architect" and "near-tie" in sel.reason
    assert sorted(sel.candidates) == ["agent-dev-001@r0", "agent-dev-002@r0"]
    [ask] = [c for c in engine.calls if c.tags["stage"] == "select"]
    prompt = ask.messages[-1].content
    assert "add(-2, 1) -> -1" in prompt and "add(-2, 1) -> 0" in prompt
    assert "add(1, 2) ->" not in prompt  # where they agree is not shown


async def test_a_revision_that_passes_fewer_visible_tests_is_kept_but_never_ranks_above_its_parent():
    # visible 2/2, hidden 0/3, raises on the agent's input (so it is repaired)
    parent = code("def add(a, b):\n    return a + b if 0 <= a < 5 else int('x')")
    regress = code("def add(a, b):\n    return a + b if a != 2 else 0")  # visible 1/2, hidden 3/3: a higher total
    wrong = code("def add(a, b):\n    return a - b")  # fails visibly: round 1 happens
    engine = engine_with({"agent-dev-001": [parent, regress], "agent-dev-002": [wrong]}, probe_answer="add(-5, 2)")
    d, _ = local_deliberation(n=2, rounds=1, judge=False, task=add_task(), engine=engine, selector="top_score")
    record = await d.run()
    ids = [p.candidate_id for p in record.proposals]
    assert ids == ["agent-dev-001@r0", "agent-dev-002@r0", "agent-dev-001@r1", "agent-dev-002@r1"]
    assert [p.parent_id for p in record.proposals] == [None, None, "agent-dev-001@r0", "agent-dev-002@r0"]
    order = [s.candidate_id for s in record.scores]
    by = {s.candidate_id: s for s in record.scores}
    assert by["agent-dev-001@r1"].total > by["agent-dev-001@r0"].total  # by total alone it would lead
    assert order.index("agent-dev-001@r0") < order.index("agent-dev-001@r1")
    assert record.selection.winner_candidate == "agent-dev-001@r0"
    assert any("agent-dev-001@r1 passes fewer visible tests than its parent" in n for n in record.notes)


def _card(cid: str, total: float, visible_passed: int, rank: int) -> ScoreCard:
    check = Check(name="tests:visible", status="passed" if visible_passed == 2 else "failed",
                  score=visible_passed / 2, tests_passed=visible_passed, tests_total=2)
    return ScoreCard(author_id=cid.split("@")[0], candidate_id=cid, checks=[check], total=total, rank=rank)


def _proposal(cid: str, parent: str | None = None) -> Proposal:
    author, r = cid.split("@r")
    usage = CallUsage(agent_id=author, stage="generate", round=int(r), prompt_tokens=0, completion_tokens=0,
                      latency_ms=0, finish_reason="stop")
    return Proposal(author_id=author, role="DEV", round=int(r), content="", usage=usage, parent_id=parent)


def test_demotion_follows_a_chain_of_regressions():
    props = {p.candidate_id: p for p in [_proposal("a@r0"), _proposal("a@r1", "a@r0"), _proposal("a@r2", "a@r1"),
                                         _proposal("b@r0")]}
    cards = [_card("a@r2", 0.9, 0, 1), _card("a@r1", 0.8, 1, 2), _card("b@r0", 0.7, 2, 3), _card("a@r0", 0.5, 2, 4)]
    ranked, notes = demote_regressions(cards, props)
    assert [c.candidate_id for c in ranked] == ["b@r0", "a@r0", "a@r1", "a@r2"]
    assert [c.rank for c in ranked] == [1, 2, 3, 4] and len(notes) == 2


async def test_consensus_counts_a_revision_and_its_parent_once_and_falls_back_without_behaviour():
    props = {p.candidate_id: p for p in [_proposal("a@r0"), _proposal("a@r1", "a@r0"), _proposal("b@r0"),
                                         _proposal("c@r0")]}
    cards = [_card("b@r0", 0.9, 2, 1), _card("a@r0", 0.8, 2, 2), _card("a@r1", 0.8, 2, 3), _card("c@r0", 0.1, 2, 4)]
    groups = [BehaviourGroup(members=["a@r0", "a@r1"], outputs=["1"], visible_passed=2, visible_total=2,
                             agreement=1),
              BehaviourGroup(members=["b@r0", "c@r0"], outputs=["2"], visible_passed=2, visible_total=2,
                             agreement=2)]
    from fleet.selection.consensus import rank_groups

    ordered = rank_groups(groups, {c.candidate_id: c.rank for c in cards})
    task = Task(description="d", language="python", k=2)
    b = Behaviour(groups=ordered, lineages=3)
    sel = await Consensus().select(Pool(task, props, cards, b))
    assert (sel.method, sel.winner_candidate) == ("consensus", "b@r0")  # two lineages beat one lineage twice
    assert sel.candidates == ["b@r0", "a@r0"] and sel.runner_up == "a@r0"
    fell = await Consensus().select(Pool(task, props, cards, None))
    assert (fell.method, fell.winner_candidate) == ("top-score", "b@r0") and "no candidate's code ran" in fell.reason


ROLLING = ">>> rolling_max([1, 3, 2])\n[1, 3, 3]\n"
INDEXES = code("def rolling_max(xs):\n    out = [xs[0]]\n    for x in xs[1:]:\n        out.append(max(out[-1], x))\n"
               "    return out")  # IndexError on []
INDEXES_TOO = code("def rolling_max(xs):\n    m, res = xs[0], []\n    for x in xs:\n        m = max(m, x)\n"
                   "        res.append(m)\n    return res")
EMPTY_OK = code("def rolling_max(xs):\n    res = []\n    for x in xs:\n        res.append(x if not res else "
                "max(res[-1], x))\n    return res")


async def test_a_group_that_crashes_where_another_returns_a_value_ranks_below_it_whatever_its_agreement():
    """HumanEval/9 (2026-12-01): two lineages agreed on code that raises IndexError on [], and won."""
    engine = engine_with({"agent-dev-001": [INDEXES], "agent-dev-002": [INDEXES_TOO], "agent-dev-003": [EMPTY_OK]},
                         probe_answer="rolling_max([])\nrolling_max([5])")
    task = Task(description="Write rolling_max(xs): the running maximum of a list of integers.", k=2,
                tests=[TestSuite(kind="doctest", source=ROLLING, visible=True)])
    record = await local_deliberation(n=3, rounds=0, judge=False, task=task, engine=engine)[0].run()
    b = record.behaviour
    assert [(sorted(g.members), g.visible_passed, g.agreement, g.crashes) for g in b.groups] == [
        (["agent-dev-003@r0"], 1, 1, 0), (["agent-dev-001@r0", "agent-dev-002@r0"], 1, 2, 1)]
    sel = record.selection
    assert (sel.method, sel.winner_candidate) == ("consensus", "agent-dev-003@r0")
    assert "but it crashes on 1 probe input(s) where another candidate returns a value" in sel.reason


def test_an_error_the_code_raises_itself_is_an_answer_and_an_input_every_candidate_crashes_on_tells_nothing():
    from fleet.selection.consensus import make_groups
    from fleet.selection.models import ProbeRow
    from fleet.selection.probes import raised_names

    rows = [ProbeRow(candidate_id="a", outputs=["[1]", "!ValueError", "!TypeError"]),
            ProbeRow(candidate_id="b", outputs=["[1]", "!ValueError", "!TypeError"]),
            ProbeRow(candidate_id="c", outputs=["[1]", "[]", "!TypeError"])]
    vis = dict.fromkeys("abc", (1, 1))
    rank = {"a": 0, "b": 1, "c": 2}
    raises = {"a": raised_names("def f(x):\n    if not x:\n        raise ValueError('empty')"), "b": set()}
    groups = make_groups(rows, vis, {c: c for c in "abc"}, rank, raises)
    # a raises ValueError on purpose: an answer, so agreement decides; the TypeError every candidate raises counts never
    assert [(g.members, g.crashes) for g in groups] == [(["a", "b"], 0), (["c"], 0)]
    groups = make_groups(rows, vis, {c: c for c in "abc"}, rank)  # nobody's code known: every error is a crash
    assert [(g.members, g.crashes) for g in groups] == [(["c"], 0), (["a", "b"], 1)]


def test_visible_inputs_come_from_doctests_checks_and_pytest_modules_with_literal_arguments():
    task = Task(description="d", tests=[
        TestSuite(kind="check", entry_point="f", visible=True,
                  source="def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate(x) == 1\n"),
        TestSuite(kind="pytest", visible=True,
                  source="import solution\nfrom solution import g as h\n\n\ndef test_x():\n"
                         "    assert solution.f('a', k=2) == 1\n    assert h(None) is None\n"
                         "    assert len([1]) == 1\n"),
        TestSuite(kind="pytest", source="from solution import f\n\n\ndef test_hidden():\n    assert f(99) == 0\n")])
    assert visible_inputs(task) == ["f([1, 2])", "f('a', k=2)", "g(None)"]  # hidden tests never
    assert parse_written(">>> f(1)\nf(1)\nf(y)\n") == ["f(1)"]


def test_a_cut_off_answer_keeps_its_longest_prefix_that_parses_flagged_truncated():
    cut = extract_code("```python\nimport re\n\n\ndef f(s):\n    return re.sub('a', '', s)\n\n\nassert f('ab') ==")
    assert cut.code == "import re\n\n\ndef f(s):\n    return re.sub('a', '', s)"
    assert cut.truncated and cut.prefix_kept and cut.parse_error is None
    assert extract_code("```python\ndef f(s):\n    return (").parse_error is not None  # nothing whole to keep


def test_old_records_without_lineage_or_candidate_ids_still_load():
    from datetime import UTC, datetime

    from fleet.config.council import CouncilSpec
    from fleet.config.deliberation import DeliberationConfig

    u = CallUsage(agent_id="agent-dev-001", stage="generate", round=0, prompt_tokens=1, completion_tokens=1,
                  latency_ms=0, finish_reason="stop")
    record = DeliberationRecord(deliberation_id="d", status="completed", task=Task(description="d"),
                                council=CouncilSpec.default("DEV", 2), config=DeliberationConfig(), quorum=2,
                                started_at=datetime.now(UTC),
                                proposals=[Proposal(author_id="agent-dev-001", role="DEV", round=0, content="x",
                                                    usage=u),
                                           Proposal(author_id="agent-dev-001", role="DEV", round=1, content="y",
                                                    usage=u.model_copy(update={"round": 1}))])
    old = record.model_dump(mode="json", exclude={"behaviour", "oracle_pool", "stage_tokens"})
    for p in old["proposals"]:
        del p["parent_id"]
    old["config"] = {k: v for k, v in old["config"].items() if k not in ("selector", "probe_inputs")}
    old["selection"] = {"winner_id": "agent-dev-001", "candidates": ["agent-dev-001"], "reason": "r",
                        "method": "top-score"}
    loaded = DeliberationRecord.model_validate(old)
    assert loaded.winning_proposal().content == "y"  # an old selection names the author: its last proposal


async def test_code_that_does_not_import_is_a_crash_fed_back_and_a_group_of_its_own():
    from fleet.config.scoring import SandboxLimits
    from fleet.scoring.checks import feedback
    from fleet.selection.probes import probe_row

    broken = code("from collections import OrderedDictionary\n\n\ndef add(a, b):\n    return a + b")
    fb = await feedback(add_task(), "DEV", broken, SandboxLimits())
    assert "ImportError" in fb.crash and fb.failing and fb.outputs is None
    assert "Importing the code fails: ImportError" in fb.render()
    row = await probe_row("x@r0", broken, ["add(1, 2)"], SandboxLimits())
    assert row.outputs is None and "ImportError" in row.error

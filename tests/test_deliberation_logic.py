"""The deliberation's logic over in-process agents and the deterministic fake engine."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from helpers import RUBRIC_TEXT, local_deliberation

from fleet.config.engine import FakeEngineConfig
from fleet.config.task import Task
from fleet.engine.fake import FakeEngine
from fleet.errors import DeliberationFailedError

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.unit


def stage_counts(engine: FakeEngine) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in engine.calls:
        counts[call.tags["stage"]] = counts.get(call.tags["stage"], 0) + 1
    return counts


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("rounds", [0, 1, 2])
@pytest.mark.parametrize("topology", ["all_pairs", "ring"])
async def test_exact_call_counts(n, rounds, topology):
    d, engine = local_deliberation(n=n, rounds=rounds, topology=topology)
    record = await d.run()
    reviews_per_round = 0 if n < 2 else (n * (n - 1) if topology == "all_pairs" else n)
    revisions = (n if n > 1 else 0) * rounds
    # every proposal of every round is a candidate: each draft and revision is judged
    expected = {"generate": n, "critique": reviews_per_round * rounds, "revise": revisions,
                "judge": n + revisions, "select": 1 if n + revisions > 1 else 0}  # the architect: >= 2 candidates
    assert stage_counts(engine) == {k: v for k, v in expected.items() if v}
    assert len(record.critiques) == expected["critique"]
    assert len(record.proposals) == n + expected["revise"]
    assert record.tokens.calls == sum(expected.values()) == len(record.usage)
    # every agent's rounds are honoured: one draft plus one revision per round
    per_author = {a.agent_id: sorted(p.round for p in record.proposals if p.author_id == a.agent_id)
                  for a in record.council.agents}
    assert all(r == (list(range(rounds + 1)) if n > 1 else [0]) for r in per_author.values())


async def test_ring_reviews_the_next_agent_and_authors_get_their_critiques():
    d, engine = local_deliberation(n=4, rounds=1, topology="ring")
    record = await d.run()
    pairs = sorted((c.critic_id, c.author_id) for c in record.critiques)
    assert pairs == [("agent-dev-001", "agent-dev-002"), ("agent-dev-002", "agent-dev-003"),
                     ("agent-dev-003", "agent-dev-004"), ("agent-dev-004", "agent-dev-001")]
    # the author, not the critic, revises: each revise prompt holds the critique written about it
    for call in (c for c in engine.calls if c.tags["stage"] == "revise"):
        author = call.tags["agent_id"]
        critique = next(c for c in record.critiques if c.author_id == author)
        assert critique.content in call.messages[-1].content


async def test_rubric_text_not_keys_reaches_every_prompt():
    d, engine = local_deliberation(n=3, rounds=1)
    await d.run()
    for call in engine.calls:
        assert RUBRIC_TEXT in "\n".join(m.content for m in call.messages), call.tags


async def test_shared_prefix_layout_starts_every_call_with_the_same_text():
    d, engine = local_deliberation(n=3, rounds=1)
    record = await d.run()
    assert {c.tags["stage"] for c in engine.calls} == {"generate", "critique", "revise", "judge", "select"}
    # one system message for every agent, the judge and the architect; the task block next
    assert len({(c.messages[0].role, c.messages[0].content) for c in engine.calls}) == 1
    assert engine.calls[0].messages[0].role == "system"
    assert all(c.messages[1].content.startswith(d.request.task.render()) for c in engine.calls)
    # a revision continues its author's draft conversation: the draft call's messages, then the draft
    for call in (c for c in engine.calls if c.tags["stage"] == "revise"):
        author = call.tags["agent_id"]
        drafted = next(c for c in engine.calls if c.tags["stage"] == "generate" and c.tags["agent_id"] == author)
        draft = next(p for p in record.proposals if p.author_id == author and p.round == 0)
        assert call.messages[:2] == drafted.messages
        assert (call.messages[2].role, call.messages[2].content) == ("assistant", draft.content)
        assert call.messages[3].role == "user" and "Reviews of your solution" in call.messages[3].content


async def test_persona_first_layout_keeps_the_persona_as_the_system_message():
    d, engine = local_deliberation(n=3, rounds=1, prompt_layout="persona_first")
    await d.run()
    personas = {a.agent_id: f"{a.persona} {a.lens}".strip() for a in d.council.agents}
    for call in (c for c in engine.calls if c.tags["agent_id"] in personas):
        assert [m.role for m in call.messages] == ["system", "user"]
        assert call.messages[0].content == personas[call.tags["agent_id"]]
        assert call.messages[1].content.startswith(d.request.task.render())


async def test_fake_engine_jitter_spreads_calls_and_repeats_each_one():
    from fleet.engine.fake import _digest

    engine = FakeEngine(FakeEngineConfig(latency_s=0.5, latency_jitter_s=1.0, agent_latency_s={"slow": 2.0}))
    delays = [engine.delay_s("a", _digest(seed)) for seed in range(200)]
    assert all(0.5 <= d < 1.5 for d in delays) and min(delays) < 0.6 and max(delays) > 1.4
    assert [engine.delay_s("a", _digest(seed)) for seed in range(200)] == delays  # the same call, the same sleep
    assert engine.delay_s("slow", _digest(0)) == delays[0] + 2.0
    assert FakeEngine(FakeEngineConfig(latency_s=0.5)).delay_s("a", _digest(7)) == 0.5  # no jitter by default


async def test_fake_engine_prefix_cache_reuses_finished_blocks_only():
    from fleet.engine.protocol import ChatMessage, ChatRequest

    engine = FakeEngine(FakeEngineConfig(prefix_block=4, latency_s=0.01))
    words = " ".join(f"w{i}" for i in range(10))
    req = ChatRequest(model="m", messages=[ChatMessage(role="user", content=words)], max_tokens=8)
    together = await asyncio.gather(engine.chat(req), engine.chat(req))
    assert [r.cached_tokens for r in together] == [0, 0]  # in flight together: nothing to reuse yet
    again = await engine.chat(req)
    assert (again.prompt_tokens, again.cached_tokens) == (10, 8)  # two whole blocks of 4; the rest computed
    other = ChatRequest(model="m", messages=[ChatMessage(role="user", content="x " + words)], max_tokens=8)
    assert (await engine.chat(other)).cached_tokens == 0  # a different first block: no prefix in common
    off = await FakeEngine(FakeEngineConfig(prefix_block=0)).chat(req)
    assert off.cached_tokens is None


async def test_shared_prefix_layout_computes_fewer_prompt_tokens_on_the_demo_task():
    task = Task.model_validate_json((ROOT / "examples" / "rate_limiter.json").read_text())
    rates, computed = {}, {}
    for layout in ("persona_first", "shared_prefix"):
        # calls of one stage overlap (latency), so only earlier stages' blocks can be reused
        engine = FakeEngine(FakeEngineConfig(latency_s=0.01))
        d, _ = local_deliberation(n=3, rounds=1, engine=engine, task=task, prompt_layout=layout)
        tok = (await d.run()).tokens
        assert tok.cached_prompt_tokens == sum(c.cached_tokens for c in d.record.usage) > 0
        rates[layout], computed[layout] = tok.prefix_hit_rate, tok.prompt_tokens - tok.cached_prompt_tokens
    assert rates["shared_prefix"] > rates["persona_first"] + 0.1, rates
    assert computed["shared_prefix"] < 0.95 * computed["persona_first"], computed


async def test_an_author_revises_as_soon_as_its_own_critiques_are_in():
    # ring of 3: 001 reviews 002, 002 reviews 003, 003 reviews 001; 001 is slow
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s={"agent-dev-001": 1.0}))
    d, _ = local_deliberation(n=3, rounds=1, topology="ring", judge=False, engine=engine)
    record = await d.run()
    span = {(u.stage, u.agent_id): (u.start_ms, u.end_ms) for u in record.usage if u.stage in ("critique", "revise")}
    slow_critique_end = span[("critique", "agent-dev-001")][1]
    assert span[("revise", "agent-dev-003")][0] < slow_critique_end - 500  # did not wait for 001's critique of 002
    assert span[("revise", "agent-dev-002")][0] >= slow_critique_end  # its own critique, though, it waited for
    assert all(u.start_ms is not None and u.end_ms >= u.start_ms for u in record.usage if u.stage != "judge")
    # the record lists the round in council order all the same
    assert [p.author_id for p in record.proposals if p.round == 1] == ["agent-dev-001", "agent-dev-002",
                                                                       "agent-dev-003"]
    revise = next(t for t in record.timings if t.phase == "revise")
    assert revise.wall_ms > 1000  # the stage's span: from the first revision's start to the last one's end


async def test_agents_differ_in_persona_seed_and_temperature():
    d, engine = local_deliberation(n=3, rounds=0, judge=False)
    await d.run()
    gens = [c for c in engine.calls if c.tags["stage"] == "generate"]
    assert len({c.seed for c in gens}) == 3
    assert len({c.temperature for c in gens}) == 3
    assert len({c.messages[-1].content for c in gens}) == 3  # persona + lens differ per agent
    for call in gens:
        agent = next(a for a in d.council.agents if a.agent_id == call.tags["agent_id"])
        assert f"{agent.persona} {agent.lens}".strip() in call.messages[-1].content


async def test_same_seeds_same_transcript():
    a, _ = local_deliberation(n=3, rounds=1)
    b, _ = local_deliberation(n=3, rounds=1)
    ra, rb = await a.run(), await b.run()
    assert [p.content for p in ra.proposals] == [p.content for p in rb.proposals]
    assert [c.content for c in ra.critiques] == [c.content for c in rb.critiques]
    assert ra.selection.model_dump(exclude={"usage"}) == rb.selection.model_dump(exclude={"usage"})


async def test_winner_is_best_ranked_among_top_k():
    d, _ = local_deliberation(n=5, rounds=1)
    record = await d.run()
    # every draft and revision is a candidate, scored and ranked (a prose task: the judge and the architect)
    assert [s.rank for s in record.scores] == list(range(1, 11))
    assert sorted(s.candidate_id for s in record.scores) == sorted(p.candidate_id for p in record.proposals)
    totals = [s.total for s in record.scores]
    assert totals == sorted(totals, reverse=True)
    assert record.selection.candidates == [s.candidate_id for s in record.scores[:3]]
    assert record.selection.method == "architect" and record.selection.architect_id == "agent-architect-selector"
    assert record.selection.winner_candidate in record.selection.candidates and record.selection.reason
    assert record.winning_proposal().author_id == record.winner_id
    assert record.selection.runner_up in record.selection.candidates


async def test_architect_failure_falls_back_to_the_top_total_and_says_why():
    engine = FakeEngine(FakeEngineConfig(fail_stages=["select"]))
    d, _ = local_deliberation(n=3, rounds=0, engine=engine)
    record = await d.run()
    assert record.selection.method == "top-score" and record.winner_id == record.scores[0].author_id
    assert "architect agent-architect-selector failed" in record.selection.reason
    [failure] = record.failures
    assert (failure.agent_id, failure.stage) == ("agent-architect-selector", "select")
    assert record.status == "completed"  # the council's agents all delivered


async def test_k_1_skips_the_architect():
    from helpers import make_task

    d, engine = local_deliberation(n=3, rounds=0, task=make_task(k=1))
    record = await d.run()
    assert "select" not in stage_counts(engine)
    assert record.selection.method == "top-score" and record.selection.candidates == [record.scores[0].candidate_id]


async def test_failed_agent_is_recorded_not_replaced_and_quorum_continues():
    engine = FakeEngine(FakeEngineConfig(fail_agents=["agent-dev-002"]))
    d, _ = local_deliberation(n=3, rounds=1, engine=engine)
    record = await d.run()
    assert record.status == "degraded"
    [failure] = record.failures
    assert (failure.agent_id, failure.stage, failure.error_type) == ("agent-dev-002", "generate", "EngineError")
    assert "injected failure" in failure.message
    assert all(p.author_id != "agent-dev-002" for p in record.proposals)  # no fallback text
    assert {s.author_id for s in record.scores} == {"agent-dev-001", "agent-dev-003"}
    assert any("continuing with 2 live agents" in n for n in record.notes)


async def test_quorum_lost_raises_with_partial_record():
    engine = FakeEngine(FakeEngineConfig(fail_stages=["critique"]))
    d, _ = local_deliberation(n=3, rounds=1, engine=engine)
    with pytest.raises(DeliberationFailedError, match="quorum lost after critique round 1") as info:
        await d.run()
    record = info.value.record
    assert record.status == "failed"
    # says why (which critique failed last depends on which draft was in first: critiques start per draft)
    assert re.search(r"last failure: agent-dev-00[123] EngineError: fake engine: injected failure", str(info.value))
    assert len(record.proposals) == 3  # the drafts produced before the failure are kept
    assert {f.agent_id for f in record.failures} == {"agent-dev-001", "agent-dev-002", "agent-dev-003"}


async def test_explicit_quorum_is_honoured():
    engine = FakeEngine(FakeEngineConfig(fail_agents=["agent-dev-001"]))
    d, _ = local_deliberation(n=3, rounds=0, engine=engine, quorum=3)
    with pytest.raises(DeliberationFailedError, match="quorum is 3"):
        await d.run()


async def test_call_timeout_is_a_recorded_failure():
    engine = FakeEngine(FakeEngineConfig(latency_s=0.5))
    d, _ = local_deliberation(n=2, rounds=0, engine=engine, quorum=1,
                              timeouts={"call_s": 0.05, "stage_s": 5, "deliberation_s": 10})
    with pytest.raises(DeliberationFailedError) as info:
        await d.run()
    assert {f.error_type for f in info.value.record.failures} == {"EngineTimeoutError"}


async def test_judge_failure_drops_judge_for_all_and_says_so():
    engine = FakeEngine(FakeEngineConfig(fail_stages=["judge"]))
    d, _ = local_deliberation(n=3, rounds=0, engine=engine)
    record = await d.run()
    assert all(s.judge is None for s in record.scores)
    assert all("judge" not in s.components for s in record.scores)
    assert [f.stage for f in record.failures] == ["judge"] * 3
    assert any("judge failed" in n for n in record.notes)
    assert record.status == "completed"  # the agents all delivered


async def test_cancel_leaves_nothing_running():
    engine = FakeEngine(FakeEngineConfig(latency_s=5))
    d, _ = local_deliberation(n=3, rounds=1, engine=engine)
    before = asyncio.all_tasks()
    task = asyncio.create_task(d.run())
    await asyncio.sleep(0.2)  # inside generate
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert leftover == []
    assert len(engine.calls) == 3 and not any(c.tags["stage"] == "critique" for c in engine.calls)


async def test_record_timings_and_tokens_add_up():
    d, _ = local_deliberation(n=3, rounds=2)
    record = await d.run()
    phases = [(t.phase, t.round) for t in record.timings]
    assert phases == [("setup", 0), ("generate", 0), ("check", 0), ("critique", 1), ("revise", 1), ("check", 1),
                      ("critique", 2), ("revise", 2), ("check", 2), ("score", 0), ("select", 0)]
    assert record.tokens.prompt_tokens == sum(u.prompt_tokens for u in record.usage) > 0
    assert record.tokens.completion_tokens == sum(u.completion_tokens for u in record.usage) > 0
    assert record.duration_ms > 0


async def test_a_call_cancelled_from_outside_cancels_the_deliberation_not_the_agent():
    """ray.cancel is recursive: agent tasks can be cancelled before the coordinator task sees it.
    That must read as a cancellation, never as failed agents and a lost quorum."""
    class CancelledEngine(FakeEngine):
        async def chat(self, request):
            if request.tags.get("agent_id") == "agent-dev-002":
                raise asyncio.CancelledError("cancelled by the caller's ray.cancel")
            return await super().chat(request)

    d, _ = local_deliberation(n=3, rounds=1, engine=CancelledEngine(FakeEngineConfig()))
    with pytest.raises(asyncio.CancelledError):
        await d.run()
    assert d.record.failures == []


def _code_task(visible_test: str):
    from fleet.config.task import Task, TestSuite

    return Task(description="Write a rate limiter.", tests=[TestSuite(source=visible_test, visible=True)])


async def test_revisions_see_their_own_failing_visible_tests_and_critics_see_them_too():
    failing = "import solution\n\n\ndef test_has_allow():\n    assert hasattr(solution, 'allow')\n"
    d, engine = local_deliberation(n=2, rounds=1, task=_code_task(failing))
    record = await d.run()
    drafts = [p for p in record.proposals if p.round == 0]
    assert all(p.feedback.tests_total == 1 and p.feedback.tests_passed == 0 for p in drafts)
    for call in (c for c in engine.calls if c.tags["stage"] in ("revise", "critique")):
        assert "Visible tests: 0/1 passed" in call.messages[-1].content
        assert "has_allow" in call.messages[-1].content


async def test_early_stop_when_every_proposal_passes_its_visible_tests():
    passing = ("import solution\n\n\ndef test_defines_something():\n"
               "    assert [n for n in dir(solution) if n[0] != '_']\n")
    d, engine = local_deliberation(n=3, rounds=2, task=_code_task(passing))
    record = await d.run()
    assert "critique" not in stage_counts(engine) and "revise" not in stage_counts(engine)
    assert any(n.startswith("early stop") and "rounds 1..2 skipped" in n for n in record.notes)
    d, engine = local_deliberation(n=3, rounds=1, task=_code_task(passing), early_stop=False)
    record = await d.run()
    # the round happens, but repair is aimed at failures (issue 20): proposals that pass are neither
    # critiqued nor revised (before it, all three were)
    assert "critique" not in stage_counts(engine) and "revise" not in stage_counts(engine)
    assert any("received no critique and keep their proposal" in n for n in record.notes)
    d, engine = local_deliberation(n=3, rounds=1, task=_code_task(passing), early_stop=False, feedback=False)
    await d.run()
    assert stage_counts(engine)["revise"] == 3  # without feedback, review goes to every proposal as before


def _draft_end(record, agent: str) -> float:
    return next(u.end_ms for u in record.usage if u.stage == "generate" and u.agent_id == agent)


async def test_a_drafts_critiques_start_as_soon_as_it_exists_and_the_drafts_checkpoint_leaves_them_out():
    from fleet.coordinator.state_store import Checkpoint

    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s={"agent-dev-001": 1.0}))  # 001 is slow
    checkpoints: list[Checkpoint] = []
    events: list[str] = []
    # ring of 3: 001 reviews 002, 002 reviews 003, 003 reviews 001
    d, _ = local_deliberation(n=3, rounds=1, topology="ring", judge=False, engine=engine,
                              on_checkpoint=lambda c: (checkpoints.append(c), events.append("checkpoint")))
    d._on_event = lambda kind, _: events.append(kind)
    record = await d.run()
    # events before the drafts' checkpoint are the drafts' only (a resume keeps those and drops the rest)
    assert events[:4] == ["proposal"] * 3 + ["checkpoint"]
    assert events.count("critique") == 3 and events.count("revision") == 3
    start = {(c.critic_id, c.author_id): c.usage.start_ms for c in record.critiques}
    slow = _draft_end(record, "agent-dev-001")
    assert start[("agent-dev-002", "agent-dev-003")] < slow - 500  # did not wait for 001's draft
    assert start[("agent-dev-001", "agent-dev-002")] >= slow  # a critic reviews once its own draft is in
    assert start[("agent-dev-003", "agent-dev-001")] >= slow  # 001's draft it reviewed once it existed
    revised_003 = next(p for p in record.proposals if p.round == 1 and p.author_id == "agent-dev-003")
    assert revised_003.usage.end_ms < slow  # 003 revised before 001 had drafted
    assert [(p.round, p.author_id) for p in record.proposals] == [
        (r, f"agent-dev-00{i}") for r in (0, 1) for i in (1, 2, 3)]  # council order all the same
    # The drafts' checkpoint came while critiques were already done: it keeps the drafts only.
    drafts = checkpoints[0]
    assert [c.round for c in checkpoints] == [0, 1] and drafts.live == ["agent-dev-001", "agent-dev-002",
                                                                       "agent-dev-003"]
    assert len(record.critiques) == 3 and drafts.record.critiques == [] and len(drafts.record.proposals) == 3
    assert {u.stage for u in drafts.record.usage} == {"generate"}
    stored = Checkpoint.model_validate_json(drafts.model_dump_json())
    resumed, engine = local_deliberation(n=3, rounds=1, topology="ring", judge=False, checkpoint=stored)
    again = await resumed.run()
    assert stage_counts(engine) == {"critique": 3, "revise": 3, "select": 1}  # no draft again
    assert [p.content for p in again.proposals] == [p.content for p in record.proposals]  # same seeds, same run
    assert [c.content for c in again.critiques] == [c.content for c in record.critiques]
    # dataflow=False: the barrier of old, the same calls and outputs, later
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s={"agent-dev-001": 1.0}))
    d, _ = local_deliberation(n=3, rounds=1, topology="ring", judge=False, engine=engine, dataflow=False)
    barrier = await d.run()
    assert min(c.usage.start_ms for c in barrier.critiques) >= _draft_end(barrier, "agent-dev-001")
    assert [p.content for p in barrier.proposals] == [p.content for p in record.proposals]


async def test_an_agent_can_be_a_round_ahead_of_a_slower_one_and_each_rounds_checkpoint_leaves_later_ones_out():
    from fleet.coordinator.state_store import Checkpoint

    # ring of 4: 001 reviews 002, 002 reviews 003, 003 reviews 004, 004 reviews 001; 001 is slow.
    # 003 and 004 depend on 001 in neither round (003's critic is 002, 004's is 003).
    slow = {"agent-dev-001": 1.0}
    checkpoints: list[Checkpoint] = []
    events: list[tuple[str, int]] = []
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s=slow))
    d, _ = local_deliberation(n=4, rounds=2, topology="ring", judge=False, engine=engine,
                              on_checkpoint=lambda c: (checkpoints.append(c), events.append(("checkpoint", c.round))))
    d._on_event = lambda kind, payload: events.append((kind, getattr(payload, "round", 0)))
    record = await d.run()
    span = {(u.stage, u.round, u.agent_id): (u.start_ms, u.end_ms) for u in record.usage}
    slow_revised = span[("revise", 1, "agent-dev-001")][1]
    assert span[("critique", 2, "agent-dev-003")][0] < slow_revised - 500  # round 2 began beside round 1
    assert span[("revise", 2, "agent-dev-004")][1] < slow_revised  # 004 finished round 2 before 001 round 1
    assert span[("critique", 2, "agent-dev-004")][0] >= slow_revised  # 004 reviews 001's revision once it exists
    # Each checkpoint is the record a barrier would have had then; the events before it are its own.
    assert [c.round for c in checkpoints] == [0, 1, 2]
    for c in checkpoints:
        r = c.round
        assert {p.round for p in c.record.proposals} == set(range(r + 1))
        assert len(c.record.proposals) == 4 * (r + 1) and len(c.record.critiques) == 4 * r
        assert {u.round for u in c.record.usage} == set(range(r + 1))
        before = events[:events.index(("checkpoint", r))]
        assert max(rnd for _, rnd in before) <= r
        assert sum(kind in ("proposal", "revision") for kind, _ in before) == 4 * (r + 1)
    assert [(p.round, p.author_id) for p in record.proposals] == [
        (r, f"agent-dev-00{i}") for r in (0, 1, 2) for i in (1, 2, 3, 4)]  # council order all the same
    # Resuming from round 1's checkpoint runs round 2 only, to the same outputs.
    stored = Checkpoint.model_validate_json(checkpoints[1].model_dump_json())
    resumed, engine = local_deliberation(n=4, rounds=2, topology="ring", judge=False, checkpoint=stored)
    again = await resumed.run()
    assert stage_counts(engine) == {"critique": 4, "revise": 4, "select": 1}
    assert [p.content for p in again.proposals] == [p.content for p in record.proposals]
    # dataflow=False: a barrier after each round, the same calls and outputs, later
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s=slow))
    d, _ = local_deliberation(n=4, rounds=2, topology="ring", judge=False, engine=engine, dataflow=False)
    barrier = await d.run()
    first_r2 = min(u.start_ms for u in barrier.usage if u.round == 2)
    assert first_r2 >= max(u.end_ms for u in barrier.usage if u.round == 1)
    assert [p.content for p in barrier.proposals] == [p.content for p in record.proposals]
    assert [c.content for c in barrier.critiques] == [c.content for c in record.critiques]


async def test_agents_dropping_out_do_not_open_a_round_the_barrier_would_skip():
    # Two of three drafts fail (quorum 1): one agent is left, so no review round happens, with or
    # without dataflow, and the notes say so the same way.
    notes = {}
    for dataflow in (True, False):
        engine = FakeEngine(FakeEngineConfig(fail_agents=["agent-dev-002", "agent-dev-003"]))
        d, _ = local_deliberation(n=3, rounds=2, engine=engine, quorum=1, dataflow=dataflow)
        record = await d.run()
        assert "critique" not in stage_counts(engine) and "revise" not in stage_counts(engine)
        notes[dataflow] = [n for n in record.notes if n.startswith("round")]
    assert notes[True] == notes[False] == ["round 1: skipped review, fewer than 2 live agents"]


async def test_no_critique_starts_while_every_draft_so_far_passes_its_visible_tests():
    passing = ("import solution\n\n\ndef test_defines_something():\n"
               "    assert [n for n in dir(solution) if n[0] != '_']\n")
    failing = "import solution\n\n\ndef test_has_allow():\n    assert hasattr(solution, 'allow')\n"
    slow = {"agent-dev-001": 1.0}
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s=slow))
    d, _ = local_deliberation(n=3, rounds=1, task=_code_task(passing), engine=engine)
    record = await d.run()  # every draft passes: exactly the early stop of a barrier, no call wasted
    assert "critique" not in stage_counts(engine) and any(n.startswith("early stop") for n in record.notes)
    # The first failing draft decides it: the round is on. (001 slower here: each draft's sandboxed
    # check takes a while on a loaded machine before its critiques can start.)
    engine = FakeEngine(FakeEngineConfig(latency_s=0.05, agent_latency_s={"agent-dev-001": 4.0}))
    d, _ = local_deliberation(n=3, rounds=1, task=_code_task(failing), engine=engine, judge=False)
    record = await d.run()
    start = {(c.critic_id, c.author_id): c.usage.start_ms for c in record.critiques}
    assert start[("agent-dev-003", "agent-dev-002")] < _draft_end(record, "agent-dev-001")


async def test_without_feedback_agents_never_see_what_the_code_did_and_nothing_stops_early():
    failing = "import solution\n\n\ndef test_has_allow():\n    assert hasattr(solution, 'allow')\n"
    d, engine = local_deliberation(n=2, rounds=1, task=_code_task(failing), feedback=False)
    record = await d.run()
    assert all(p.feedback.tests_total == 1 for p in record.proposals)  # still measured (the scores use it)
    reviewed = [c for c in engine.calls if c.tags["stage"] in ("revise", "critique")]
    assert len(reviewed) == 4
    assert not any("Automatic checks" in c.messages[-1].content or "Visible tests: 0/1" in c.messages[-1].content
                   for c in reviewed)
    passing = ("import solution\n\n\ndef test_defines_something():\n"
               "    assert [n for n in dir(solution) if n[0] != '_']\n")
    d, engine = local_deliberation(n=3, rounds=1, task=_code_task(passing), feedback=False)
    record = await d.run()
    assert stage_counts(engine)["revise"] == 3 and not any(n.startswith("early stop") for n in record.notes)


async def test_a_requests_sampling_rides_on_each_call_and_leaves_the_agents_as_they_are():
    from fleet.config.deliberation import SamplingOverride

    plain, plain_engine = local_deliberation(n=3, rounds=1, judge=False)
    await plain.run()
    d, engine = local_deliberation(n=3, rounds=1, judge=False,
                                   sampling=SamplingOverride(temperature=0.1, max_tokens=77, seed=5))
    record = await d.run()
    assert record.council == plain.record.council  # the same agents (so the same actors serve both)
    assert record.sampling.temperature == 0.1
    def by_call(calls):
        out: dict[tuple, list] = {}
        for c in calls:
            out.setdefault((c.tags["agent_id"], c.tags["stage"], c.tags["round"]), []).append(c)
        return {k: sorted(v, key=lambda c: c.seed) for k, v in out.items()}

    before, after = by_call(plain_engine.calls), by_call(engine.calls)
    assert before.keys() == after.keys()
    for key, calls in after.items():
        if key[1] == "select":  # the architect chooses greedily, whatever the request says
            assert [(c.temperature, c.seed) for c in calls] == [(0.0, c.seed) for c in before[key]]
            continue
        assert [c.seed for c in calls] == [c.seed + 5 for c in before[key]]  # an offset: seeds stay distinct
        assert {c.temperature for c in calls} == {0.1}
        assert {c.max_tokens for c in calls} == ({c.max_tokens for c in before[key]} if key[1] == "critique" else {77})


async def test_a_resumed_deliberation_runs_only_the_stages_after_its_checkpoint():
    from fleet.coordinator.state_store import Checkpoint

    checkpoints: list[Checkpoint] = []
    first, _ = local_deliberation(n=3, rounds=2, on_checkpoint=checkpoints.append)
    full = await first.run()
    assert [c.round for c in checkpoints] == [0, 1, 2]
    assert [len(c.record.proposals) for c in checkpoints] == [3, 6, 9]
    stored = [Checkpoint.model_validate_json(c.model_dump_json()) for c in checkpoints]  # as the store keeps them

    after_drafts, engine = local_deliberation(n=3, rounds=2, checkpoint=stored[0])
    resumed = await after_drafts.run()
    assert stage_counts(engine) == {"critique": 12, "revise": 6, "judge": 9, "select": 1}  # no draft again
    assert resumed.proposals[:3] == full.proposals[:3]
    assert [p.content for p in resumed.proposals] == [p.content for p in full.proposals]  # same seeds, same run
    assert [t.phase for t in resumed.timings].count("generate") == 1
    assert resumed.status == "completed" and resumed.winner_id == full.winner_id
    assert any(n.startswith("resumed after a coordinator restart: the drafts kept") for n in resumed.notes)

    after_round_1, engine = local_deliberation(n=3, rounds=2, checkpoint=stored[1])
    resumed = await after_round_1.run()
    assert stage_counts(engine) == {"critique": 6, "revise": 3, "judge": 9, "select": 1}
    assert resumed.critiques[:6] == full.critiques[:6] and len(resumed.critiques) == 12


async def test_a_checkpoint_keeps_who_failed_out():
    from fleet.coordinator.state_store import Checkpoint

    checkpoints: list[Checkpoint] = []
    engine = FakeEngine(FakeEngineConfig(fail_agents=["agent-dev-002"]))
    d, _ = local_deliberation(n=3, rounds=1, engine=engine, on_checkpoint=checkpoints.append)
    await d.run()
    assert checkpoints[0].live == ["agent-dev-001", "agent-dev-003"]
    resumed, engine = local_deliberation(n=3, rounds=1, checkpoint=checkpoints[0])
    record = await resumed.run()  # the failed agent stays out, though this engine would answer it
    assert {c.tags["agent_id"] for c in engine.calls if c.tags["stage"] == "critique"} == {
        "agent-dev-001", "agent-dev-003"}
    assert record.status == "degraded" and record.failed_agents() == {"agent-dev-002"}


async def test_ignore_eos_makes_every_free_text_call_exactly_its_budget():
    from fleet.config.deliberation import SamplingOverride

    d, engine = local_deliberation(n=3, rounds=1, sampling=SamplingOverride(max_tokens=150, ignore_eos=True))
    record = await d.run()
    free = [c for c in engine.calls if c.json_schema is None]
    assert free and all(c.ignore_eos for c in free)
    assert not any(c.ignore_eos for c in engine.calls if c.json_schema is not None)  # judge, architect
    budgets = {"generate": 150, "revise": 150, "critique": d.cfg.critique_max_tokens}
    assert all(u.completion_tokens == budgets[u.stage] for u in record.usage if u.stage in budgets)

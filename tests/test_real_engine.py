"""The real thing: SmolLM2-135M on vLLM's CPU build, served by ray.serve.llm, one deployment for the
suite (the `real_fleet` fixture). Assertions are about structure and accounting, not wording."""

from __future__ import annotations

import pytest

from fleet import DeliberationConfig
from fleet.config.deliberation import SamplingOverride

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
async def readme_record(real_fleet):
    """The README's driver example (examples/driver.py: 3 DEV agents, 1 round, judge, k=2), run once on
    the suite's engine (it joins the running fleet); both tests below read its record."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "driver.py"
    spec = importlib.util.spec_from_file_location("driver_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return await module.main()


async def test_full_three_agent_one_round_deliberation(real_fleet, readme_record):
    record = readme_record
    assert record.status == "completed", record.failures
    agents = [a.agent_id for a in record.council.agents]
    assert agents == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]

    # every proposal, critique, revision, with its author and round
    assert sorted((p.author_id, p.round) for p in record.proposals) == sorted(
        [(a, 0) for a in agents] + [(a, 1) for a in agents])
    assert sorted((c.critic_id, c.author_id) for c in record.critiques) == sorted(
        (c, a) for c in agents for a in agents if c != a)
    assert all(p.content.strip() for p in record.proposals)
    assert len({p.content for p in record.proposals if p.round == 0}) >= 2  # the agents differ

    # tokens: one usage entry per engine call, each bounded by the completion budget
    judge_calls = sum(1 for s in record.scores if s.judge)
    architect_calls = int(record.selection.method == "architect")
    assert record.tokens.calls == len(record.usage) == 3 + 6 + 3 + judge_calls + architect_calls
    for u in record.usage:
        assert u.prompt_tokens > 0 and 0 < u.completion_tokens
        assert u.served_by.startswith("vllm-")
    for p in record.proposals:
        assert p.usage.completion_tokens <= real_fleet.config.max_tokens
    assert record.tokens.completion_tokens == sum(u.completion_tokens for u in record.usage)

    # the judge answered schema-valid JSON (or its failure is recorded, never guessed)
    judge_failures = [f for f in record.failures if f.stage == "judge"]
    assert judge_calls == len(record.proposals) or (judge_calls == 0 and judge_failures)  # every candidate
    for s in record.scores:
        if s.judge:
            assert 1 <= s.judge.score <= 10
    # the architect chose (or its failure is recorded and the top total won)
    if record.selection.method == "top-score":
        assert [f.stage for f in record.failures if f.stage == "select"] == ["select"]

    # scores, ranks, winner among the candidates with the best score
    # every draft and revision is a candidate (a prose task: the judge and the architect choose)
    assert [s.rank for s in record.scores] == list(range(1, len(record.proposals) + 1))
    assert record.selection.candidates == [s.candidate_id for s in record.scores[:2]]  # the task's k=2
    assert record.selection.winner_candidate in record.selection.candidates
    assert {t.phase for t in record.timings} == {"setup", "generate", "check", "critique", "revise", "score",
                                                 "select"}


async def test_same_seeds_give_the_same_first_drafts_on_the_real_engine(real_fleet):
    """vLLM's per-request seed makes an agent's sampling reproducible."""
    cfg, short = DeliberationConfig(rounds=0, judge=False), SamplingOverride(max_tokens=24)
    a = await real_fleet.deliberate("Add input validation to the signup form", role="QA", num_agents=2, config=cfg,
                                    sampling=short)
    b = await real_fleet.deliberate("Add input validation to the signup form", role="QA", num_agents=2, config=cfg,
                                    sampling=short)
    assert [p.content for p in a.proposals] == [p.content for p in b.proposals]


async def test_readme_driver_example_runs(readme_record):
    """examples/driver.py is what the README shows; it joins the suite's running engine."""
    from pathlib import Path

    record = readme_record
    assert record.status in ("completed", "degraded")
    assert record.task.rubric.criteria["security"].startswith("Stops brute-force")
    assert len(record.selection.candidates) == 2  # k=2 honoured
    assert "examples/driver.py" in (Path(__file__).parent.parent / "README.md").read_text()


async def test_the_running_engine_reports_the_dtype_chosen_for_this_cpu(real_fleet, readme_record):
    """dtype `auto` (serve_configs/cpu.yaml) resolved by this machine's CPU flags, and the running vLLM
    engine (asked through its replica, not the config) runs that dtype, eagerly; the record says so."""
    from ray import serve

    from fleet.config.engine import choose_dtype

    spec = real_fleet.config.engine
    expected, why = choose_dtype("cpu")
    assert (spec.dtype, spec.dtype_reason) == (expected, why)
    handle = serve.get_deployment_handle(spec.deployment_name, spec.app_name)
    info = await handle.engine_info.remote()
    assert info["dtype"] == expected
    assert info["enforce_eager"] is (not spec.compile)
    from fleet.bootstrap import resolve_model_source

    assert info["model"] == resolve_model_source(spec)  # the folder converted in that dtype: no cast at load
    assert info["model"].endswith(f"-{spec.weights_dtype}")
    assert readme_record.engine is not None and readme_record.engine.dtype == expected

"""`fleet eval humaneval`: a council against one greedy answer and against sample-and-vote, on the
same engine and model, each final answer graded by the problem's hidden `check` in the sandbox.

Strategies (all through the fleet's coordinator, so the same agents, engine and prompts):
- `single`: the council's first agent, one greedy draft (temperature 0).
- `vote`: N drafts from the council's agents in turn, at their own temperatures; `vote.choose` picks.
  N defaults to the council's mean completion tokens / single's over the problems run (equal spend).
- `council`: a deliberation whose agents see the prompt and its `>>>` examples (as visible tests),
  with execution feedback; the architect's winner is graded.
- `council-nofeedback`: the same deliberation with `feedback=False` (what execution feedback adds).

Problems run concurrently up to `concurrency` (so the engine batches), in problem order; without a
given N, `single` and the councils first, then `vote` (its N depends on them). Each result is
appended to `out` as it finishes, and a rerun with the same settings skips what is there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import (
    DeliberationConfig,
    DeliberationRequest,
    SampleRequest,
    SamplingOverride,
    Timeouts,
)
from fleet.config.scoring import SandboxLimits
from fleet.driver import Fleet
from fleet.errors import DeliberationFailedError, InvalidRequestError
from fleet.eval import vote
from fleet.eval.humaneval import Problem, grade, load_problems, probe_inputs, problem_task, program, visible_examples
from fleet.eval.rows import STRATEGIES, EvalRow, EvalSettings, Strategy, append_row, read_rows
from fleet.schemas.record import DeliberationRecord
from fleet.scoring.extract import extract_code
from fleet.scoring.lint import lint
from fleet.scoring.sandbox import run_probes

MAX_VOTE_N = 64


class Spend(TypedDict):
    """What a strategy spent, as its `EvalRow` counts it."""

    prompt_tokens: int
    completion_tokens: int
    calls: int


class RowFields(Spend, total=False):
    """What a strategy adds to its `EvalRow` besides the grade (problem, strategy, settings: the row's own)."""

    oracle_pool: bool | None
    error: str | None
    detail: dict[str, Any]


class EvalConfig(StrictModel):
    """One `fleet eval humaneval` run, as parsed at the CLI edge."""

    settings: EvalSettings
    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)
    offset: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=8, ge=1, le=256, description="problem x strategy runs at once")
    vote_n: int | None = Field(default=None, ge=1, le=MAX_VOTE_N, description="None: equal budget with the council")
    # The eval keeps the engine saturated on purpose (throughput), so one call waits for its share of a
    # large batch: the interactive defaults (300 s a call) would turn load into failed agents.
    timeouts: Timeouts = Field(default_factory=lambda: Timeouts(call_s=1800, stage_s=3600, deliberation_s=4 * 3600))
    out: Path
    records: Path | None = Field(default=None, description="write each council's whole record here as JSON")
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)


def budget_vote_n(rows: list[EvalRow]) -> int:
    """Equal spend: the council's mean completion tokens over single's (rounded, at least 1).

    >>> s = {"model": "m"}
    >>> r = lambda st, c: EvalRow(problem="p", strategy=st, passed=True, prompt_tokens=0, completion_tokens=c,
    ...                           calls=1, wall_s=0, settings=s)
    >>> budget_vote_n([r("single", 100), r("single", 140), r("council", 1500), r("council", 2100)])
    15
    """
    council = [r.completion_tokens for r in rows if r.strategy == "council" and r.error is None]
    single = [r.completion_tokens for r in rows if r.strategy == "single" and r.error is None]
    if not council or not single or sum(single) == 0:
        raise InvalidRequestError("vote's N is the council's mean completion tokens over single's: run the 'council' "
                                  "and 'single' strategies too (or resume a file that has them), or give --vote-n")
    ratio = (sum(council) / len(council)) / (sum(single) / len(single))
    return max(1, min(MAX_VOTE_N, round(ratio)))


class Evaluation:
    def __init__(self, fleet: Fleet, config: EvalConfig,
                 on_row: Callable[[EvalRow, int, int], None] | None = None) -> None:
        """on_row(row, done, total) after each result (a progress display); resumed rows count as done."""
        self.fleet, self.config, self.on_row = fleet, config, on_row
        self.settings = config.settings
        self.problems = load_problems(config.offset, config.limit)
        self.vote_n: int | None = config.vote_n

    async def run(self) -> list[EvalRow]:
        """Every (problem, strategy) of the config, resumed from `out`; the rows in problem order."""
        cfg = self.config
        rows = await asyncio.to_thread(read_rows, cfg.out, self.settings)
        ids = {p.task_id for p in self.problems}
        mine = {k: r for k, r in rows.items() if k[0] in ids and k[1] in cfg.strategies}
        total = len(self.problems) * len(cfg.strategies)
        self._done = len(mine)
        self._total = total
        # With vote's N given, every strategy of a problem runs beside the others (problem order), so an
        # interrupted run still compares them all on the problems it reached; else vote waits for its N.
        deferred = "vote" if self.vote_n is None else None
        first = [(p, s) for p in self.problems for s in cfg.strategies if s != deferred and (p.task_id, s) not in mine]
        await self._run_all(first, mine)
        if deferred is not None and "vote" in cfg.strategies:
            todo: list[tuple[Problem, Strategy]] = [(p, "vote") for p in self.problems
                                                    if (p.task_id, "vote") not in mine]
            if todo and self.vote_n is None:
                self.vote_n = budget_vote_n([r for k, r in {**rows, **mine}.items() if k[0] in ids])
            await self._run_all(todo, mine)
        order = {p.task_id: i for i, p in enumerate(self.problems)}
        return sorted(mine.values(), key=lambda r: (order[r.problem], STRATEGIES.index(r.strategy)))

    async def _run_all(self, jobs: Sequence[tuple[Problem, Strategy]], into: dict[tuple[str, str], EvalRow]) -> None:
        slots = asyncio.Semaphore(self.config.concurrency)

        async def one(problem: Problem, strategy: Strategy) -> None:
            async with slots:
                row = await self.run_one(problem, strategy)
            await asyncio.to_thread(append_row, self.config.out, row)
            into[(row.problem, row.strategy)] = row
            self._done += 1
            if self.on_row:
                self.on_row(row, self._done, self._total)

        await asyncio.gather(*(one(p, s) for p, s in jobs))

    async def run_one(self, problem: Problem, strategy: Strategy) -> EvalRow:
        """One problem under one strategy. A strategy that fails (a lost quorum, every draft failed) is
        a row with its error and passed=False; fleet's own bugs and cancellation propagate."""
        start = time.perf_counter()
        if strategy in ("single", "vote"):
            row = await self._sampled(problem, strategy)
        else:
            row = await self._council(problem, feedback=strategy == "council")
        row.wall_s = time.perf_counter() - start
        return row

    def _row(self, problem: Problem, strategy: Strategy, passed: bool = False, answer: str = "",
             grade_output: str = "", **fields: Unpack[RowFields]) -> EvalRow:
        return EvalRow(problem=problem.task_id, strategy=strategy, settings=self.settings, passed=passed,
                       answer=answer, grade_output=grade_output, wall_s=0.0, **fields)

    async def _graded(self, problem: Problem, strategy: Strategy, answer: str, **fields: Unpack[RowFields]) -> EvalRow:
        run = await grade(problem, answer, self.config.sandbox)
        return self._row(problem, strategy, passed=run.passed == 1 and run.total == 1, answer=answer,
                         grade_output=(run.error or run.output)[:1000], **fields)

    def _ablated(self, n: int) -> CouncilSpec | None:
        """The settings' persona ablation: `n` agents of the role, each with that persona and no lens
        (seeds, temperatures and max_tokens as the role's council would have them); None: the role's own."""
        if self.settings.persona is None:
            return None
        council = CouncilSpec.default(self.settings.role, n, persona=self.settings.persona,
                                      max_tokens=self.fleet.config.max_tokens)
        return council.model_copy(update={"agents": [a.model_copy(update={"lens": ""}) for a in council.agents]})

    def _seeded(self, temperature: float | None = None) -> SamplingOverride | None:
        """The request's sampling: `temperature` (None: each agent's own) and the settings' seed, if any."""
        seed = self.settings.seed or None
        if temperature is None and seed is None:
            return None
        return SamplingOverride(temperature=temperature, seed=seed)

    async def _sampled(self, problem: Problem, strategy: Strategy) -> EvalRow:
        single = strategy == "single"
        n = 1 if single else self.vote_n
        assert n is not None  # set before the vote jobs start
        request = SampleRequest(task=problem_task(problem), role=self.settings.role, n=n,
                                num_agents=1 if single else self.settings.agents,
                                council=self._ablated(1 if single else self.settings.agents),
                                sampling=self._seeded(temperature=0.0) if single else self._seeded(),
                                prompt_layout=self.settings.prompt_layout, timeouts=self.config.timeouts)
        result = await self.fleet.sample(request)
        tokens: Spend = {"prompt_tokens": result.tokens.prompt_tokens,
                             "completion_tokens": result.tokens.completion_tokens,
                             "calls": result.tokens.calls + len(result.failures)}
        detail: dict[str, Any] = {"n": n, "failed_drafts": len(result.failures)}
        if not result.drafts:
            why = result.failures[0] if result.failures else None
            return self._row(problem, strategy, error=f"no draft: {why.error_type}: {why.message[:300]}" if why else
                             "no draft", detail=detail, **tokens)
        if single:
            row = await self._graded(problem, strategy, result.drafts[0].content, detail=detail, **tokens)
            return row.model_copy(update={"oracle_pool": row.passed})
        probes, wants = probe_inputs(problem), _visible_wants(problem)  # once per problem, not per ballot
        ballots = await asyncio.gather(*(self._ballot(problem, probes, wants, i, d.content)
                                         for i, d in enumerate(result.drafts)))
        outcome = vote.choose(list(ballots))
        detail.update(outcome.model_dump())
        return await self._graded(problem, strategy, result.drafts[outcome.chosen].content, detail=detail,
                                  oracle_pool=await self._oracle(problem, [d.content for d in result.drafts]),
                                  **tokens)

    async def _oracle(self, problem: Problem, answers: list[str]) -> bool:
        """oracle@pool: whether any of these answers passes the hidden check (each distinct one graded)."""
        return any((await self._hidden(problem, answers)).values())

    async def _hidden(self, problem: Problem, answers: list[str]) -> dict[str, bool]:
        """Each distinct answer: whether it passes the hidden check."""
        distinct = list(dict.fromkeys(answers))
        runs = await asyncio.gather(*(grade(problem, a, self.config.sandbox) for a in distinct))
        return {a: r.passed == 1 and r.total == 1 for a, r in zip(distinct, runs, strict=True)}

    async def _ballot(self, problem: Problem, probes: list[str], wants: list[tuple[str, str]], index: int,
                      answer: str) -> vote.Ballot:
        """Run one sampled answer on the probe inputs; its visible examples and lint from the same run."""
        run = await run_probes(program(problem, answer), probes, self.config.sandbox)
        extract = extract_code(answer)
        code = extract.code if extract.parse_error is None else None
        parses = code is not None
        findings = await lint(code) if code is not None else None
        visible = 0
        if run.outputs is not None:
            got = dict(zip(probes, run.outputs, strict=True))
            visible = sum(_same(got.get(src), want) for src, want in wants)
        return vote.Ballot(index=index, outputs=run.outputs, visible_passed=visible,
                           lint_clean=findings == [], parses=parses)

    async def _council(self, problem: Problem, feedback: bool) -> EvalRow:
        strategy: Strategy = "council" if feedback else "council-nofeedback"
        s = self.settings
        request = DeliberationRequest(
            task=problem_task(problem), role=s.role, num_agents=s.agents, council=self._ablated(s.agents),
            sampling=self._seeded(),
            config=DeliberationConfig(rounds=s.rounds, topology=s.topology, judge=s.judge, feedback=feedback,
                                      prompt_layout=s.prompt_layout, budget_tokens=s.budget_tokens,
                                      timeouts=self.config.timeouts))
        error = None
        try:
            record: DeliberationRecord = await self.fleet.run(request)
        except DeliberationFailedError as e:
            if e.record is None:
                raise
            record, error = e.record, str(e)
        tokens: Spend = {"prompt_tokens": record.tokens.prompt_tokens,
                             "completion_tokens": record.tokens.completion_tokens, "calls": record.tokens.calls}
        detail: dict[str, Any] = {"deliberation_id": record.deliberation_id, "status": record.status,
                                  "early_stop": any(n.startswith("early stop") for n in record.notes),
                                  "failures": len(record.failures)}
        if record.selection is None:
            return self._row(problem, strategy, error=error or "no winner", detail=detail, **tokens)
        winner = record.selection.winner_id
        final = record.winning_proposal()
        assert final is not None  # a selection names one of the record's proposals
        # Every candidate's hidden grade (selection's attribution, and what a selection rule is replayed on).
        hidden = await self._hidden(problem, [p.content for p in record.proposals])
        detail.update(winner=winner, method=record.selection.method, winner_round=final.round,
                      hidden={p.candidate_id: hidden[p.content] for p in record.proposals})
        if self.config.records is not None:
            await asyncio.to_thread(_write_record, self.config.records, problem, strategy, record)
        return await self._graded(problem, strategy, final.content, error=error, detail=detail,
                                  oracle_pool=any(hidden.values()), **tokens)


def record_path(records: Path, problem: str, strategy: str) -> Path:
    """Where `--records` keeps one council's record: `<dir>/HumanEval_9-council.json`."""
    return records / f"{problem.replace('/', '_')}-{strategy}.json"


def _write_record(records: Path, problem: Problem, strategy: Strategy, record: DeliberationRecord) -> None:
    records.mkdir(parents=True, exist_ok=True)
    record_path(records, problem.task_id, strategy).write_text(record.model_dump_json(indent=1))


def _visible_wants(problem: Problem) -> list[tuple[str, str]]:
    """(expression, expected output) of each visible example."""
    return [(ex.source.strip(), ex.want) for ex in visible_examples(problem)]


def _same(got: str | None, want: str) -> bool:
    """Whether a probe's repr matches a doctest's expected output (whitespace-normalised, like the
    doctest suite runs with NORMALIZE_WHITESPACE)."""
    return got is not None and not got.startswith("!") and got.split() == want.split()


"""The deliberation's last stage, apart from its rounds: the probe inputs an agent writes (while the
drafts are written), then every candidate scored, probed and selected among (fleet/selection), each
call inside the token budget, all of it written to the deliberation's ledger.

What this file leaves out: the rules of selection (fleet/selection) and the rounds (rounds.py).
"""

from __future__ import annotations

import asyncio
import time

from fleet.agents.api import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS
from fleet.coordinator.budget import Budget
from fleet.coordinator.ledger import Ledger, agent_failure
from fleet.coordinator.pool import AgentPool
from fleet.messages import AgentReply, Decision, ProbeRequest, SelectRequest
from fleet.schemas.record import PhaseTiming
from fleet.schemas.usage import CallUsage
from fleet.scoring.scorer import Scorer
from fleet.selection.base import Pool
from fleet.selection.behaviour import behaviour
from fleet.selection.probes import parse_written
from fleet.selection.stage import is_code, make_selector, oracle, score_all


class SelectStage:
    """Probe inputs, scores and the winner of one deliberation. architect_id: the pool's agent that
    writes probe inputs and selects among the top candidates (None: the council's first writes them,
    and the fallback selects)."""

    def __init__(self, ledger: Ledger, budget: Budget, pool: AgentPool, scorer: Scorer,
                 architect_id: str | None) -> None:
        self.ledger, self.budget, self.pool, self.scorer = ledger, budget, pool, scorer
        self.architect_id = architect_id
        self.cfg, self.task = ledger.cfg, ledger.request.task
        self._writer: asyncio.Task[list[str]] | None = None  # the probe writer's call, while the drafts run
        self._probe_usage: CallUsage | None = None  # the probe writer's call, recorded with the scores

    # -- probe inputs ----------------------------------------------------------------------------

    def start_probes(self) -> None:
        """Start writing probe inputs, when this deliberation uses them: they need only the task."""
        if self.cfg.probe_inputs and is_code(self.task) and bool(self.architect_id or self.ledger.live):
            self._writer = asyncio.create_task(self._write_probes())

    async def stop_probes(self) -> None:
        """Cancel the probe writer if it still runs (the deliberation ended)."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def written(self) -> list[str]:
        """The agent-written probe inputs (waited for: every proposal is checked on the same ones)."""
        return list(await self._writer) if self._writer is not None else []

    async def _write_probes(self) -> list[str]:
        """Inputs one agent (the architect, else the council's first) writes for the task; [] when its
        call fails (noted: the visible tests' inputs still probe)."""
        writer = self.architect_id or self.ledger.live[0]
        if not self.budget.reserve(PROBE_MAX_TOKENS):
            self.ledger.note("budget: no probe inputs written (the budget left cannot cover the call)")
            return []
        req = ProbeRequest(task=self.task, sampling=self.ledger.request.sampling, layout=self.cfg.prompt_layout)
        t0 = time.perf_counter()
        try:
            reply = await asyncio.wait_for(self.pool.agent(writer).write_probes(req), self.cfg.timeouts.call_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.budget.settle(PROBE_MAX_TOKENS, 0)
            self.ledger.note(f"probe inputs: {writer}'s call failed ({type(e).__name__}); "
                             "the visible tests' inputs only")
            return []
        self.budget.settle(PROBE_MAX_TOKENS, reply.usage.completion_tokens)
        self._probe_usage = self.ledger.spanned(reply, t0, time.perf_counter()).usage
        return parse_written(reply.content)

    # -- scores and the winner -------------------------------------------------------------------

    async def score_and_select(self) -> None:
        """Every proposal of every round is a candidate: scored, probed (code) and selected among."""
        written = await self.written()
        await self._score(written)
        start = time.perf_counter()
        record = self.ledger.record
        for card in record.scores:
            self.ledger.emit("score", card)
        selector = make_selector(self.cfg, self.task, self._ask_architect, self.architect_id)
        try:
            record.selection = await selector.select(
                Pool(self.task, {p.candidate_id: p for p in record.proposals}, record.scores, record.behaviour))
        finally:
            record.timings.append(PhaseTiming(phase="select", round=0, wall_ms=(time.perf_counter() - start) * 1000))
        self.ledger.emit("winner", record.selection)
        self.ledger.check_quorum("select")

    async def _score(self, written: list[str]) -> None:
        """Score cards (the judge within the budget, or left out), the oracle pool and (code) behaviour."""
        start = time.perf_counter()
        record, proposals = self.ledger.record, list(self.ledger.record.proposals)
        if self._probe_usage is not None:
            record.usage.append(self._probe_usage)
        scorer, judge_cap = self.scorer, self.scorer.judge_tokens() * len(proposals)
        if judge_cap and not self.budget.reserve(judge_cap):
            self.ledger.note(f"budget: the judge left out ({self.budget.left()} tokens left, "
                             f"judging may take {judge_cap})")
            scorer, judge_cap = self.scorer.without_judge(), 0
        outcome, cards, notes = await score_all(scorer, self.task, self.ledger.council.role, proposals, self.cfg)
        self.budget.settle(judge_cap, sum(s.judge.usage.completion_tokens for s in outcome.scored if s.judge))
        for failure in outcome.failures:
            record.failures.append(failure)
            self.ledger.emit("failure", failure)
        record.notes += outcome.notes + notes
        record.usage += [s.judge.usage for s in outcome.scored if s.judge]
        record.scores, record.oracle_pool = cards, oracle(cards)
        if is_code(self.task):
            record.behaviour = await behaviour(self.task, proposals, cards, written, self.cfg.sandbox)
        record.timings.append(PhaseTiming(phase="score", round=0, wall_ms=(time.perf_counter() - start) * 1000))

    async def _ask_architect(self, request: SelectRequest) -> tuple[Decision, CallUsage] | str:
        """The architect's decision and its call's usage, or why there is none (the failure recorded)."""
        assert self.architect_id is not None
        if not self.budget.reserve(SELECT_MAX_TOKENS):
            return f"the architect was not asked ({self.budget.left()} tokens of the budget left)"
        t0, used = time.perf_counter(), 0
        reply: AgentReply
        try:
            decision, reply = await asyncio.wait_for(
                self.pool.agent(self.architect_id).select(request), self.cfg.timeouts.call_s)
            used = reply.usage.completion_tokens
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failure = agent_failure(self.architect_id, "select", 0, e, self.cfg.timeouts.call_s)
            self.ledger.record.failures.append(failure)
            self.ledger.emit("failure", failure)
            return f"the architect {self.architect_id} failed ({failure.error_type})"
        finally:
            self.budget.settle(SELECT_MAX_TOKENS, used)
        reply = self.ledger.used(reply, t0, time.perf_counter())
        return decision, reply.usage

"""The deliberation's last stage, apart from its rounds: the probe inputs an agent writes (while the
drafts are written), then every candidate scored, probed and selected among (fleet/selection), each
call inside the token budget. A mixin of `Deliberation` (it reads and writes the same record).

What this file leaves out: the rules of selection (fleet/selection) and the rounds (deliberation.py).
"""

from __future__ import annotations

import asyncio
import time

from fleet.agents.agent import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS
from fleet.coordinator.ledger import agent_failure
from fleet.messages import CallUsage, Decision, ProbeRequest, SelectRequest
from fleet.record import PhaseTiming
from fleet.selection.base import Pool
from fleet.selection.behaviour import behaviour
from fleet.selection.probes import parse_written
from fleet.selection.stage import is_code, make_selector, oracle, score_all


class SelectStage:
    """Methods of `Deliberation` (they use its record, pool, scorer, budget, notes and events)."""

    _writer: asyncio.Task[list[str]] | None
    _probe_usage: CallUsage | None

    async def _written(self) -> list[str]:
        """The agent-written probe inputs (waited for: every proposal is checked on the same ones)."""
        return list(await self._writer) if self._writer is not None else []

    def _writes_probes(self) -> bool:
        return self.cfg.probe_inputs and is_code(self.request.task) and bool(self.architect_id or self.live)

    async def _write_probes(self) -> list[str]:
        """Inputs one agent (the architect, else the council's first) writes for the task; [] when its
        call fails (noted: the visible tests' inputs still probe)."""
        writer = self.architect_id or self.live[0]
        if not self.budget.reserve(PROBE_MAX_TOKENS):
            self._note("budget: no probe inputs written (the budget left cannot cover the call)")
            return []
        req = ProbeRequest(task=self.request.task, sampling=self.request.sampling, layout=self.cfg.prompt_layout)
        t0 = time.perf_counter()
        try:
            reply = await asyncio.wait_for(self.pool.call(writer, "write_probes", req), self.cfg.timeouts.call_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.budget.settle(PROBE_MAX_TOKENS, 0)
            self._note(f"probe inputs: {writer}'s call failed ({type(e).__name__}); the visible tests' inputs only")
            return []
        self.budget.settle(PROBE_MAX_TOKENS, reply.usage.completion_tokens)
        self._probe_usage = self._spanned(reply, t0, time.perf_counter()).usage
        return parse_written(reply.content)

    async def _score_and_select(self, written: list[str]) -> None:
        """Every proposal of every round is a candidate: scored, probed (code) and selected among."""
        start = time.perf_counter()
        task, proposals = self.request.task, list(self.record.proposals)
        if self._probe_usage is not None:
            self.record.usage.append(self._probe_usage)
        scorer, judge_cap = self.scorer, self.scorer.judge_tokens() * len(proposals)
        if judge_cap and not self.budget.reserve(judge_cap):
            self._note(f"budget: the judge left out ({self.budget.left()} tokens left, judging may take {judge_cap})")
            scorer, judge_cap = self.scorer.without_judge(), 0
        outcome, cards, notes = await score_all(scorer, task, self.council.role, proposals, self.cfg)
        self.budget.settle(judge_cap, sum(s.judge.usage.completion_tokens for s in outcome.scored if s.judge))
        for failure in outcome.failures:
            self.record.failures.append(failure)
            self._emit("failure", failure)
        self.record.notes += outcome.notes + notes
        self.record.usage += [s.judge.usage for s in outcome.scored if s.judge]
        self.record.scores, self.record.oracle_pool = cards, oracle(cards)
        if is_code(task):
            self.record.behaviour = await behaviour(task, proposals, cards, written, self.cfg.sandbox)
        self.record.timings.append(PhaseTiming(phase="score", round=0, wall_ms=(time.perf_counter() - start) * 1000))
        start = time.perf_counter()
        for card in self.record.scores:
            self._emit("score", card)
        selector = make_selector(self.cfg, task, self._ask_architect, self.architect_id)
        try:
            self.record.selection = await selector.select(
                Pool(task, {p.candidate_id: p for p in proposals}, cards, self.record.behaviour))
        finally:
            self.record.timings.append(
                PhaseTiming(phase="select", round=0, wall_ms=(time.perf_counter() - start) * 1000))
        self._emit("winner", self.record.selection)
        self._check_quorum("select")

    async def _ask_architect(self, request: SelectRequest) -> tuple[Decision, CallUsage] | str:
        """The architect's decision and its call's usage, or why there is none (the failure recorded)."""
        assert self.architect_id is not None
        if not self.budget.reserve(SELECT_MAX_TOKENS):
            return f"the architect was not asked ({self.budget.left()} tokens of the budget left)"
        t0, used = time.perf_counter(), 0
        try:
            decision, reply = await asyncio.wait_for(
                self.pool.call(self.architect_id, "select", request), self.cfg.timeouts.call_s)
            used = reply.usage.completion_tokens
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failure = agent_failure(self.architect_id, "select", 0, e, self.cfg.timeouts.call_s)
            self.record.failures.append(failure)
            self._emit("failure", failure)
            return f"the architect {self.architect_id} failed ({failure.error_type})"
        finally:
            self.budget.settle(SELECT_MAX_TOKENS, used)
        reply = self._spanned(reply, t0, time.perf_counter())
        self.record.usage.append(reply.usage)
        return decision, reply.usage

"""One deliberation: generate -> check -> (critique -> revise -> check) x rounds -> score -> select.

`Deliberation(request, council, pool, scorer).run()` drives the stages over an `AgentPool` as a
dataflow (`config.dataflow`): each call starts as soon as its inputs exist. The drafts go out at once;
a critique starts as soon as the proposal it reviews and its critic's own are final for the round
before, an author revises as soon as the critiques of its own proposal are in, each new proposal is
checked as soon as it exists; so a fast agent can be a round ahead of a slow one. Whether a round
happens is decided as with a barrier (early stop: while every output of the round before that is in
so far passes its visible tests, the round waits). `dataflow=False` puts a barrier after the drafts
and after each round. Every call runs under the per-call timeout and its stage's (`stage_s` from the
stage's first call); each call's span is in its usage (start_ms, end_ms), each stage's in `timings`.
A call that fails takes its agent out of the deliberation: the failure is recorded (error type and
message), the agent's real earlier output stays in the record, and nothing stands in for it. After
each stage (in a review round: before each revision) the live agents must still reach the quorum,
otherwise `DeliberationFailedError` is raised carrying the partial record. Cancelling `run()`
cancels every call in flight.

`check` runs each new proposal's code against the task's *visible* tests and the linter (in the
sandbox); the result is stored on the proposal and shown to its author and critics in the next
round. When every live proposal passes all visible tests, the remaining rounds are skipped
(`early_stop`). `select` (fleet/selection): every proposal of every round is a candidate; a code
task's candidates run on probe inputs and the consensus of their behaviour chooses (the architect
breaks a near-tie); a prose task's ARCHITECT agent chooses among the top k by total. If it fails, the
fallback decides and the record says why.

`Deliberation` wires the parts and runs the stages in order; the parts are:
- the scheduler: calls.py (one call under its timeouts and the budget; a stage fanned out at once)
  and rounds.py (review rounds as a dataflow, the drafts with them on a fresh run);
- the ledger: ledger.py (record, events, notes, checkpoints, council order, quorum, token totals);
- checks.py (a new proposal checked), repair.py (where repair goes, when review stops),
  select_stage.py (probe inputs, scores, the winner).

What this file leaves out: where agents live (the pool), how proposals are measured (the scorer).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.budget import Budget
from fleet.coordinator.calls import CallRunner
from fleet.coordinator.checks import Checker
from fleet.coordinator.ledger import EventSink, Ledger, agent_failure
from fleet.coordinator.pool import AgentPool
from fleet.coordinator.rounds import ReviewRounds
from fleet.coordinator.select_stage import SelectStage
from fleet.coordinator.state_store import Checkpoint
from fleet.errors import DeliberationFailedError
from fleet.messages import AgentReply, GenerateRequest
from fleet.schemas.record import DeliberationRecord
from fleet.scoring.scorer import Scorer

__all__ = ["Deliberation", "agent_failure", "new_deliberation_id", "plan_deliberation_id"]


def new_deliberation_id() -> str:
    return f"delib-{uuid.uuid4().hex[:16]}"


def plan_deliberation_id(event_id: str, role: str) -> str:
    """The deliberation a plan-approved event starts for a role: the same for every repeat of the event."""
    return f"delib-{hashlib.sha256(f'{event_id}/{role}'.encode()).hexdigest()[:16]}"


class Deliberation:
    def __init__(
        self,
        request: DeliberationRequest,
        council: CouncilSpec,
        pool: AgentPool,
        scorer: Scorer,
        deliberation_id: str | None = None,
        on_event: EventSink | None = None,
        architect_id: str | None = None,
        checkpoint: Checkpoint | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        """on_event(type, payload) is called synchronously for every proposal, critique, revision,
        failure, score card and the winner, in order (the coordinator turns them into SSE events).
        architect_id: the pool's agent that selects among the top k (None: the top total wins).
        on_checkpoint(checkpoint) is called after the drafts and after each review round, once that
        stage's events are out; `checkpoint` (one such) resumes: its stages are not run again.
        Raises ValueError when the quorum is larger than the council."""
        self.request, self.council, self.pool = request, council, pool
        self.cfg = request.config
        self.ledger = Ledger(request, council, deliberation_id or new_deliberation_id(), on_event, on_checkpoint,
                             checkpoint)
        self.budget = Budget(self.cfg.budget_tokens)
        if checkpoint is not None:  # spent before the restart
            self.budget.spent = sum(u.completion_tokens for u in self.ledger.record.usage)
        self.calls = CallRunner(self.ledger, self.budget)
        self.select = SelectStage(self.ledger, self.budget, pool, scorer, architect_id)
        self.checker = Checker(self.ledger, scorer, self.select.written)

    @property
    def record(self) -> DeliberationRecord:
        return self.ledger.record

    @property
    def quorum(self) -> int:
        return self.ledger.quorum

    @property
    def _on_event(self) -> EventSink | None:
        return self.ledger.on_event

    @_on_event.setter
    def _on_event(self, sink: EventSink | None) -> None:  # (tests listen after construction)
        self.ledger.on_event = sink

    async def run(self) -> DeliberationRecord:
        """The whole deliberation under its timeout. Raises `DeliberationFailedError` (carrying the
        partial record) when the quorum is lost or it runs too long; cancelling it cancels every call
        in flight (the partial record says so)."""
        try:
            return await asyncio.wait_for(self._run(), self.cfg.timeouts.deliberation_s)
        except asyncio.CancelledError:
            self.ledger.finish(status="cancelled", error="cancelled")
            raise
        except TimeoutError as e:
            msg = f"deliberation ran past {self.cfg.timeouts.deliberation_s}s"
            self.ledger.finish(status="failed", error=msg)
            raise DeliberationFailedError(msg, self.ledger.record) from e

    async def _run(self) -> DeliberationRecord:
        ledger = self.ledger
        # Agents connect to their engine first, so stage timings measure deliberation, not start-up.
        await self.calls.fan_out("setup", 0, {a: self._ready(a) for a in ledger.live})
        ledger.check_quorum("setup")
        # The probe inputs an agent writes need only the task: written while the drafts are.
        self.select.start_probes()
        try:
            if self.cfg.dataflow and self.cfg.rounds > max(ledger.done_round, 0) and len(ledger.live) >= 2:
                await self._review_rounds(max(ledger.done_round, 0) + 1, self.cfg.rounds,
                                          with_drafts=ledger.done_round < 0)
            else:
                await self._barrier_rounds()
            if self.cfg.rounds == 0:
                ledger.record.notes.append("rounds=0: review skipped as requested")
            await self.select.score_and_select()
        finally:
            await self.select.stop_probes()
        ledger.finish()
        return ledger.record

    def _ready(self, agent_id: str) -> Callable[[], Awaitable[str]]:
        return lambda: self.pool.agent(agent_id).ready()

    def _generate(self, agent_id: str, req: GenerateRequest) -> Callable[[], Awaitable[AgentReply]]:
        return lambda: self.pool.agent(agent_id).generate(req)

    async def _barrier_rounds(self) -> None:
        """The drafts (unless resumed past them), then each review round after the one before it."""
        ledger = self.ledger
        if ledger.done_round < 0:
            gen = GenerateRequest(task=self.request.task, sampling=self.request.sampling,
                                  layout=self.cfg.prompt_layout)
            drafters = [a for a in list(ledger.live) if self.calls.afford("generate", 0, a)]
            replies = await self.calls.fan_out("generate", 0, {a: self._generate(a, gen) for a in drafters},
                                               used=ledger.used)
            for a in drafters:
                self.budget.settle(self.calls.cap(a, "generate"),
                                   replies[a].usage.completion_tokens if a in replies else 0)
            await self.checker.add_all(0, replies)
            ledger.check_quorum("generate")
            ledger.checkpoint(0)
        for r in range(ledger.done_round + 1, self.cfg.rounds + 1):
            if not await self._review_rounds(r, r):  # (it decides whether round r happens, and notes why not)
                break

    async def _review_rounds(self, first: int, last: int, with_drafts: bool = False) -> list[int]:
        """Review rounds first..last as a dataflow (rounds.py); returns the rounds that ran."""
        return await ReviewRounds(self.ledger, self.calls, self.checker, self.pool, first, last, with_drafts).run()

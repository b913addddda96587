"""One deliberation: generate -> (critique -> revise) x rounds -> score -> select.

`Deliberation(request, council, pool, scorer).run()` drives the stages over an `AgentPool`. Each
stage fans out all of its calls at once and gathers them under the per-call and per-stage timeouts.
A call that fails takes its agent out of the deliberation: the failure is recorded (error type and
message), the agent's real earlier output stays in the record, and nothing stands in for it. After
each stage the live agents must still reach the quorum, otherwise `DeliberationFailedError` is
raised carrying the partial record. Cancelling `run()` cancels every call in flight.

What this file leaves out: where agents live (the pool), how proposals are measured (the scorer).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.pool import AgentPool
from fleet.coordinator.topology import review_pairs
from fleet.errors import AgentCallError, DeliberationFailedError, EngineTimeoutError
from fleet.messages import (
    AgentReply,
    CritiqueRequest,
    GenerateRequest,
    ReceivedCritique,
    ReviseRequest,
    Stage,
)
from fleet.record import (
    AgentFailure,
    Critique,
    DeliberationRecord,
    EventType,
    PhaseTiming,
    Proposal,
    TokenTotals,
)
from fleet.scoring.ranking import rank, select_top_k
from fleet.scoring.scorer import Scorer


def new_deliberation_id() -> str:
    return f"delib-{uuid.uuid4().hex[:16]}"


def _error_type(e: BaseException) -> str:
    return e.cause_type if isinstance(e, AgentCallError) and e.cause_type else type(e).__name__


class Deliberation:
    def __init__(
        self,
        request: DeliberationRequest,
        council: CouncilSpec,
        pool: AgentPool,
        scorer: Scorer,
        deliberation_id: str | None = None,
        on_event: Callable[[EventType, Any], None] | None = None,
    ) -> None:
        """on_event(type, payload) is called synchronously for every proposal, critique, revision,
        failure, score card and the winner, in order (the coordinator turns them into SSE events)."""
        self.request, self.council, self.pool, self.scorer = request, council, pool, scorer
        self._on_event = on_event
        self.cfg = request.config
        n = len(council.agents)
        self.quorum = self.cfg.quorum or n // 2 + 1
        if self.quorum > n:
            raise ValueError(f"quorum {self.quorum} is larger than the council ({n} agents)")
        self.record = DeliberationRecord(
            deliberation_id=deliberation_id or new_deliberation_id(),
            status="completed",
            task=request.task,
            council=council,
            config=self.cfg,
            quorum=self.quorum,
            started_at=datetime.now(UTC),
        )
        self.live: list[str] = [a.agent_id for a in council.agents]
        self._noted_failures = 0

    def _emit(self, kind: EventType, payload: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, payload)

    def _add_proposal(self, proposal: Proposal) -> None:
        self.record.proposals.append(proposal)
        self._emit("proposal" if proposal.round == 0 else "revision", proposal)

    # -- stage machinery -------------------------------------------------------------------------

    async def _fan_out(
        self, stage: Stage, round_: int, calls: dict[Hashable, tuple[str, Callable[[], Awaitable[Any]]]]
    ) -> dict[Hashable, Any]:
        """Run every call at once. calls: key -> (agent_id, call). Returns key -> reply for the calls
        that succeeded; each failed call is recorded and takes its agent out."""
        tasks = {key: asyncio.create_task(asyncio.wait_for(fn(), self.cfg.timeouts.call_s))
                 for key, (_, fn) in calls.items()}
        start = time.perf_counter()
        timed_out: set[asyncio.Task] = set()
        try:
            if tasks:
                _, pending = await asyncio.wait(tasks.values(), timeout=self.cfg.timeouts.stage_s)
                timed_out = set(pending)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        finally:
            self.record.timings.append(
                PhaseTiming(phase=stage, round=round_, wall_ms=(time.perf_counter() - start) * 1000))  # type: ignore[arg-type]
        if any(t.cancelled() and t not in timed_out for t in tasks.values()):
            raise asyncio.CancelledError(f"{stage} calls were cancelled from outside")
        replies: dict[Hashable, Any] = {}
        for key, task in tasks.items():
            agent_id = calls[key][0]
            if task in timed_out:
                err: BaseException | None = EngineTimeoutError(f"stage {stage} ran past {self.cfg.timeouts.stage_s}s")
            else:
                err = task.exception()
            if err is None:
                replies[key] = task.result()
                if isinstance(replies[key], AgentReply):
                    self.record.usage.append(replies[key].usage)
            else:
                if isinstance(err, TimeoutError):
                    err = EngineTimeoutError(f"call ran past {self.cfg.timeouts.call_s}s")
                self._fail(agent_id, stage, round_, err)
        return replies

    def _fail(self, agent_id: str, stage: Stage, round_: int, err: BaseException) -> None:
        failure = AgentFailure(agent_id=agent_id, stage=stage, round=round_, error_type=_error_type(err),
                               message=str(err)[:2000])
        self.record.failures.append(failure)
        self._emit("failure", failure)
        if agent_id in self.live:
            self.live.remove(agent_id)

    def _check_quorum(self, after: str) -> None:
        failed = sorted(self.record.failed_agents() - {"judge"})
        if failed:
            self.record.status = "degraded"
        if len(self.live) < self.quorum:
            msg = (f"quorum lost after {after}: {len(self.live)} live agent(s) of {len(self.council.agents)}, "
                   f"quorum is {self.quorum}; failed: {failed}")
            self._finish(status="failed", error=msg)
            raise DeliberationFailedError(msg, self.record)
        if len(failed) > self._noted_failures and after != "select":
            self._noted_failures = len(failed)
            self.record.notes.append(f"after {after}: continuing with {len(self.live)} live agents "
                                     f"(quorum {self.quorum}); failed so far: {failed}")

    def _finish(self, status: str | None = None, error: str | None = None) -> None:
        r = self.record
        if status:
            r.status = status  # type: ignore[assignment]
        r.error = error
        r.tokens = TokenTotals(calls=len(r.usage), prompt_tokens=sum(u.prompt_tokens for u in r.usage),
                               completion_tokens=sum(u.completion_tokens for u in r.usage))
        r.duration_ms = (datetime.now(UTC) - r.started_at).total_seconds() * 1000

    # -- the stages ------------------------------------------------------------------------------

    async def run(self) -> DeliberationRecord:
        try:
            return await asyncio.wait_for(self._run(), self.cfg.timeouts.deliberation_s)
        except asyncio.CancelledError:
            self._finish(status="cancelled", error="cancelled")  # the partial record says so
            raise
        except TimeoutError as e:
            msg = f"deliberation ran past {self.cfg.timeouts.deliberation_s}s"
            self._finish(status="failed", error=msg)
            raise DeliberationFailedError(msg, self.record) from e

    async def _run(self) -> DeliberationRecord:
        task, role = self.request.task, self.council.role
        # Agents connect to their engine first, so stage timings measure deliberation, not start-up.
        await self._fan_out("setup", 0, {a: (a, lambda a=a: self.pool.call(a, "ready")) for a in self.live})
        self._check_quorum("setup")
        gen = GenerateRequest(task=task)
        replies = await self._fan_out("generate", 0, {
            a: (a, lambda a=a: self.pool.call(a, "generate", gen)) for a in self.live})
        current: dict[str, str] = {}
        for a, reply in replies.items():
            self._add_proposal(Proposal(author_id=a, role=role, round=0, content=reply.content, usage=reply.usage))
            current[a] = reply.content
        self._check_quorum("generate")

        for r in range(1, self.cfg.rounds + 1):
            if len(self.live) < 2:
                self.record.notes.append(f"round {r}: skipped review, fewer than 2 live agents")
                break
            await self._review_round(r, current)
        if self.cfg.rounds == 0:
            self.record.notes.append("rounds=0: review skipped as requested")

        await self._score_and_select({a: current[a] for a in self.live})
        self._finish()
        return self.record

    async def _review_round(self, r: int, current: dict[str, str]) -> None:
        task, role = self.request.task, self.council.role
        pairs = review_pairs(list(self.live), self.cfg.topology)
        max_tokens = self.cfg.critique_max_tokens
        calls: dict[Hashable, tuple[str, Callable[[], Awaitable[AgentReply]]]] = {}
        for critic, author in pairs:
            req = CritiqueRequest(task=task, round=r, author_id=author, proposal=current[author])
            calls[(critic, author)] = (critic, lambda c=critic, q=req: self.pool.call(c, "critique", q,
                                                                                      max_tokens=max_tokens))
        replies = await self._fan_out("critique", r, calls)
        received: dict[str, list[ReceivedCritique]] = {a: [] for a in self.live}
        for (critic, author), reply in replies.items():
            critique = Critique(critic_id=critic, author_id=author, round=r, content=reply.content, usage=reply.usage)
            self.record.critiques.append(critique)
            self._emit("critique", critique)
            if author in received:
                received[author].append(ReceivedCritique(critic_id=critic, content=reply.content))
        self._check_quorum(f"critique round {r}")

        unreviewed = [a for a in self.live if not received.get(a)]
        if unreviewed:
            self.record.notes.append(f"round {r}: {unreviewed} received no critique and keep their proposal")
        revise_calls: dict[Hashable, tuple[str, Callable[[], Awaitable[AgentReply]]]] = {}
        for a in self.live:
            if received.get(a):
                req = ReviseRequest(task=task, round=r, proposal=current[a], critiques=received[a])
                revise_calls[a] = (a, lambda a=a, q=req: self.pool.call(a, "revise", q))
        replies = await self._fan_out("revise", r, revise_calls)
        for a, reply in replies.items():
            self._add_proposal(Proposal(author_id=a, role=role, round=r, content=reply.content, usage=reply.usage))
            current[a] = reply.content
        self._check_quorum(f"revise round {r}")

    async def _score_and_select(self, finals: dict[str, str]) -> None:
        start = time.perf_counter()
        outcome = await self.scorer.score(self.request.task, self.council.role, finals, self.cfg.timeouts.call_s)
        for failure in outcome.failures:
            self.record.failures.append(failure)
            self._emit("failure", failure)
        self.record.notes += outcome.notes
        self.record.usage += [s.judge.usage for s in outcome.scored if s.judge]
        self.record.scores = rank({s.author_id: (s.checks, s.judge) for s in outcome.scored}, self.cfg.judge_weight)
        self.record.timings.append(PhaseTiming(phase="score", round=0, wall_ms=(time.perf_counter() - start) * 1000))
        start = time.perf_counter()
        for card in self.record.scores:
            self._emit("score", card)
        self.record.selection = select_top_k(self.record.scores, self.request.task.k)
        self._emit("winner", self.record.selection)
        self.record.timings.append(PhaseTiming(phase="select", round=0, wall_ms=(time.perf_counter() - start) * 1000))
        self._check_quorum("select")


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

What this file leaves out: where agents live (the pool), how proposals are measured (the scorer).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.budget import Budget, call_cap
from fleet.coordinator.ledger import agent_failure, busy_s, in_council_order, timed
from fleet.coordinator.pool import AgentPool
from fleet.coordinator.repair import consensus_stop, disagreement, may_still_stop, needs_repair, worth_revising
from fleet.coordinator.select_stage import SelectStage
from fleet.coordinator.topology import review_pairs
from fleet.errors import BudgetExhaustedError, DeliberationFailedError, EngineTimeoutError
from fleet.messages import (
    AgentReply,
    CallUsage,
    CritiqueRequest,
    ExecutionFeedback,
    GenerateRequest,
    ReceivedCritique,
    ReviseRequest,
    Stage,
)
from fleet.record import (
    Checkpoint,
    Critique,
    DeliberationRecord,
    EventType,
    PhaseTiming,
    Proposal,
    TokenTotals,
)
from fleet.scoring.scorer import Scorer
from fleet.selection.stage import is_code


def new_deliberation_id() -> str:
    return f"delib-{uuid.uuid4().hex[:16]}"


def plan_deliberation_id(event_id: str, role: str) -> str:
    """The deliberation a plan-approved event starts for a role: the same for every repeat of the event."""
    return f"delib-{hashlib.sha256(f'{event_id}/{role}'.encode()).hexdigest()[:16]}"


class Deliberation(SelectStage):
    def __init__(
        self,
        request: DeliberationRequest,
        council: CouncilSpec,
        pool: AgentPool,
        scorer: Scorer,
        deliberation_id: str | None = None,
        on_event: Callable[[EventType, Any], None] | None = None,
        architect_id: str | None = None,
        checkpoint: Checkpoint | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        """on_event(type, payload) is called synchronously for every proposal, critique, revision,
        failure, score card and the winner, in order (the coordinator turns them into SSE events).
        architect_id: the pool's agent that selects among the top k (None: the top total wins).
        on_checkpoint(checkpoint) is called after the drafts and after each review round, once that
        stage's events are out; `checkpoint` (one such) resumes: its stages are not run again."""
        self.request, self.council, self.pool, self.scorer = request, council, pool, scorer
        self.architect_id = architect_id
        self._on_event = on_event
        self._on_checkpoint = on_checkpoint
        # While a round runs beside the one before it, its events wait for that one's checkpoint: the
        # events before a checkpoint are exactly those of its record (a resume drops the later ones).
        self._held: list[tuple[EventType, Any]] | None = None
        self._note_round: dict[int, int] = {}  # index in record.notes -> the round that wrote it (if not 0)
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
            sampling=request.sampling,
            quorum=self.quorum,
            started_at=datetime.now(UTC),
        )
        self._t0 = time.perf_counter()  # spans are in ms after this
        self.live: list[str] = [a.agent_id for a in council.agents]
        self._noted_failures = 0
        self._probe_usage: CallUsage | None = None  # the probe writer's call, recorded with the scores
        self.budget = Budget(self.cfg.budget_tokens)
        self._writer: asyncio.Task[list[str]] | None = None  # the probe writer's call, while the drafts run
        self.current: dict[str, Proposal] = {}  # author -> its latest proposal
        self.done_round = -1  # the last completed stage: -1 none, 0 the drafts, r review round r
        if checkpoint is not None:
            self.record = checkpoint.record.model_copy(deep=True)
            self.live, self.done_round = list(checkpoint.live), checkpoint.round
            self.budget.spent = sum(u.completion_tokens for u in self.record.usage)  # spent before the restart
            for p in self.record.proposals:  # in order: the last one of each author is its current
                self.current[p.author_id] = p
            self._noted_failures = len(self.record.failed_agents() & {a.agent_id for a in council.agents})
            done = "the drafts" + (f" and review rounds 1..{self.done_round}" if self.done_round else "")
            self.record.notes.append(f"resumed after a coordinator restart: {done} kept, not run again")

    def _shown(self, author: str) -> ExecutionFeedback | None:
        """What the agents are told about `author`'s code (nothing with `feedback=False`)."""
        return self.current[author].feedback if self.cfg.feedback else None

    def _emit(self, kind: EventType, payload: Any) -> None:
        round_ = payload.round if kind in ("proposal", "revision", "critique", "failure") else 0
        if self._held is not None and round_ > self.done_round + 1:
            self._held.append((kind, payload))
        elif self._on_event is not None:
            self._on_event(kind, payload)

    def _release(self, everything: bool = False) -> None:
        """Emit the held events that the last checkpoint lets out (everything: all of them, and hold
        no more), in the order they came."""
        held, self._held = self._held or [], None if everything else []
        for kind, payload in held:
            if not everything:
                self._emit(kind, payload)  # (held again if its round is still ahead)
            elif self._on_event is not None:
                self._on_event(kind, payload)

    def _note(self, text: str, round_: int = 0) -> None:
        if round_:
            self._note_round[len(self.record.notes)] = round_
        self.record.notes.append(text)

    def _checkpoint(self, round_: int) -> None:
        self.done_round = round_
        if self._on_checkpoint is not None:
            self._on_checkpoint(Checkpoint(round=round_, live=list(self.live),
                                           record=self.record.model_copy(deep=True)))

    async def _add_proposals(self, round_: int, replies: dict[Hashable, Any]) -> None:
        """Check each new proposal's code against the visible tests (one `check` phase), then
        record and announce it."""
        start = time.perf_counter()
        authors = list(replies)
        probes = await self._written()
        feedback = await asyncio.gather(*(self.scorer.feedback(self.request.task, self.council.role,
                                                              replies[a].content, probes) for a in authors))
        if any(f is not None for f in feedback):
            self.record.timings.append(
                PhaseTiming(phase="check", round=round_, wall_ms=(time.perf_counter() - start) * 1000))
        for a, fb in zip(authors, feedback, strict=True):
            self._add_proposal(round_, a, replies[a], fb)

    async def _add_checked(self, round_: int, author: str, reply: AgentReply,
                           spans: list[tuple[float, float]]) -> None:
        """Check one new proposal (its span added to `spans` when there was something to check),
        then record and announce it."""
        t0 = time.perf_counter()
        fb = await self.scorer.feedback(self.request.task, self.council.role, reply.content, await self._written())
        if fb is not None:
            spans.append((t0, time.perf_counter()))
        self._add_proposal(round_, author, reply, fb)

    def _add_proposal(self, round_: int, author: str, reply: AgentReply, feedback: ExecutionFeedback | None) -> None:
        """Record and announce one checked proposal; it becomes its author's current one."""
        parent = self.current[author].candidate_id if author in self.current else None
        proposal = Proposal(author_id=author, role=self.council.role, round=round_, content=reply.content,
                            usage=reply.usage, feedback=feedback, parent_id=parent)
        self.record.proposals.append(proposal)
        self.current[author] = proposal
        self._emit("proposal" if round_ == 0 else "revision", proposal)

    def _stops_early(self) -> str:
        """Why review stops here ('' when it goes on): every live proposal passes all its visible tests,
        or (code) the leading behaviour group passes them all and holds a majority (repair.py)."""
        fbs = [self.current[a].feedback for a in self.live]
        if not (self.cfg.early_stop and self.cfg.feedback and fbs):
            return ""
        if all(f is not None and f.all_passed for f in fbs):
            return "every live proposal passes all visible tests"
        if is_code(self.request.task) and (lead := consensus_stop(fbs)):
            return f"on consensus, {lead} of {len(fbs)} live proposals agree and pass all visible tests"
        return ""

    def _may_stop_early(self, settled: list[str]) -> bool:
        """Whether the outputs of a round still in flight could end in an early stop: while every one
        in so far (`settled`: their authors) passes all its visible tests, or (code) while no more fail
        than a majority can spare."""
        if not (self.cfg.early_stop and self.cfg.feedback and self.request.task.visible_tests):
            return False
        fbs = [self.current[a].feedback for a in settled if a in self.live]
        if is_code(self.request.task):
            return may_still_stop(fbs, len(self.live))
        return all(f is not None and f.all_passed for f in fbs)

    def _shown_for_repair(self, author: str, k: int) -> ExecutionFeedback | None:
        """What an author and its critics are shown in round k, with where it differs from the leading
        group of the live agents' proposals of round k-1 when it passes (code tasks)."""
        fb = self._shown(author)
        if fb is None or not is_code(self.request.task) or fb.failing:
            return fb
        latest = {p.author_id: p for p in self.record.proposals if p.round < k}  # (in order: the last wins)
        others = [latest[a].feedback for a in self.live if a in latest]
        return fb.model_copy(update={"disagreement": disagreement(fb, others)})

    def _aimed_at(self, author: str) -> bool:
        """Whether `author`'s proposal gets critiques and a revision: on a code task with feedback on,
        only one that fails (repair.py); otherwise every one."""
        if not (self.cfg.feedback and is_code(self.request.task)):
            return True
        return needs_repair(self.current[author].feedback)

    # -- stage machinery -------------------------------------------------------------------------

    async def _fan_out(
        self, stage: Stage, round_: int, calls: dict[Hashable, tuple[str, Callable[[], Awaitable[Any]]]]
    ) -> dict[Hashable, Any]:
        """Run every call at once. calls: key -> (agent_id, call). Returns key -> reply for the calls
        that succeeded; each failed call is recorded and takes its agent out."""
        tasks = {key: asyncio.create_task(asyncio.wait_for(timed(fn), self.cfg.timeouts.call_s))
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
                reply, t0, t1 = task.result()
                if isinstance(reply, AgentReply):
                    reply = self._spanned(reply, t0, t1)
                    self.record.usage.append(reply.usage)
                replies[key] = reply
            else:
                self._fail(agent_id, stage, round_, err)
        return replies

    def _spanned(self, reply: AgentReply, t0: float, t1: float) -> AgentReply:
        span = {"start_ms": (t0 - self._t0) * 1000, "end_ms": (t1 - self._t0) * 1000}
        return reply.model_copy(update={"usage": reply.usage.model_copy(update=span)})

    async def _call(self, stage: Stage, round_: int, agent_id: str, fn: Callable[[], Awaitable[AgentReply]],
                    deadline: float, spans: list[tuple[float, float]]) -> AgentReply | None:
        """One call of a pipelined stage, under the call timeout and the stage's `deadline`
        (perf_counter). Returns the reply (its usage recorded), or None: the failure is recorded and
        the agent is out. Cancellation propagates."""
        if not self._afford(stage, round_, agent_id):
            return None
        cap, used = call_cap(self.request, self.council, agent_id, stage), 0
        t0 = time.perf_counter()
        timeout = min(self.cfg.timeouts.call_s, deadline - t0)
        try:
            if timeout <= 0:
                raise EngineTimeoutError(f"stage {stage} ran past {self.cfg.timeouts.stage_s}s")
            reply = await asyncio.wait_for(fn(), timeout)
            used = reply.usage.completion_tokens
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if isinstance(e, TimeoutError) and timeout < self.cfg.timeouts.call_s:
                e = EngineTimeoutError(f"stage {stage} ran past {self.cfg.timeouts.stage_s}s")
            spans.append((t0, time.perf_counter()))
            self._fail(agent_id, stage, round_, e)
            return None
        finally:
            self.budget.settle(cap, used)
        t1 = time.perf_counter()
        spans.append((t0, t1))
        reply = self._spanned(reply, t0, t1)
        self.record.usage.append(reply.usage)
        return reply

    def _afford(self, stage: Stage, round_: int, agent_id: str) -> bool:
        """Reserve a call's max_tokens in the budget; when the rest cannot cover them it does not start:
        a draft's agent is out (a failure), a critique or revision is skipped (noted once per stage)."""
        cap = call_cap(self.request, self.council, agent_id, stage)
        if self.budget.reserve(cap):
            return True
        why = f"budget: {self.budget.left()} of {self.cfg.budget_tokens} tokens left, a {stage} call may take {cap}"
        if stage == "generate":
            self._fail(agent_id, stage, round_, BudgetExhaustedError(why))
        elif not any(n.startswith(f"budget: {stage} calls of round {round_}") for n in self.record.notes):
            self._note(f"budget: {stage} calls of round {round_} not started from here on ({why})", round_)
        return False

    def _fail(self, agent_id: str, stage: Stage, round_: int, err: BaseException) -> None:
        failure = agent_failure(agent_id, stage, round_, err, self.cfg.timeouts.call_s)
        self.record.failures.append(failure)
        self._emit("failure", failure)
        if agent_id in self.live:
            self.live.remove(agent_id)

    def _check_quorum(self, after: str, round_: int = 0) -> None:
        failed = sorted(self.record.failed_agents() & {a.agent_id for a in self.council.agents})
        if failed:
            self.record.status = "degraded"
        if len(self.live) < self.quorum:
            last = self.record.failures[-1]  # the error says why, not only who
            msg = (f"quorum lost after {after}: {len(self.live)} live agent(s) of {len(self.council.agents)}, "
                   f"quorum is {self.quorum}; failed: {failed}; last failure: {last.agent_id} "
                   f"{last.error_type}: {last.message[:300]}")
            self._finish(status="failed", error=msg)
            raise DeliberationFailedError(msg, self.record)
        if len(failed) > self._noted_failures and after != "select":
            self._noted_failures = len(failed)
            self._note(f"after {after}: continuing with {len(self.live)} live agents (quorum {self.quorum}); "
                       f"failed so far: {failed}", round_)

    def _finish(self, status: str | None = None, error: str | None = None) -> None:
        r = self.record
        if status:
            r.status = status  # type: ignore[assignment]
        r.error = error
        r.tokens = TokenTotals.of(r.usage)
        r.stage_tokens = {s: sum(u.completion_tokens for u in r.usage if u.stage == s)
                          for s in dict.fromkeys(u.stage for u in r.usage)}
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
        # Agents connect to their engine first, so stage timings measure deliberation, not start-up.
        await self._fan_out("setup", 0, {a: (a, lambda a=a: self.pool.call(a, "ready")) for a in self.live})
        self._check_quorum("setup")
        # The probe inputs an agent writes need only the task: written while the drafts are.
        writer = asyncio.create_task(self._write_probes()) if self._writes_probes() else None
        self._writer = writer
        try:
            if self.cfg.dataflow and self.cfg.rounds > max(self.done_round, 0) and len(self.live) >= 2:
                await self._review_rounds(max(self.done_round, 0) + 1, with_drafts=self.done_round < 0)
            else:
                await self._barrier_rounds()
            if self.cfg.rounds == 0:
                self.record.notes.append("rounds=0: review skipped as requested")
            await self._score_and_select(await self._written())
        finally:
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        self._finish()
        return self.record

    async def _barrier_rounds(self) -> None:
        """The drafts (unless resumed past them), then each review round after the one before it."""
        if self.done_round < 0:
            gen = GenerateRequest(task=self.request.task, sampling=self.request.sampling,
                                  layout=self.cfg.prompt_layout)
            drafters = [a for a in list(self.live) if self._afford("generate", 0, a)]
            replies = await self._fan_out("generate", 0, {
                a: (a, lambda a=a: self.pool.call(a, "generate", gen)) for a in drafters})
            for a in drafters:
                self.budget.settle(call_cap(self.request, self.council, a, "generate"),
                                   replies[a].usage.completion_tokens if a in replies else 0)
            await self._add_proposals(0, replies)
            self._check_quorum("generate")
            self._checkpoint(0)
        for r in range(self.done_round + 1, self.cfg.rounds + 1):
            if not await self._review_rounds(r, last=r):  # (it decides whether round r happens, and notes why not)
                break

    async def _review_rounds(self, first: int, with_drafts: bool = False, last: int | None = None) -> list[int]:
        """Review rounds `first`..`last` (default: the config's `rounds`) as a dataflow: a critique of round k
        starts as soon as the proposal it reviews and its critic's own are final for round k-1 (the
        critic's own: an agent whose last step failed is out before it reviews, as with a barrier, so
        a failed agent is one failure in the record), an author revises as soon as its own critiques
        are in, each new proposal is checked at once. So one agent can be in round k+1 while a slower
        one is still in round k.

        Whether round k happens is decided as with a barrier, from round k-1's outputs: it does not if
        fewer than 2 agents are live or every one passes all its visible tests (early stop); while every
        output in so far passes, the round waits, and the first that fails opens it. with_drafts (a
        fresh run): the drafts are made here too, as round 0. The (critic, author) pairs are those of
        the agents live at the start, for every round; a pair whose critic or author has dropped out is
        skipped (the barrier re-pairs a ring each round). Quorum is checked before each revision.

        When every output of round k is in, round k is checkpointed: the record as a barrier would have
        it after round k (later rounds' critiques, revisions, usage, failures and notes left out), and
        the events of round k+1 are held back until then, so the events before a checkpoint are
        exactly those of its record (a resume drops the later ones and runs them again). Returns the
        rounds that ran."""
        task, cfg = self.request.task, self.cfg
        last = cfg.rounds if last is None else last
        loop = asyncio.get_running_loop()
        agents = list(self.live)
        order = {a: i for i, a in enumerate(agents)}
        pairs = review_pairs(agents, cfg.topology)
        c0, p0, u0, f0 = (len(self.record.critiques), len(self.record.proposals), len(self.record.usage),
                          len(self.record.failures))
        base = first - 1  # the round whose outputs the first review round starts from
        rounds = range(base, last + 1)
        out: dict[int, dict[str, asyncio.Future[bool]]] = {k: {a: loop.create_future() for a in agents}
                                                            for k in rounds}
        pending = {k: set(agents) for k in rounds}
        complete = {k: loop.create_future() for k in rounds}  # every output of round k is in
        go: dict[int, asyncio.Future[bool]] = {k: loop.create_future() for k in range(first, last + 1)}
        spans: dict[tuple[str, int], list[tuple[float, float]]] = {}
        clocks: dict[tuple[str, int], float] = {}  # each stage's clock starts with its first call
        timed: set[int] = set() if with_drafts else {base}  # a resume's base round is checkpointed already
        kept: dict[int, list[str]] = {}

        def happens(k: int) -> bool:
            return go[k].done() and go[k].result()

        def span(stage: str, k: int) -> list[tuple[float, float]]:
            return spans.setdefault((stage, k), [])

        def deadline(stage: str, k: int) -> float:
            return clocks.setdefault((stage, k), time.perf_counter() + cfg.timeouts.stage_s)

        def time_round(k: int) -> None:
            if k in timed:
                return
            timed.add(k)
            stages = ("generate", "check") if k == 0 else ("critique", "revise", "check")
            for stage in stages:
                if spans.get((stage, k)) or stage != "check":
                    self.record.timings.append(  # type: ignore[arg-type]
                        PhaseTiming(phase=stage, round=k, wall_ms=busy_s(span(stage, k)) * 1000))

        def decide(k: int) -> None:
            """Round k happens or not, once round k-1's outputs tell (see the docstring)."""
            if k > last or go[k].done():
                return
            if not pending[k - 1]:
                if len(self.live) < 2:
                    self._note(f"round {k}: skipped review, fewer than 2 live agents", k)
                elif why := self._stops_early():
                    self._note(f"early stop: {why} after {'the drafts' if k == 1 else f'round {k - 1}'}; "
                               f"rounds {k}..{cfg.rounds} skipped", k)
                else:
                    go[k].set_result(True)
                    return
                for j in range(k, last + 1):
                    go[j].set_result(False)
            elif (settled := [a for a in agents if a not in pending[k - 1] and a in self.live]) \
                    and not self._may_stop_early(settled):
                # (on an output that is in: an agent dropping out says nothing about the round)
                go[k].set_result(True)

        def settle(a: str, k: int, ok: bool) -> None:
            """a's output of round k is final (ok), or a is out (not ok): then of every later round too."""
            for j in range(k, last + 1 if ok is False else k + 1):
                if a in pending[j]:
                    pending[j].discard(a)
                    out[j][a].set_result(ok)
                if not pending[j] and not complete[j].done():
                    complete[j].set_result(True)
            for j in range(k, last + 1):
                decide(j + 1)
                if pending[j] or j in timed or not (j == 0 or happens(j)):
                    break
                if kept.get(j):
                    self._note(f"round {j}: {kept[j]} received no critique and keep their proposal", j)
                time_round(j)
                self._checkpoint_upto(j, order, pairs, c0, p0, u0, f0)

        async def draft(a: str) -> None:
            gen = GenerateRequest(task=task, sampling=self.request.sampling, layout=cfg.prompt_layout)
            reply = await self._call("generate", 0, a, lambda: self.pool.call(a, "generate", gen),
                                     deadline("generate", 0), span("generate", 0))
            if reply is None:
                self._check_quorum("generate")
            else:
                await self._add_checked(0, a, reply, span("check", 0))
            settle(a, 0, reply is not None)

        async def aimed(a: str, k: int) -> bool:
            """Whether a's proposal of round k-1 is repaired in round k: it fails, or (once every output of
            round k-1 is in, so the same seeds give the same record) it disagrees with the leading group."""
            if self._aimed_at(a):
                return True
            await complete[k - 1]
            return bool(self._shown_for_repair(a, k).disagreement)  # type: ignore[union-attr]

        async def ready(a: str, k: int) -> bool:
            """a's proposal of round k-1 is final and round k happens."""
            return await out[k - 1][a] and await go[k]

        async def review(critic: str, author: str, k: int) -> AgentReply | None:
            if not await ready(author, k) or not await ready(critic, k) or critic not in self.live:
                return None
            if not await aimed(author, k):  # repair aimed at failures: a passing proposal is not reviewed
                return None
            req = CritiqueRequest(task=task, round=k, author_id=author, proposal=self.current[author].content,
                                  feedback=self._shown_for_repair(author, k), sampling=self.request.sampling,
                                  layout=cfg.prompt_layout)
            return await self._call("critique", k, critic,
                                    lambda: self.pool.call(critic, "critique", req,
                                                           max_tokens=cfg.critique_max_tokens),
                                    deadline("critique", k), span("critique", k))

        reviews = {(c, a, k): asyncio.create_task(review(c, a, k)) for k in range(first, last + 1) for c, a in pairs}

        async def author_flow(a: str) -> None:
            for k in range(first, last + 1):
                if not await ready(a, k):
                    return
                received: list[ReceivedCritique] = []
                for critic, author in pairs:
                    if author != a or (reply := await reviews[(critic, a, k)]) is None:
                        continue
                    c = Critique(critic_id=critic, author_id=a, round=k, content=reply.content, usage=reply.usage)
                    self.record.critiques.append(c)
                    self._emit("critique", c)
                    received.append(ReceivedCritique(critic_id=critic, content=reply.content))
                self._check_quorum(f"critique round {k}", k)
                if a not in self.live:  # one of its own calls failed meanwhile: it is out
                    settle(a, k, False)
                    return
                # An author revises with the critiques it received and what its code did; one with
                # neither keeps its proposal.
                if not await aimed(a, k) or (not received and not worth_revising(self._shown_for_repair(a, k))):
                    kept.setdefault(k, []).append(a)
                    settle(a, k, True)
                    continue
                req = ReviseRequest(task=task, round=k, proposal=self.current[a].content, critiques=received,
                                    feedback=self._shown_for_repair(a, k), sampling=self.request.sampling,
                                    layout=cfg.prompt_layout)
                reply = await self._call("revise", k, a, lambda req=req: self.pool.call(a, "revise", req),
                                         deadline("revise", k), span("revise", k))
                if reply is not None:
                    await self._add_checked(k, a, reply, span("check", k))
                settle(a, k, reply is not None)
                if reply is None:
                    return

        self._held = []
        drafts = [asyncio.create_task(draft(a)) for a in agents] if with_drafts else []
        if not with_drafts:
            for a in agents:
                settle(a, base, True)
        flows = [asyncio.create_task(author_flow(a)) for a in agents]
        everything = [*drafts, *reviews.values(), *flows]
        try:
            # A lost quorum (or a bug) ends the rounds, as does a call cancelled from outside; the
            # drafts are watched too (a failed draft can lose the quorum, and others wait for it).
            waiting: set[asyncio.Task] = {*drafts, *flows}
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.cancelled():
                        raise asyncio.CancelledError("a review call was cancelled from outside")
                    if t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
        finally:
            for t in everything:
                t.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
            # (a failed or cancelled run's record says how long its rounds ran too)
            for k in rounds:
                if (k == 0 and with_drafts) or (k >= first and happens(k)):
                    time_round(k)
            self._release(everything=True)
            # The record lists each round's outputs in council order whatever order they finished in
            # (events went out as they came): same seeds, same record.
            in_council_order(self.record, order, pairs, c0, p0, u0)
        ran = [k for k in range(first, last + 1) if happens(k)]
        if ran:
            self._check_quorum(f"revise round {ran[-1]}")
        return ran

    def _checkpoint_upto(self, k: int, order: dict[str, int], pairs: list[tuple[str, str]],
                         c0: int, p0: int, u0: int, f0: int) -> None:
        """Checkpoint round k once every output of it is in, while later rounds may already run: the
        record as it would have been had they not started."""
        record = self.record.model_copy(deep=True)
        record.proposals[p0:] = [p for p in record.proposals[p0:] if p.round <= k]
        record.critiques[c0:] = [c for c in record.critiques[c0:] if c.round <= k]
        record.usage[u0:] = [u for u in record.usage[u0:] if u.round <= k]
        record.failures[f0:] = [f for f in record.failures[f0:] if f.round <= k]
        record.notes = [n for i, n in enumerate(record.notes) if self._note_round.get(i, 0) <= k]
        in_council_order(record, order, pairs, c0, p0, u0)
        failed = record.failed_agents()
        record.status = "degraded" if failed & {a.agent_id for a in self.council.agents} else "completed"
        live = [a for a in order if a not in failed and any(p.author_id == a for p in record.proposals)]
        self.done_round = k
        if self._on_checkpoint is not None:
            self._on_checkpoint(Checkpoint(round=k, live=live, record=record))
        self._release()

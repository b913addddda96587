"""The deliberation's ledger: its record, events, notes, checkpoints, council order and where the
tokens went, apart from the scheduler.

`Ledger` holds the record and what follows from it (the live agents, each author's current
proposal, the last checkpointed round); the scheduler tells it what happened (a reply, a failure, a
round complete) and it records, announces and checkpoints. While a round runs beside the one before
it, that round's events are held until the one before is checkpointed: the events before a
checkpoint are exactly those of its record (a resume drops the later ones and runs them again).

What this file leaves out: deciding which call starts when (calls.py, rounds.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest, default_quorum, quorum_error
from fleet.coordinator.state_store import Checkpoint
from fleet.errors import AgentCallError, DeliberationFailedError, EngineTimeoutError
from fleet.messages import AgentReply
from fleet.schemas.api import EventType
from fleet.schemas.record import AgentFailure, Critique, DeliberationRecord, ExecutionFeedback, Proposal, Selection
from fleet.schemas.scoring import ScoreCard
from fleet.schemas.usage import Stage, TokenTotals

T = TypeVar("T")
Phase = Literal["setup", "generate", "check", "critique", "revise", "score", "select"]  # PhaseTiming.phase
Status = Literal["completed", "degraded", "failed", "cancelled"]
Payload = Proposal | Critique | AgentFailure | ScoreCard | Selection | None  # what an event carries
EventSink = Callable[[EventType, Payload], None]


def agent_failure(agent_id: str, stage: Stage, round_: int, err: BaseException, call_s: float) -> AgentFailure:
    """A failed agent call as the record keeps it: a timeout reads as the engine's, an agent call
    error by the type of its cause."""
    if isinstance(err, TimeoutError):
        err = EngineTimeoutError(f"call ran past {call_s}s")
    error_type = err.cause_type if isinstance(err, AgentCallError) and err.cause_type else type(err).__name__
    return AgentFailure(agent_id=agent_id, stage=stage, round=round_, error_type=error_type, message=str(err)[:2000])


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
    t0 = time.perf_counter()
    reply = await fn()
    return reply, t0, time.perf_counter()


@dataclass(frozen=True)
class Offsets:
    """Where review rounds began adding to the record's lists: (critiques, proposals, usage, failures)."""

    critiques: int
    proposals: int
    usage: int
    failures: int

    @classmethod
    def of(cls, record: DeliberationRecord) -> Offsets:
        return cls(len(record.critiques), len(record.proposals), len(record.usage), len(record.failures))


def in_council_order(record: DeliberationRecord, order: dict[str, int], pairs: list[tuple[str, str]],
                     at: Offsets) -> None:
    """Sort what review rounds added to the record (from these offsets) into council order: by round,
    then drafts, critiques (in pair order), revisions, each in council order."""
    stages = {"generate": 0, "critique": 1, "revise": 2}
    pair = {p: i for i, p in enumerate(pairs)}
    c0, p0, u0 = at.critiques, at.proposals, at.usage
    record.critiques[c0:] = sorted(record.critiques[c0:], key=lambda c: (c.round, pair.get((c.critic_id, c.author_id),
                                                                                             len(pair))))
    record.proposals[p0:] = sorted(record.proposals[p0:], key=lambda p: (p.round, order.get(p.author_id, -1)))
    record.usage[u0:] = sorted(record.usage[u0:], key=lambda u: (u.round, stages.get(u.stage, 3),
                                                                 order.get(u.agent_id, -1), u.start_ms or 0.0))


def busy_s(spans: list[tuple[float, float]]) -> float:
    """How long at least one of these calls was in flight: a pipelined stage's wall (its calls
    start at different times, so first-start-to-last-end would count the waits between them).

    >>> busy_s([(0.0, 1.0), (0.5, 2.0), (5.0, 5.5)])
    2.5
    """
    busy, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        busy += max(0.0, e - max(s, end))
        end = max(end, e)
    return busy


class Ledger:
    """The record of one deliberation and what follows from it.

    on_event(type, payload) is called synchronously for every proposal, critique, revision, failure,
    score card and the winner, in order; on_checkpoint(checkpoint) after the drafts and after each
    review round, once that stage's events are out. `checkpoint` (one such) resumes from it."""

    def __init__(self, request: DeliberationRequest, council: CouncilSpec, deliberation_id: str,
                 on_event: EventSink | None = None, on_checkpoint: Callable[[Checkpoint], None] | None = None,
                 checkpoint: Checkpoint | None = None) -> None:
        self.request, self.council, self.cfg = request, council, request.config
        self.on_event, self.on_checkpoint = on_event, on_checkpoint
        self.members = {a.agent_id for a in council.agents}
        n = len(council.agents)
        self.quorum = self.cfg.quorum or default_quorum(n)
        if why := quorum_error(self.quorum, n):
            raise ValueError(why)
        self.record = DeliberationRecord(
            deliberation_id=deliberation_id, status="completed", task=request.task, council=council,
            config=self.cfg, sampling=request.sampling, quorum=self.quorum, started_at=datetime.now(UTC))
        self.t0 = time.perf_counter()  # spans are in ms after this
        self.live: list[str] = [a.agent_id for a in council.agents]
        self.current: dict[str, Proposal] = {}  # author -> its latest proposal
        self.done_round = -1  # the last completed stage: -1 none, 0 the drafts, r review round r
        self.held: list[tuple[EventType, Payload]] | None = None  # events waiting for a checkpoint (see the module)
        self.note_round: dict[int, int] = {}  # index in record.notes -> the round that wrote it (if not 0)
        self.noted_failures = 0
        if checkpoint is not None:
            self._resume(checkpoint)

    def _resume(self, checkpoint: Checkpoint) -> None:
        self.record = checkpoint.record.model_copy(deep=True)
        self.live, self.done_round = list(checkpoint.live), checkpoint.round
        for p in self.record.proposals:  # in order: the last one of each author is its current
            self.current[p.author_id] = p
        self.noted_failures = len(self.record.failed_agents() & self.members)
        done = "the drafts" + (f" and review rounds 1..{self.done_round}" if self.done_round else "")
        self.record.notes.append(f"resumed after a coordinator restart: {done} kept, not run again")

    # -- events and notes ------------------------------------------------------------------------

    def emit(self, kind: EventType, payload: Payload) -> None:
        round_ = payload.round if isinstance(payload, Proposal | Critique | AgentFailure) else 0
        if self.held is not None and round_ > self.done_round + 1:
            self.held.append((kind, payload))
        elif self.on_event is not None:
            self.on_event(kind, payload)

    def release(self, everything: bool = False) -> None:
        """Emit the held events that the last checkpoint lets out (everything: all of them, and hold
        no more), in the order they came."""
        held, self.held = self.held or [], None if everything else []
        for kind, payload in held:
            if not everything:
                self.emit(kind, payload)  # (held again if its round is still ahead)
            elif self.on_event is not None:
                self.on_event(kind, payload)

    def note(self, text: str, round_: int = 0) -> None:
        if round_:
            self.note_round[len(self.record.notes)] = round_
        self.record.notes.append(text)

    # -- what happened ---------------------------------------------------------------------------

    def spanned(self, reply: AgentReply, t0: float, t1: float) -> AgentReply:
        """The reply with its call's span (ms after the deliberation's start) in its usage."""
        span = {"start_ms": (t0 - self.t0) * 1000, "end_ms": (t1 - self.t0) * 1000}
        return reply.model_copy(update={"usage": reply.usage.model_copy(update=span)})

    def used(self, reply: AgentReply, t0: float, t1: float) -> AgentReply:
        """Record a call's usage (with its span); returns the spanned reply."""
        reply = self.spanned(reply, t0, t1)
        self.record.usage.append(reply.usage)
        return reply

    def add_proposal(self, round_: int, author: str, reply: AgentReply, feedback: ExecutionFeedback | None) -> None:
        """Record and announce one checked proposal; it becomes its author's current one."""
        parent = self.current[author].candidate_id if author in self.current else None
        proposal = Proposal(author_id=author, role=self.council.role, round=round_, content=reply.content,
                            usage=reply.usage, feedback=feedback, parent_id=parent)
        self.record.proposals.append(proposal)
        self.current[author] = proposal
        self.emit("proposal" if round_ == 0 else "revision", proposal)

    def fail(self, agent_id: str, stage: Stage, round_: int, err: BaseException) -> None:
        """A call failed: recorded and announced; its agent is out."""
        failure = agent_failure(agent_id, stage, round_, err, self.cfg.timeouts.call_s)
        self.record.failures.append(failure)
        self.emit("failure", failure)
        if agent_id in self.live:
            self.live.remove(agent_id)

    def check_quorum(self, after: str, round_: int = 0) -> None:
        """Raises `DeliberationFailedError` (the record finished as failed) when the live agents are
        fewer than the quorum; notes a failure not noted yet."""
        failed = sorted(self.record.failed_agents() & self.members)
        if failed:
            self.record.status = "degraded"
        if len(self.live) < self.quorum:
            last = self.record.failures[-1]  # the error says why, not only who
            msg = (f"quorum lost after {after}: {len(self.live)} live agent(s) of {len(self.council.agents)}, "
                   f"quorum is {self.quorum}; failed: {failed}; last failure: {last.agent_id} "
                   f"{last.error_type}: {last.message[:300]}")
            self.finish(status="failed", error=msg)
            raise DeliberationFailedError(msg, self.record)
        if len(failed) > self.noted_failures and after != "select":
            self.noted_failures = len(failed)
            self.note(f"after {after}: continuing with {len(self.live)} live agents (quorum {self.quorum}); "
                      f"failed so far: {failed}", round_)

    def finish(self, status: Status | None = None, error: str | None = None) -> None:
        """The totals: tokens, tokens per stage, duration (and the status and error, if given)."""
        r = self.record
        if status:
            r.status = status
        r.error = error
        r.tokens = TokenTotals.of(r.usage)
        r.stage_tokens = {s: sum(u.completion_tokens for u in r.usage if u.stage == s)
                          for s in dict.fromkeys(u.stage for u in r.usage)}
        r.duration_ms = (datetime.now(UTC) - r.started_at).total_seconds() * 1000

    # -- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self, round_: int) -> None:
        """Round `round_` is complete (with a barrier: nothing later has started)."""
        self.done_round = round_
        if self.on_checkpoint is not None:
            self.on_checkpoint(Checkpoint(round=round_, live=list(self.live), record=self.record.model_copy(deep=True)))

    def checkpoint_upto(self, k: int, order: dict[str, int], pairs: list[tuple[str, str]], at: Offsets) -> None:
        """Checkpoint round k once every output of it is in, while later rounds may already run: the
        record as it would have been had they not started. Then the events it lets out go out."""
        record = self.record.model_copy(deep=True)
        record.proposals[at.proposals:] = [p for p in record.proposals[at.proposals:] if p.round <= k]
        record.critiques[at.critiques:] = [c for c in record.critiques[at.critiques:] if c.round <= k]
        record.usage[at.usage:] = [u for u in record.usage[at.usage:] if u.round <= k]
        record.failures[at.failures:] = [f for f in record.failures[at.failures:] if f.round <= k]
        record.notes = [n for i, n in enumerate(record.notes) if self.note_round.get(i, 0) <= k]
        in_council_order(record, order, pairs, at)
        failed = record.failed_agents()
        record.status = "degraded" if failed & self.members else "completed"
        live = [a for a in order if a not in failed and any(p.author_id == a for p in record.proposals)]
        self.done_round = k
        if self.on_checkpoint is not None:
            self.on_checkpoint(Checkpoint(round=k, live=live, record=record))
        self.release()

"""Review rounds as a dataflow: the scheduler of critiques and revisions (and, on a fresh run, the drafts).

A critique of round k starts as soon as the proposal it reviews and its critic's own are final for
round k-1 (the critic's own: an agent whose last step failed is out before it reviews, as with a
barrier, so a failed agent is one failure in the record), an author revises as soon as its own
critiques are in, each new proposal is checked at once. So one agent can be in round k+1 while a
slower one is still in round k. A barrier is the same engine run one round at a time.

Whether round k happens is decided as with a barrier, from round k-1's outputs: it does not if fewer
than 2 agents are live or every one passes all its visible tests (early stop); while every output in
so far passes, the round waits, and the first that fails opens it. The (critic, author) pairs are
those of the agents live at the start, for every round; a pair whose critic or author has dropped
out is skipped (the barrier re-pairs a ring each round). Quorum is checked before each revision.

When every output of round k is in, round k is checkpointed (ledger.py) while later rounds may run.

    # (round, agent) -> Future[bool]: the agent's output of the round is final (True) or it is out (False)

What this file leaves out: one call's timeouts and budget (calls.py), the record (ledger.py), the
rules of repair and early stop (repair.py).
"""

from __future__ import annotations

import asyncio
import time

from fleet.coordinator.calls import CallRunner
from fleet.coordinator.checks import Checker
from fleet.coordinator.ledger import Ledger, Offsets, Phase, busy_s, in_council_order
from fleet.coordinator.pool import AgentPool
from fleet.coordinator.repair import RepairPolicy, worth_revising
from fleet.coordinator.topology import review_pairs
from fleet.messages import AgentReply, CritiqueRequest, GenerateRequest, ReceivedCritique, ReviseRequest
from fleet.schemas.record import Critique, PhaseTiming


class RoundGates:
    """Which outputs of rounds base..last are final, and which of rounds first..last happen."""

    def __init__(self, agents: list[str], base: int, last: int) -> None:
        loop = asyncio.get_running_loop()
        self.rounds = range(base, last + 1)
        self.last = last
        self.out = {k: {a: loop.create_future() for a in agents} for k in self.rounds}
        self.pending = {k: set(agents) for k in self.rounds}
        self.complete = {k: loop.create_future() for k in self.rounds}  # every output of round k is in
        self.go: dict[int, asyncio.Future[bool]] = {k: loop.create_future() for k in range(base + 1, last + 1)}

    def happens(self, k: int) -> bool:
        return self.go[k].done() and self.go[k].result()

    async def ready(self, a: str, k: int) -> bool:
        """a's proposal of round k-1 is final and round k happens."""
        return await self.out[k - 1][a] and await self.go[k]

    def finalize(self, a: str, k: int, ok: bool) -> None:
        """a's output of round k is final (ok), or a is out (not ok): then of every later round too."""
        for j in range(k, self.last + 1 if not ok else k + 1):
            if a in self.pending[j]:
                self.pending[j].discard(a)
                self.out[j][a].set_result(ok)
            if not self.pending[j] and not self.complete[j].done():
                self.complete[j].set_result(True)

    def close_from(self, k: int) -> None:
        """Rounds k..last do not happen."""
        for j in range(k, self.last + 1):
            self.go[j].set_result(False)


class ReviewRounds:
    """Rounds `first`..`last` of one deliberation (with_drafts: a fresh run, the drafts made here too
    as round 0); `run()` returns the rounds that ran."""

    def __init__(self, ledger: Ledger, calls: CallRunner, checker: Checker, pool: AgentPool,
                 first: int, last: int, with_drafts: bool = False) -> None:
        self.ledger, self.calls, self.checker, self.pool = ledger, calls, checker, pool
        self.policy = RepairPolicy(ledger)
        self.cfg, self.request = ledger.cfg, ledger.request
        self.first, self.last, self.with_drafts = first, last, with_drafts
        self.agents = list(ledger.live)
        self.order = {a: i for i, a in enumerate(self.agents)}
        self.pairs = review_pairs(self.agents, self.cfg.topology)
        self.at = Offsets.of(ledger.record)
        self.base = first - 1  # the round whose outputs the first review round starts from
        self.gates = RoundGates(self.agents, self.base, last)
        self.spans: dict[tuple[Phase, int], list[tuple[float, float]]] = {}
        self.clocks: dict[tuple[Phase, int], float] = {}  # each stage's clock starts with its first call
        self.timed: set[int] = set() if with_drafts else {self.base}  # a resume's base is checkpointed already
        self.kept: dict[int, list[str]] = {}  # round -> authors that kept their proposal

    # -- clocks ----------------------------------------------------------------------------------

    def span(self, stage: Phase, k: int) -> list[tuple[float, float]]:
        return self.spans.setdefault((stage, k), [])

    def deadline(self, stage: Phase, k: int) -> float:
        return self.clocks.setdefault((stage, k), time.perf_counter() + self.cfg.timeouts.stage_s)

    def time_round(self, k: int) -> None:
        """Round k's stage walls go into the record (once)."""
        if k in self.timed:
            return
        self.timed.add(k)
        stages: tuple[Phase, ...] = ("generate", "check") if k == 0 else ("critique", "revise", "check")
        for stage in stages:
            if self.spans.get((stage, k)) or stage != "check":
                self.ledger.record.timings.append(
                    PhaseTiming(phase=stage, round=k, wall_ms=busy_s(self.span(stage, k)) * 1000))

    # -- which round happens ---------------------------------------------------------------------

    def decide(self, k: int) -> None:
        """Round k happens or not, once round k-1's outputs tell (see the module docstring)."""
        gates = self.gates
        if k > self.last or gates.go[k].done():
            return
        if not gates.pending[k - 1]:
            if len(self.ledger.live) < 2:
                self.ledger.note(f"round {k}: skipped review, fewer than 2 live agents", k)
            elif why := self.policy.stops_early():
                after = "the drafts" if k == 1 else f"round {k - 1}"
                self.ledger.note(f"early stop: {why} after {after}; rounds {k}..{self.cfg.rounds} skipped", k)
            else:
                gates.go[k].set_result(True)
                return
            gates.close_from(k)
        elif (settled := [a for a in self.agents if a not in gates.pending[k - 1] and a in self.ledger.live]) \
                and not self.policy.may_stop_early(settled):
            # (on an output that is in: an agent dropping out says nothing about the round)
            gates.go[k].set_result(True)

    def settle(self, a: str, k: int, ok: bool) -> None:
        """a's output of round k is final (ok), or a is out (not ok); then decide the rounds that can
        be, and checkpoint each round that is complete."""
        self.gates.finalize(a, k, ok)
        for j in range(k, self.last + 1):
            self.decide(j + 1)
            if self.gates.pending[j] or j in self.timed or not (j == 0 or self.gates.happens(j)):
                break
            if self.kept.get(j):
                self.ledger.note(f"round {j}: {self.kept[j]} received no critique and keep their proposal", j)
            self.time_round(j)
            self.ledger.checkpoint_upto(j, self.order, self.pairs, self.at)

    async def aimed(self, a: str, k: int) -> bool:
        """Whether a's proposal of round k-1 is repaired in round k: it fails, or (once every output of
        round k-1 is in, so the same seeds give the same record) it disagrees with the leading group."""
        if self.policy.aimed_at(a):
            return True
        await self.gates.complete[k - 1]
        shown = self.policy.shown_for_repair(a, k)
        return shown is not None and bool(shown.disagreement)

    # -- the calls -------------------------------------------------------------------------------

    async def draft(self, a: str) -> None:
        gen = GenerateRequest(task=self.request.task, sampling=self.request.sampling, layout=self.cfg.prompt_layout)
        reply = await self.calls.run("generate", 0, a, lambda: self.pool.agent(a).generate(gen),
                                      self.deadline("generate", 0), self.span("generate", 0))
        if reply is None:
            self.ledger.check_quorum("generate")
        else:
            await self.checker.add_one(0, a, reply, self.span("check", 0))
        self.settle(a, 0, reply is not None)

    async def review(self, critic: str, author: str, k: int) -> AgentReply | None:
        """critic's critique of author's proposal of round k-1 (None: none, or the call failed)."""
        if not await self.gates.ready(author, k) or not await self.gates.ready(critic, k) \
                or critic not in self.ledger.live:
            return None
        if not await self.aimed(author, k):  # repair aimed at failures: a passing proposal is not reviewed
            return None
        req = CritiqueRequest(task=self.request.task, round=k, author_id=author,
                              proposal=self.ledger.current[author].content,
                              feedback=self.policy.shown_for_repair(author, k), sampling=self.request.sampling,
                              layout=self.cfg.prompt_layout)
        max_tokens = self.cfg.critique_max_tokens
        return await self.calls.run("critique", k, critic, lambda: self.pool.agent(critic).critique(req, max_tokens),
                                     self.deadline("critique", k), self.span("critique", k))

    async def receive(self, a: str, k: int,
                      reviews: dict[tuple[str, str, int], asyncio.Task[AgentReply | None]]) -> list[ReceivedCritique]:
        """The critiques of a's proposal in round k, recorded and announced as they are read."""
        received: list[ReceivedCritique] = []
        for critic, author in self.pairs:
            if author != a or (reply := await reviews[(critic, a, k)]) is None:
                continue
            c = Critique(critic_id=critic, author_id=a, round=k, content=reply.content, usage=reply.usage)
            self.ledger.record.critiques.append(c)
            self.ledger.emit("critique", c)
            received.append(ReceivedCritique(critic_id=critic, content=reply.content))
        return received

    async def revise(self, a: str, k: int, received: list[ReceivedCritique]) -> bool:
        """a revises its proposal with what it received; False: the call failed (a is out)."""
        req = ReviseRequest(task=self.request.task, round=k, proposal=self.ledger.current[a].content,
                            critiques=received, feedback=self.policy.shown_for_repair(a, k),
                            sampling=self.request.sampling, layout=self.cfg.prompt_layout)
        reply = await self.calls.run("revise", k, a, lambda: self.pool.agent(a).revise(req),
                                      self.deadline("revise", k), self.span("revise", k))
        if reply is not None:
            await self.checker.add_one(k, a, reply, self.span("check", k))
        self.settle(a, k, reply is not None)
        return reply is not None

    async def author_flow(self, a: str, reviews: dict[tuple[str, str, int], asyncio.Task[AgentReply | None]]) -> None:
        """a's rounds: wait for the round, read its critiques, revise (or keep its proposal)."""
        for k in range(self.first, self.last + 1):
            if not await self.gates.ready(a, k):
                return
            received = await self.receive(a, k, reviews)
            self.ledger.check_quorum(f"critique round {k}", k)
            if a not in self.ledger.live:  # one of its own calls failed meanwhile: it is out
                self.settle(a, k, False)
                return
            # An author revises with the critiques it received and what its code did; one with
            # neither keeps its proposal.
            if not await self.aimed(a, k) or (not received and not worth_revising(self.policy.shown_for_repair(a, k))):
                self.kept.setdefault(k, []).append(a)
                self.settle(a, k, True)
                continue
            if not await self.revise(a, k, received):
                return

    # -- the whole ---------------------------------------------------------------------------------

    async def run(self) -> list[int]:
        """Run the rounds; returns those that ran. Raises `DeliberationFailedError` on a lost quorum;
        cancelling it (or a call cancelled from outside) cancels every call."""
        reviews = {(c, a, k): asyncio.create_task(self.review(c, a, k))
                   for k in range(self.first, self.last + 1) for c, a in self.pairs}
        self.ledger.held = []
        drafts = [asyncio.create_task(self.draft(a)) for a in self.agents] if self.with_drafts else []
        if not self.with_drafts:
            for a in self.agents:
                self.settle(a, self.base, True)
        flows = [asyncio.create_task(self.author_flow(a, reviews)) for a in self.agents]
        everything: list[asyncio.Task[None] | asyncio.Task[AgentReply | None]] = [*drafts, *reviews.values(), *flows]
        try:
            await self._supervise({*drafts, *flows})
        finally:
            for t in everything:
                t.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
            # (a failed or cancelled run's record says how long its rounds ran too)
            for k in self.gates.rounds:
                if (k == 0 and self.with_drafts) or (k >= self.first and self.gates.happens(k)):
                    self.time_round(k)
            self.ledger.release(everything=True)
            # The record lists each round's outputs in council order whatever order they finished in
            # (events went out as they came): same seeds, same record.
            in_council_order(self.ledger.record, self.order, self.pairs, self.at)
        ran = [k for k in range(self.first, self.last + 1) if self.gates.happens(k)]
        if ran:
            self.ledger.check_quorum(f"revise round {ran[-1]}")
        return ran

    @staticmethod
    async def _supervise(waiting: set[asyncio.Task[None]]) -> None:
        """Wait for the drafts and the author flows: a lost quorum (or a bug) ends the rounds, as does
        a call cancelled from outside (the drafts are watched too: a failed draft can lose the quorum,
        and others wait for it)."""
        while waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.cancelled():
                    raise asyncio.CancelledError("a review call was cancelled from outside")
                if (exc := t.exception()) is not None:
                    raise exc

"""The `check` step: each new proposal's code run against the task's visible tests and the linter
(in the sandbox, by the scorer), on the agent-written probe inputs too; then it is recorded and
announced (the ledger), so its author and critics see what it did in the next round.

What this file leaves out: when a proposal is made (rounds.py) and the checks themselves (fleet/scoring).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fleet.coordinator.ledger import Ledger
from fleet.messages import AgentReply
from fleet.schemas.record import PhaseTiming
from fleet.scoring.scorer import Scorer


class Checker:
    """written(): the probe inputs every proposal is checked on (waited for)."""

    def __init__(self, ledger: Ledger, scorer: Scorer, written: Callable[[], Awaitable[list[str]]]) -> None:
        self.ledger, self.scorer, self.written = ledger, scorer, written
        self.task, self.role = ledger.request.task, ledger.council.role

    async def add_all(self, round_: int, replies: dict[str, AgentReply]) -> None:
        """Check every new proposal of a stage (one `check` phase), then record and announce each."""
        start = time.perf_counter()
        probes = await self.written()
        feedback = await asyncio.gather(*(self.scorer.feedback(self.task, self.role, reply.content, probes)
                                          for reply in replies.values()))
        if any(f is not None for f in feedback):
            self.ledger.record.timings.append(
                PhaseTiming(phase="check", round=round_, wall_ms=(time.perf_counter() - start) * 1000))
        for author, fb in zip(replies, feedback, strict=True):
            self.ledger.add_proposal(round_, author, replies[author], fb)

    async def add_one(self, round_: int, author: str, reply: AgentReply, spans: list[tuple[float, float]]) -> None:
        """Check one new proposal (its span added to `spans` when there was something to check), then
        record and announce it."""
        t0 = time.perf_counter()
        fb = await self.scorer.feedback(self.task, self.role, reply.content, await self.written())
        if fb is not None:
            spans.append((t0, time.perf_counter()))
        self.ledger.add_proposal(round_, author, reply, fb)

"""How one agent call runs, apart from which call comes next: under the per-call timeout and its
stage's, inside the token budget, its span and usage handed to the ledger, a failure recorded (its
agent out) and a cancel passed on.

- `CallRunner.run`: one call of a pipelined stage (the review rounds), against the stage's deadline.
- `CallRunner.fan_out`: every call of a stage at once, waited for as a barrier (setup, barrier drafts).
- `CallRunner.afford`: whether a call may start within the budget (budget.py), and what it means if not.

What this file leaves out: the order of calls (rounds.py) and what they produce (ledger.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from fleet.coordinator.budget import Budget, call_cap
from fleet.coordinator.ledger import Ledger, timed
from fleet.errors import BudgetExhaustedError, EngineTimeoutError
from fleet.messages import AgentReply
from fleet.schemas.record import PhaseTiming
from fleet.schemas.usage import Stage

T = TypeVar("T")


class CallRunner:
    def __init__(self, ledger: Ledger, budget: Budget) -> None:
        self.ledger, self.budget = ledger, budget
        self.cfg = ledger.cfg

    def cap(self, agent_id: str, stage: Stage) -> int:
        return call_cap(self.ledger.request, self.ledger.council, agent_id, stage)

    def afford(self, stage: Stage, round_: int, agent_id: str) -> bool:
        """Reserve a call's max_tokens in the budget; when the rest cannot cover them it does not start:
        a draft's agent is out (a failure), a critique or revision is skipped (noted once per stage)."""
        cap = self.cap(agent_id, stage)
        if self.budget.reserve(cap):
            return True
        why = f"budget: {self.budget.left()} of {self.cfg.budget_tokens} tokens left, a {stage} call may take {cap}"
        if stage == "generate":
            self.ledger.fail(agent_id, stage, round_, BudgetExhaustedError(why))
        elif not any(n.startswith(f"budget: {stage} calls of round {round_}") for n in self.ledger.record.notes):
            self.ledger.note(f"budget: {stage} calls of round {round_} not started from here on ({why})", round_)
        return False

    def _stage_timeout(self, stage: Stage) -> EngineTimeoutError:
        return EngineTimeoutError(f"stage {stage} ran past {self.cfg.timeouts.stage_s}s")

    async def run(self, stage: Stage, round_: int, agent_id: str, fn: Callable[[], Awaitable[AgentReply]],
                   deadline: float, spans: list[tuple[float, float]]) -> AgentReply | None:
        """One call of a pipelined stage, under the call timeout and the stage's `deadline`
        (perf_counter); its span is added to `spans`. Returns the reply (its usage recorded), or None:
        not affordable, or failed (the failure recorded, the agent out). Cancellation propagates."""
        if not self.afford(stage, round_, agent_id):
            return None
        cap, used = self.cap(agent_id, stage), 0
        t0 = time.perf_counter()
        timeout = min(self.cfg.timeouts.call_s, deadline - t0)
        try:
            if timeout <= 0:
                raise self._stage_timeout(stage)
            reply = await asyncio.wait_for(fn(), timeout)
            used = reply.usage.completion_tokens
        except asyncio.CancelledError:
            raise
        except Exception as e:
            err: Exception = e
            if isinstance(e, TimeoutError) and timeout < self.cfg.timeouts.call_s:
                err = self._stage_timeout(stage)
            spans.append((t0, time.perf_counter()))
            self.ledger.fail(agent_id, stage, round_, err)
            return None
        finally:
            self.budget.settle(cap, used)
        t1 = time.perf_counter()
        spans.append((t0, t1))
        return self.ledger.used(reply, t0, t1)

    async def fan_out(self, stage: Literal["setup", "generate"], round_: int,
                      calls: dict[str, Callable[[], Awaitable[T]]],
                      used: Callable[[T, float, float], T] | None = None) -> dict[str, T]:
        """Run every call at once (agent_id -> call) under the call and stage timeouts. Returns
        agent_id -> reply for the calls that succeeded, each passed through `used(reply, t0, t1)` (the
        ledger's, to record its usage) when given; each failed call is recorded and takes its agent
        out. Cancelling it cancels every call."""
        tasks = {a: asyncio.create_task(asyncio.wait_for(timed(fn), self.cfg.timeouts.call_s))
                 for a, fn in calls.items()}
        start = time.perf_counter()
        timed_out: set[asyncio.Task[tuple[T, float, float]]] = set()
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
            self.ledger.record.timings.append(
                PhaseTiming(phase=stage, round=round_, wall_ms=(time.perf_counter() - start) * 1000))
        if any(t.cancelled() and t not in timed_out for t in tasks.values()):
            raise asyncio.CancelledError(f"{stage} calls were cancelled from outside")
        replies: dict[str, T] = {}
        for agent_id, task in tasks.items():
            err = self._stage_timeout(stage) if task in timed_out else task.exception()
            if err is not None:
                self.ledger.fail(agent_id, stage, round_, err)
                continue
            reply, t0, t1 = task.result()
            replies[agent_id] = reply if used is None else used(reply, t0, t1)
        return replies

"""The deliberation record's bookkeeping, apart from the scheduler: a failed call as the record keeps
it, the council order review rounds are sorted into, and a pipelined stage's busy wall.

What this file leaves out: deciding which call starts when (deliberation.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fleet.errors import AgentCallError, EngineTimeoutError
from fleet.messages import Stage
from fleet.record import AgentFailure, DeliberationRecord


def agent_failure(agent_id: str, stage: Stage, round_: int, err: BaseException, call_s: float) -> AgentFailure:
    """A failed agent call as the record keeps it: a timeout reads as the engine's, an agent call
    error by the type of its cause."""
    if isinstance(err, TimeoutError):
        err = EngineTimeoutError(f"call ran past {call_s}s")
    error_type = err.cause_type if isinstance(err, AgentCallError) and err.cause_type else type(err).__name__
    return AgentFailure(agent_id=agent_id, stage=stage, round=round_, error_type=error_type, message=str(err)[:2000])


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    t0 = time.perf_counter()
    reply = await fn()
    return reply, t0, time.perf_counter()


def in_council_order(record: DeliberationRecord, order: dict[str, int], pairs: list[tuple[str, str]],
                      c0: int, p0: int, u0: int) -> None:
    """Sort what review rounds added to the record (from these offsets) into council order: by round,
    then drafts, critiques (in pair order), revisions, each in council order."""
    stages = {"generate": 0, "critique": 1, "revise": 2}
    pair = {p: i for i, p in enumerate(pairs)}
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

"""A deliberation's token budget (`DeliberationConfig.budget_tokens`): completion tokens of every
call it starts (agents, the probe writer, the judge, the architect), never exceeded.

A call is started only when what is left, less what calls in flight may still take (their max_tokens
reserved), covers its own max_tokens; when it ends its reservation becomes what it really used.

    >>> b = Budget(100)
    >>> b.reserve(60), b.reserve(60)        # the second could overrun while the first is in flight
    (True, False)
    >>> b.settle(60, 20); b.reserve(60)     # the first used 20 of its 60
    True

What this file leaves out: what a skipped call means to the deliberation (deliberation.py notes it).
"""

from __future__ import annotations

from fleet.agents.api import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.schemas.usage import Stage


def call_cap(request: DeliberationRequest, council: CouncilSpec, agent_id: str, stage: Stage) -> int:
    """The most completion tokens one call may take: what the budget holds for it while it runs."""
    if stage == "probe":
        return PROBE_MAX_TOKENS
    if stage == "select":
        return SELECT_MAX_TOKENS
    spec = next(a for a in council.agents if a.agent_id == agent_id)
    own = (request.sampling.max_tokens if request.sampling else None) or spec.sampling.max_tokens
    return (request.config.critique_max_tokens or own) if stage == "critique" else own


class Budget:
    def __init__(self, total: int | None) -> None:
        self.total = total
        self.spent = 0
        self.held = 0

    def left(self) -> int | None:
        return None if self.total is None else self.total - self.spent - self.held

    def reserve(self, max_tokens: int) -> bool:
        """Hold `max_tokens` for a call about to start; False: it must not start."""
        if self.total is not None and self.spent + self.held + max_tokens > self.total:
            return False
        self.held += max_tokens
        return True

    def settle(self, reserved: int, used: int) -> None:
        """A call that held `reserved` ended having used `used` (<= reserved) completion tokens."""
        self.held -= reserved
        self.spent += min(used, reserved)

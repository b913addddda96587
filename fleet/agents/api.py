"""What an agent answers: the calls the coordinator makes of it, with their request and reply types.

`Agent` (fleet/agents/agent.py) implements `AgentAPI` in-process; `ActorAgent` (fleet/coordinator/pool.py)
implements it over a Ray actor handle, one explicit method per call. The pool hands out either as
an `AgentAPI`, so a reader (and mypy) can follow every call from the scheduler to the engine.

Errors: a call raises the agent's own error (`EngineError` and its kinds, fleet/errors.py) when the
engine fails or answers nonsense; across an actor boundary any other failure arrives as
`AgentCallError` (carrying the cause's type name). Cancelling the awaiting task cancels the call
(and, for an actor, its engine request). No call retries: the engine client does that.

What this file leaves out: prompts (prompts.py) and sampling (agent.py).
"""

from __future__ import annotations

from typing import Protocol

from fleet.messages import (
    AgentReply,
    CritiqueRequest,
    Decision,
    GenerateRequest,
    ProbeRequest,
    ReviseRequest,
    SelectRequest,
)

PROBE_MAX_TOKENS = 160  # eight short calls
SELECT_MAX_TOKENS = 256


class AgentAPI(Protocol):
    """One agent of a council (or the standing architect), as the coordinator calls it."""

    async def ready(self) -> str:
        """Warm the engine connection; returns the Ray node the agent runs on ("local" in-process).
        Raises when the engine cannot be reached."""
        ...

    async def generate(self, req: GenerateRequest) -> AgentReply:
        """A draft proposal for `req.task` (sample `req.sample` of this agent). Raises `EngineError`."""
        ...

    async def critique(self, req: CritiqueRequest, max_tokens: int | None = None) -> AgentReply:
        """A review of `req.author_id`'s proposal (with what its code did, if shown); `max_tokens`
        caps it (None: the agent's own). Raises `EngineError`."""
        ...

    async def revise(self, req: ReviseRequest) -> AgentReply:
        """The agent's own proposal revised with the critiques it received. Raises `EngineError`."""
        ...

    async def write_probes(self, req: ProbeRequest, max_tokens: int = PROBE_MAX_TOKENS) -> AgentReply:
        """Calls of the code the task asks for, one per line (inputs only; the caller parses them).
        Raises `EngineError`."""
        ...

    async def select(self, req: SelectRequest, max_tokens: int = SELECT_MAX_TOKENS) -> tuple[Decision, AgentReply]:
        """As the architect: a decision naming two of `req.candidates`, and the call's reply. Raises
        `EngineError` when the answer is not such a decision."""
        ...

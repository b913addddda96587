"""How the coordinator reaches its agents: in-process objects or Ray actor handles.

Both pools hand out typed agents: `pool.agent(agent_id) -> AgentAPI` (fleet/agents/api.py). The actor
side is `ActorAgent`, one explicit method per call: it awaits the `ObjectRef` (never `ray.get`),
turns Ray's wrappers back into the agent's own error type, and cancels the remote call when the
awaiting task is cancelled.

What this file leaves out: which call starts when (the scheduler) and what the agent does (agent.py).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

from fleet.agents.api import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS, AgentAPI
from fleet.errors import AgentCallError
from fleet.messages import (
    AgentReply,
    CritiqueRequest,
    Decision,
    GenerateRequest,
    ProbeRequest,
    ReviseRequest,
    SelectRequest,
)


class AgentPool(abc.ABC):
    @abc.abstractmethod
    def agent(self, agent_id: str) -> AgentAPI:
        """The agent `agent_id` (KeyError: not in this pool); its calls raise as `AgentAPI` says."""


class LocalPool(AgentPool):
    """agent_id -> `Agent` object, called in this event loop (logic tests, single process)."""

    def __init__(self, agents: Mapping[str, AgentAPI]) -> None:
        self.agents = dict(agents)

    def agent(self, agent_id: str) -> AgentAPI:
        return self.agents[agent_id]


class ActorAgent:
    """`AgentAPI` over an `AgentActor` handle (the handle's methods are Ray's, so it stays `Any`).
    `on_dead()` hears that the actor died, so its owner replaces it before anyone calls it again."""

    def __init__(self, agent_id: str, handle: Any, on_dead: Callable[[], None] | None = None) -> None:
        self.agent_id, self._handle, self._on_dead = agent_id, handle, on_dead

    async def ready(self) -> str:
        node: str = await self._await("ready", self._handle.ready.remote())
        return node

    async def generate(self, req: GenerateRequest) -> AgentReply:
        reply: AgentReply = await self._await("generate", self._handle.generate.remote(req))
        return reply

    async def critique(self, req: CritiqueRequest, max_tokens: int | None = None) -> AgentReply:
        reply: AgentReply = await self._await("critique", self._handle.critique.remote(req, max_tokens=max_tokens))
        return reply

    async def revise(self, req: ReviseRequest) -> AgentReply:
        reply: AgentReply = await self._await("revise", self._handle.revise.remote(req))
        return reply

    async def write_probes(self, req: ProbeRequest, max_tokens: int = PROBE_MAX_TOKENS) -> AgentReply:
        ref = self._handle.write_probes.remote(req, max_tokens=max_tokens)
        reply: AgentReply = await self._await("write_probes", ref)
        return reply

    async def select(self, req: SelectRequest, max_tokens: int = SELECT_MAX_TOKENS) -> tuple[Decision, AgentReply]:
        ref = self._handle.select.remote(req, max_tokens=max_tokens)
        answer: tuple[Decision, AgentReply] = await self._await("select", ref)
        return answer

    async def _await(self, call: str, ref: Any) -> Any:
        """The remote call's result; `call` names it in errors only."""
        try:
            return await ref
        except asyncio.CancelledError:
            ray.cancel(ref)  # stop the agent's engine call too
            raise
        except RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else e
            raise AgentCallError(f"{self.agent_id}.{call}: {cause}", type(cause).__name__) from e
        except TaskCancelledError as e:
            # Only a cancel from above does this (ray.cancel is recursive): the deliberation is being
            # cancelled, which is not a failure of this agent.
            raise asyncio.CancelledError(f"{self.agent_id}.{call} cancelled") from e
        except RayActorError as e:
            if self._on_dead is not None:
                self._on_dead()
            raise AgentCallError(f"{self.agent_id}.{call}: agent actor unavailable: {e}", type(e).__name__) from e


class ActorPool(AgentPool):
    """agent_id -> `AgentActor` handle. `on_dead(agent_id, handle)` hears of an actor that died, so
    its owner replaces it before anyone calls it again."""

    def __init__(self, handles: dict[str, Any], on_dead: Callable[[str, Any], None] | None = None) -> None:
        self.handles = handles
        self.on_dead = on_dead

    def agent(self, agent_id: str) -> AgentAPI:
        handle, on_dead = self.handles[agent_id], self.on_dead
        return ActorAgent(agent_id, handle, None if on_dead is None else lambda: on_dead(agent_id, handle))


if TYPE_CHECKING:
    def _conforms(agent: ActorAgent) -> AgentAPI:  # mypy checks that ActorAgent implements the protocol
        return agent

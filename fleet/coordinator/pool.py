"""How the coordinator reaches its agents: in-process objects or Ray actor handles.

Both pools expose `call(agent_id, method, request) -> AgentReply` and raise on failure. The actor
pool awaits the `ObjectRef` (never `ray.get`), turns Ray's wrappers back into the agent's own
error type, and cancels the remote call when the awaiting task is cancelled.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

from fleet.errors import AgentCallError


class AgentPool(abc.ABC):
    @abc.abstractmethod
    async def call(self, agent_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """`await agent.method(*args, **kwargs)`; raises the agent's error (or `AgentCallError`)."""


class LocalPool(AgentPool):
    """agent_id -> `Agent` object, called in this event loop (logic tests, single process)."""

    def __init__(self, agents: dict[str, Any]) -> None:
        self.agents = agents

    async def call(self, agent_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.agents[agent_id], method)(*args, **kwargs)


class ActorPool(AgentPool):
    """agent_id -> `AgentActor` handle. `on_dead(agent_id, handle)` hears of an actor that died, so
    its owner replaces it before anyone calls it again."""

    def __init__(self, handles: dict[str, Any], on_dead: Callable[[str, Any], None] | None = None) -> None:
        self.handles = handles
        self.on_dead = on_dead

    async def call(self, agent_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        ref = getattr(self.handles[agent_id], method).remote(*args, **kwargs)
        try:
            return await ref
        except asyncio.CancelledError:
            ray.cancel(ref)  # stop the agent's engine call too
            raise
        except RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else e
            raise AgentCallError(f"{agent_id}.{method}: {cause}", type(cause).__name__) from e
        except TaskCancelledError as e:
            # Only a cancel from above does this (ray.cancel is recursive): the deliberation is being
            # cancelled, which is not a failure of this agent.
            raise asyncio.CancelledError(f"{agent_id}.{method} cancelled") from e
        except RayActorError as e:
            if self.on_dead is not None:
                self.on_dead(agent_id, self.handles[agent_id])
            raise AgentCallError(f"{agent_id}.{method}: agent actor unavailable: {e}", type(e).__name__) from e

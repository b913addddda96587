"""`AgentAPI` is the one contract of an agent's calls: `Agent` and the actor proxy both implement every
method of it (mypy checks the signatures; this checks the set and the proxy's wiring without Ray)."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from ray.exceptions import RayActorError

from fleet.agents.agent import Agent
from fleet.agents.api import AgentAPI
from fleet.config.task import Task
from fleet.coordinator.pool import ActorAgent, ActorPool, LocalPool
from fleet.errors import AgentCallError
from fleet.messages import GenerateRequest

pytestmark = pytest.mark.unit


def _calls(cls: type) -> set[str]:
    return {n for n, f in inspect.getmembers(cls, inspect.iscoroutinefunction) if not n.startswith("_")}


def test_both_implementations_answer_exactly_the_protocols_calls():
    api = {n for n in vars(AgentAPI) if not n.startswith("_") and callable(getattr(AgentAPI, n))}
    assert api == {"ready", "generate", "critique", "revise", "write_probes", "select"}
    assert _calls(Agent) == api and _calls(ActorAgent) == api


class _Method:
    """A handle's method: `.remote(...)` logs the call and returns an awaitable with `outcome`."""

    def __init__(self, log: list[tuple[str, tuple, dict]], name: str, outcome: object) -> None:
        self.log, self.name, self.outcome = log, name, outcome

    def remote(self, *args: object, **kwargs: object) -> asyncio.Future[object]:
        self.log.append((self.name, args, kwargs))
        fut = asyncio.get_running_loop().create_future()
        if isinstance(self.outcome, BaseException):
            fut.set_exception(self.outcome)
        else:
            fut.set_result(self.outcome)
        return fut


class _Handle:
    def __init__(self, outcome: object) -> None:
        self.log: list[tuple[str, tuple, dict]] = []
        self.outcome = outcome

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.log, name, self.outcome)


async def test_the_actor_proxy_calls_the_handles_method_of_the_same_name():
    handle = _Handle("node-1")
    agent = ActorPool({"a": handle}).agent("a")
    assert await agent.ready() == "node-1"
    req = GenerateRequest(task=Task(description="x"))
    await agent.generate(req)
    assert [name for name, _, _ in handle.log] == ["ready", "generate"] and handle.log[1][1] == (req,)


async def test_a_dead_actor_is_an_agent_call_error_and_its_owner_hears_of_it():
    handle, dead = _Handle(RayActorError()), []
    agent = ActorPool({"a": handle}, on_dead=lambda agent_id, h: dead.append((agent_id, h))).agent("a")
    with pytest.raises(AgentCallError, match=r"a\.generate: agent actor unavailable") as err:
        await agent.generate(GenerateRequest(task=Task(description="x")))
    assert err.value.cause_type == "RayActorError" and dead == [("a", handle)]


def test_the_local_pool_hands_out_its_agents():
    marker = object()
    assert LocalPool({"a": marker}).agent("a") is marker  # type: ignore[dict-item]
    with pytest.raises(KeyError):
        LocalPool({}).agent("b")

"""An agent: one persona with its own sampling settings, calling its engine.

`Agent` is a plain class with async methods, usable in-process (logic tests) and as an async Ray
actor via `AgentActor` (`ray.remote(Agent)`): one actor per agent, concurrent calls interleave on
its event loop. Each call derives its own seed from the agent's base seed, the stage, the round
and the peer, so a transcript is reproducible and no two calls share a seed.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

import ray
from pydantic import ValidationError

from fleet.agents import prompts
from fleet.agents.api import PROBE_MAX_TOKENS, SELECT_MAX_TOKENS, AgentAPI

__all__ = ["PROBE_MAX_TOKENS", "SELECT_MAX_TOKENS", "Agent", "AgentActor", "call_seed"]
from fleet.config.council import AgentSpec
from fleet.config.deliberation import SamplingOverride
from fleet.engine.protocol import ChatMessage, ChatRequest, EngineClient
from fleet.errors import EngineError
from fleet.messages import (
    AgentReply,
    CritiqueRequest,
    Decision,
    GenerateRequest,
    ProbeRequest,
    ReviseRequest,
    SelectRequest,
)
from fleet.schemas.usage import CallUsage, Stage

_STAGE_OFFSET = {"generate": 0, "critique": 100_000, "revise": 200_000, "select": 300_000, "probe": 400_000}


def call_seed(base: int, stage: Stage, round_: int, peer: str = "", sample: int = 0) -> int:
    """Each call's seed: distinct per stage, round, peer and sample.

    >>> call_seed(1000, "critique", 1, "agent-dev-002") != call_seed(1000, "critique", 1, "agent-dev-003")
    True
    >>> len({call_seed(1000, "generate", 0, sample=i) for i in range(64)})
    64
    """
    return base + _STAGE_OFFSET[stage] + 1_000 * round_ + zlib.crc32(peer.encode()) % 997 + 1_000_000 * sample


class Agent:
    """`AgentAPI` in-process: one persona calling its engine (also the body of `AgentActor`)."""

    def __init__(self, spec: AgentSpec, engine: EngineClient, default_model: str) -> None:
        self.spec = spec
        self.engine = engine
        self.model = spec.model or default_model

    async def _call(
        self, stage: Stage, round_: int, messages: list[ChatMessage], peer: str = "", max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
        sampling: SamplingOverride | None = None, sample: int = 0,
    ) -> AgentReply:
        """One engine call. Sampling: the agent's own, with the request's override (if any) on top,
        and a stage's fixed setting (the architect's greedy choice) on top of that."""
        s = self.spec.sampling
        ignore_eos = bool(sampling and sampling.ignore_eos) and json_schema is None  # a schema ends its own answer
        if sampling is not None:
            changes = sampling.model_dump(exclude_none=True, exclude={"ignore_eos"})
            changes["seed"] = s.seed + changes.get("seed", 0)  # an offset: agents keep distinct seeds
            s = s.model_copy(update=changes)
        result = await self.engine.chat(
            ChatRequest(
                model=self.model,
                messages=messages,
                temperature=s.temperature if temperature is None else temperature,
                top_p=s.top_p,
                max_tokens=max_tokens or s.max_tokens,
                repetition_penalty=s.repetition_penalty,
                seed=call_seed(s.seed, stage, round_, peer, sample),
                ignore_eos=ignore_eos,
                json_schema=json_schema,
                tags={"agent_id": self.spec.agent_id, "role": self.spec.role, "stage": stage,
                      "round": str(round_)},
            )
        )
        usage = CallUsage(
            agent_id=self.spec.agent_id,
            stage=stage,
            round=round_,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
            finish_reason=result.finish_reason,
            served_by=result.served_by,
            retries=result.retries,
            cached_tokens=result.cached_tokens,
        )
        return AgentReply(agent_id=self.spec.agent_id, content=result.text.strip(), usage=usage)

    async def generate(self, req: GenerateRequest) -> AgentReply:
        messages = prompts.generate_messages(self.spec, req.task, req.layout)
        return await self._call("generate", 0, messages, sampling=req.sampling, sample=req.sample)

    async def critique(self, req: CritiqueRequest, max_tokens: int | None = None) -> AgentReply:
        messages = prompts.critique_messages(self.spec, req.task, req.author_id, req.proposal, req.feedback,
                                            req.layout)
        return await self._call("critique", req.round, messages, peer=req.author_id, max_tokens=max_tokens,
                                sampling=req.sampling)

    async def revise(self, req: ReviseRequest) -> AgentReply:
        messages = prompts.revise_messages(self.spec, req.task, req.proposal, req.critiques, req.feedback,
                                           req.layout)
        return await self._call("revise", req.round, messages, sampling=req.sampling)

    async def write_probes(self, req: ProbeRequest, max_tokens: int = PROBE_MAX_TOKENS) -> AgentReply:
        """Calls of the code the task asks for, one per line (inputs only: the caller parses them)."""
        messages = prompts.probe_messages(self.spec, req.task, req.layout)
        return await self._call("probe", 0, messages, max_tokens=max_tokens, sampling=req.sampling)

    async def select(self, req: SelectRequest, max_tokens: int = SELECT_MAX_TOKENS) -> tuple[Decision, AgentReply]:
        """As the architect: choose among the candidates (greedy, schema-constrained). Raises
        `EngineError` when the answer is not a decision naming two of the candidates."""
        ids = [c.author_id for c in req.candidates]
        messages = prompts.select_messages(self.spec, req.task, req.candidates, req.layout)
        reply = await self._call("select", 0, messages, max_tokens=max_tokens, json_schema=prompts.select_schema(ids),
                                 temperature=0.0)
        try:
            decision = Decision.model_validate(json.loads(reply.content))
        except (json.JSONDecodeError, ValidationError) as e:
            raise EngineError(f"architect answer is not a decision ({reply.usage.finish_reason}): "
                              f"{reply.content[:200]!r}") from e
        if decision.winner not in ids or decision.runner_up not in ids:
            raise EngineError(
                f"architect named a non-candidate: {decision.winner!r}/{decision.runner_up!r} not in {ids}")
        return decision, reply

    async def ready(self) -> str:
        """Warm the engine connection; returns the Ray node this agent runs on."""
        await self.engine.warm_up()
        # In-process (no Ray) there is no node; don't let get_runtime_context() start a Ray session.
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


if TYPE_CHECKING:
    def _conforms(agent: Agent) -> AgentAPI:  # mypy checks that Agent implements the protocol
        return agent

# One async actor per agent. num_cpus=0: an agent only awaits its engine; the CPUs belong to vLLM.
AgentActor = ray.remote(num_cpus=0, max_restarts=0)(Agent)

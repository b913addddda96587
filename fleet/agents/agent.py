"""An agent: one persona with its own sampling settings, calling its engine.

`Agent` is a plain class with async methods, usable in-process (logic tests) and as an async Ray
actor via `AgentActor` (`ray.remote(Agent)`): one actor per agent, concurrent calls interleave on
its event loop. Each call derives its own seed from the agent's base seed, the stage, the round
and the peer, so a transcript is reproducible and no two calls share a seed.
"""

from __future__ import annotations

import zlib

import ray

from fleet.agents import prompts
from fleet.config.council import AgentSpec
from fleet.engine.protocol import ChatMessage, ChatRequest, EngineClient
from fleet.messages import AgentReply, CallUsage, CritiqueRequest, GenerateRequest, ReviseRequest, Stage

_STAGE_OFFSET = {"generate": 0, "critique": 100_000, "revise": 200_000}


def call_seed(base: int, stage: Stage, round_: int, peer: str = "") -> int:
    """>>> call_seed(1000, "critique", 1, "agent-dev-002") != call_seed(1000, "critique", 1, "agent-dev-003")
    True"""
    return base + _STAGE_OFFSET[stage] + 1_000 * round_ + zlib.crc32(peer.encode()) % 997


class Agent:
    def __init__(self, spec: AgentSpec, engine: EngineClient, default_model: str) -> None:
        self.spec = spec
        self.engine = engine
        self.model = spec.model or default_model

    async def _call(
        self, stage: Stage, round_: int, messages: list[ChatMessage], peer: str = "", max_tokens: int | None = None
    ) -> AgentReply:
        s = self.spec.sampling
        result = await self.engine.chat(
            ChatRequest(
                model=self.model,
                messages=messages,
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=max_tokens or s.max_tokens,
                repetition_penalty=s.repetition_penalty,
                seed=call_seed(s.seed, stage, round_, peer),
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
        )
        return AgentReply(agent_id=self.spec.agent_id, content=result.text.strip(), usage=usage)

    async def generate(self, req: GenerateRequest) -> AgentReply:
        return await self._call("generate", 0, prompts.generate_messages(self.spec, req.task))

    async def critique(self, req: CritiqueRequest, max_tokens: int | None = None) -> AgentReply:
        messages = prompts.critique_messages(self.spec, req.task, req.author_id, req.proposal)
        return await self._call("critique", req.round, messages, peer=req.author_id, max_tokens=max_tokens)

    async def revise(self, req: ReviseRequest) -> AgentReply:
        messages = prompts.revise_messages(self.spec, req.task, req.proposal, req.critiques)
        return await self._call("revise", req.round, messages)

    async def ready(self) -> str:
        """Warm the engine connection; returns the Ray node this agent runs on."""
        await self.engine.warm_up()
        # In-process (no Ray) there is no node; don't let get_runtime_context() start a Ray session.
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


# One async actor per agent. num_cpus=0: an agent only awaits its engine; the CPUs belong to vLLM.
AgentActor = ray.remote(num_cpus=0, max_restarts=0)(Agent)

"""The engine interface agents talk to.

`EngineClient.chat(ChatRequest) -> ChatResult` is one non-streaming chat completion. Contract:
- it either returns a complete `ChatResult` or raises an `EngineError` (never placeholder text);
- it honours `max_tokens`, `seed` and, when `json_schema` is set, returns text that parses as JSON
  (a bounded schema is the caller's job: a small model can ramble inside an unbounded string);
- cancelling the awaiting task aborts the request in the engine.

Implementations: `ServeLLMClient` (`fleet.engine.client`: vLLM in Ray Serve via `ray.serve.llm`)
and `FakeEngine` (`fleet.engine.fake`: deterministic, for logic tests). What this file leaves out:
streaming (deliberation stages need whole texts) and retries: a failed call is a failed agent, by
design. The one exception lives in `ServeLLMClient`: a request the engine lost because its process
died is sent again (bounded, and counted in `ChatResult.retries`) once Serve has restarted the
replica.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

from pydantic import Field

from fleet.config._base import StrictModel


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(StrictModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    seed: int | None = None
    ignore_eos: bool = Field(default=False, description="generate exactly max_tokens (benchmarks: equal work)")
    json_schema: dict[str, Any] | None = Field(default=None, description="constrain output to this schema")
    tags: dict[str, str] = Field(
        default_factory=dict, description="who asks and why (agent_id, stage, round): logs and fakes"
    )


class ChatResult(StrictModel):
    text: str
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    finish_reason: Literal["stop", "length", "abort"]
    latency_ms: float = Field(ge=0)
    served_by: str = Field(default="", description="the engine's fingerprint (backend, node)")
    retries: int = Field(default=0, ge=0, description="times it was re-sent because the engine had died")
    cached_tokens: int | None = Field(default=None, ge=0, description="prompt tokens the engine's prefix cache "
                                      "supplied; None: the engine does not say")


class EngineClient(abc.ABC):
    """One model endpoint, usable from any event loop (typically inside an async Ray actor)."""

    @abc.abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResult:
        """One chat completion; raises `fleet.errors.EngineError` on failure."""

    async def warm_up(self) -> None:  # noqa: B027 (optional hook: most engines have nothing to warm)
        """Resolve connections and imports now, so the first real call measures only the engine."""

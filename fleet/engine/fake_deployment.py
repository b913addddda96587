"""The fake engine deployment: `FakeEngine` behind a Serve deployment of `FleetLLMServer`'s shape.

It answers fleet's agents (`complete`, `fleet.engine.wire`'s plain data) and ray.serve.llm's OpenAI
routes (`chat`, non-streaming only), so everything between an agent and the replica (handles,
routing, placement, a killed replica) runs for real without vLLM. It reports the node it runs on in
`system_fingerprint` (`fleet-fake@<node>`), which placement tests read. What this file leaves out:
the fake's answers (`fleet.engine.fake`) and building the application (`fleet.engine.deploy`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import ray
from ray import serve
from ray.serve.deployment import Deployment

from fleet.config.engine import FakeEngineConfig
from fleet.engine.fake import FakeEngine
from fleet.engine.protocol import ChatMessage, ChatRequest
from fleet.engine.wire import ChatPayload, WireResult, result_reply

if TYPE_CHECKING:
    from ray.serve.llm.openai_api_models import ChatCompletionResponse


class FakeLLMServer:
    """A replica with `LLMServer.chat`'s protocol and `FleetLLMServer.complete`, backed by `FakeEngine`."""

    def __init__(self, model_id: str, config: FakeEngineConfig) -> None:
        # Import the response type now: importing it (it pulls in vLLM) inside the first request
        # would block this replica's loop for seconds, so the router would route around it.
        from ray.serve.llm.openai_api_models import ChatCompletionResponse

        self._response_cls = ChatCompletionResponse
        node = ray.get_runtime_context().get_node_id()
        self.model_id = model_id
        self.engine = FakeEngine(config.model_copy(update={"fingerprint": f"fleet-fake@{node}"}))

    async def complete(self, payload: ChatPayload) -> WireResult:
        """fleet's agents' call (see `FleetLLMServer.complete`): plain data in and out."""
        fmt = payload.get("response_format") or {}
        result = await self.engine.chat(ChatRequest(
            model=payload["model"], messages=[ChatMessage.model_validate(m) for m in payload["messages"]],
            max_tokens=payload.get("max_tokens") or 256, seed=payload.get("seed"),
            ignore_eos=payload.get("ignore_eos", False),
            json_schema=(fmt.get("json_schema") or {}).get("schema")))
        return result_reply(result)

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncIterator[ChatCompletionResponse]:
        """ray.serve.llm's `LLMServer.chat` protocol, for the OpenAI routes (`request`: its
        `ChatCompletionRequest`, read by attribute)."""
        if getattr(request, "stream", False):
            raise ValueError("the fake engine answers non-streaming requests only")
        fmt = getattr(request, "response_format", None)
        schema = None
        if fmt is not None and getattr(fmt, "json_schema", None) is not None:
            schema = fmt.json_schema.json_schema if hasattr(fmt.json_schema, "json_schema") else None
        result = await self.engine.chat(
            ChatRequest(
                model=request.model,
                messages=[ChatMessage(role=m["role"], content=m["content"]) for m in request.messages],
                max_tokens=request.max_tokens or 256,
                seed=request.seed,
                json_schema=schema,
            )
        )
        yield self._response_cls.model_validate(dict(
            id=f"fake-{time.time_ns()}",
            model=self.model_id,
            created=int(time.time()),
            choices=[
                {"index": 0, "message": {"role": "assistant", "content": result.text},
                 "finish_reason": result.finish_reason}
            ],
            usage={
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
            system_fingerprint=result.served_by,
        ))


# Like LLMServer: admit every request and let the engine queue. Serve's locality preference is soft
# (a full same-node replica sends the call elsewhere), so a small limit would defeat placement.
# (The decorator applied by hand: Ray types `serve.deployment(cls)` as returning a decorator.)
FAKE_LLM_DEPLOYMENT: Deployment = serve.deployment(max_ongoing_requests=1_000_000_000)(FakeLLMServer)

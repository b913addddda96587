"""The engine replica: ray.serve.llm's `LLMServer` plus `complete`, the call fleet's agents make.

`complete` takes the fields of an OpenAI chat request as a dict and returns `wire_reply`'s plain
dict, so the agent side of the call never constructs or unpickles a vLLM type: agent processes do
not import vLLM at all (measured: 196 MB resident and no torch, against 604 MB with the request
types imported). Everything else, including the OpenAI routes, is `LLMServer`'s own. Imported only
where the engine application is built and in its replicas.
"""

from __future__ import annotations

from typing import Any

from ray.serve.llm.deployment import LLMServer
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from fleet.engine.serve_llm import wire_reply


class FleetLLMServer(LLMServer):
    async def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming chat completion. Cancelling the call aborts the request in vLLM."""
        stream = await self.chat(ChatCompletionRequest(**payload))
        return wire_reply([out async for out in stream])

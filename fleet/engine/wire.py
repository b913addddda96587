"""The wire format of an agent's engine call: what `ServeLLMClient` sends and what a replica returns.

Both sides speak plain data (`ChatPayload` in, `WireReply` out), so an agent process never constructs
or unpickles a vLLM type and never imports vLLM (~0.4 GB and seconds per process; only the replica
needs it). The replica (`fleet.engine.llm_server.FleetLLMServer.complete`) builds an OpenAI
`ChatCompletionRequest` from the payload and turns the `ChatCompletionResponse` into a reply with
`wire_reply`; the fake deployment reads the same payload and answers with `result_reply`. What this
file leaves out: sending (`fleet.engine.client`) and what a failed reply means to the caller (the
client's retry rule). It imports nothing of Ray or vLLM.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, final

from fleet.engine.protocol import ChatRequest, ChatResult

IN_PROCESS_WORKER = "fleet_in_process_worker"  # LLMConfig.experimental_configs key FleetVLLMEngine reads


class ChatPayload(TypedDict):
    """The OpenAI chat-request fields `FleetLLMServer.complete` builds its `ChatCompletionRequest` from."""

    model: str
    messages: list[dict[str, str]]  # ChatMessage.model_dump(): {"role": ..., "content": ...}
    temperature: float
    top_p: float
    max_tokens: int
    repetition_penalty: float
    seed: int | None
    stream: bool  # always False: deliberation stages need whole texts
    ignore_eos: NotRequired[bool]  # only when set
    response_format: NotRequired[dict[str, Any]]  # {"type": "json_schema", "json_schema": {..., "schema": ...}}


@final  # final: `"error" in reply` tells the two replies apart (for the type checker too)
class WireResult(TypedDict):
    """A completed call: `ChatResult`'s fields less the caller's own (latency, retries)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length", "abort"]
    served_by: str  # the engine's fingerprint (`system_fingerprint`)
    cached_tokens: int | None  # None: the engine does not say


@final
class WireError(TypedDict):
    """A failed call, in words (the engine's `ErrorResponse`, or "no response")."""

    error: str


WireReply = WireResult | WireError


def chat_payload(request: ChatRequest) -> ChatPayload:
    """The payload for `request`; `tags` stay with the caller (they name who asks, not what)."""
    payload = ChatPayload(
        model=request.model,
        messages=[m.model_dump() for m in request.messages],
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        repetition_penalty=request.repetition_penalty,
        seed=request.seed,
        stream=False,
    )
    if request.ignore_eos:
        payload["ignore_eos"] = True
    if request.json_schema is not None:
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
        }
    return payload


def wire_reply(responses: list[Any]) -> WireReply:
    """What the replica sends back for a non-streaming chat: the one `ChatCompletionResponse` as plain
    data, or `{"error": ...}` for anything else (an `ErrorResponse`, nothing). `responses` are vLLM's
    objects, read by attribute so that this module need not import them."""
    if len(responses) != 1 or not hasattr(responses[0], "choices"):
        return WireError(error=str(getattr(responses[0], "error", responses[0]) if responses else "no response"))
    resp = responses[0]
    choice = resp.choices[0]
    details = getattr(resp.usage, "prompt_tokens_details", None)  # with enable_prompt_tokens_details
    return WireResult(
        text=choice.message.content or "",
        prompt_tokens=resp.usage.prompt_tokens,
        completion_tokens=resp.usage.completion_tokens,
        finish_reason=choice.finish_reason if choice.finish_reason in ("stop", "length", "abort") else "stop",
        served_by=resp.system_fingerprint or "",
        cached_tokens=getattr(details, "cached_tokens", None),
    )


def result_reply(result: ChatResult) -> WireResult:
    """The reply for a `ChatResult` an engine fleet runs itself (the fake deployment) produced."""
    return WireResult(
        text=result.text,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        finish_reason=result.finish_reason,
        served_by=result.served_by,
        cached_tokens=result.cached_tokens,
    )

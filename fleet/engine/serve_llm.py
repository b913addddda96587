"""The engine binding: vLLM deployed by `ray.serve.llm`, called through a `DeploymentHandle`.

`build_engine_app(spec, model_source)` builds the Serve application; `ServeLLMClient` is the
`EngineClient` agents use. Agents call the replica's
`complete` method (`fleet.engine.llm_server.FleetLLMServer`, ray.serve.llm's `LLMServer` plus that
method) with plain data: a dict of OpenAI chat-request fields in, a `wire_reply` dict out. So an
agent process never imports vLLM (~0.4 GB and seconds per process; only the replica needs it).
Calls prefer a replica on the caller's node (`_prefer_local_routing`), which is where placement put
the agent. The fake deployment speaks the same protocol with `FakeEngine`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import ray
from ray import serve

from fleet.config.engine import EngineSpec
from fleet.engine.fake import FakeEngine, FakeEngineConfig
from fleet.engine.protocol import ChatMessage, ChatRequest, ChatResult, EngineClient
from fleet.errors import EngineDeadError, EngineError, EngineNotReadyError

if TYPE_CHECKING:
    from ray.serve.deployment import Application


def _payload(request: ChatRequest) -> dict[str, Any]:
    """The OpenAI chat-request fields `FleetLLMServer.complete` builds its `ChatCompletionRequest` from."""
    extra: dict[str, Any] = {}
    if request.json_schema is not None:
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
        }
    return {
        "model": request.model,
        "messages": [m.model_dump() for m in request.messages],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "repetition_penalty": request.repetition_penalty,
        "seed": request.seed,
        "stream": False,
        **({"ignore_eos": True} if request.ignore_eos else {}),
        **extra,
    }


def wire_reply(responses: list[Any]) -> dict[str, Any]:
    """What the replica sends back for a non-streaming chat: the one `ChatCompletionResponse` as plain
    data, or `{"error": ...}` for anything else (an `ErrorResponse`, nothing)."""
    if len(responses) != 1 or not hasattr(responses[0], "choices"):
        return {"error": str(getattr(responses[0], "error", responses[0]) if responses else "no response")}
    resp = responses[0]
    choice = resp.choices[0]
    details = getattr(resp.usage, "prompt_tokens_details", None)  # with enable_prompt_tokens_details
    return {
        "text": choice.message.content or "",
        "prompt_tokens": resp.usage.prompt_tokens,
        "completion_tokens": resp.usage.completion_tokens,
        "finish_reason": choice.finish_reason if choice.finish_reason in ("stop", "length", "abort") else "stop",
        "served_by": resp.system_fingerprint or "",
        "cached_tokens": getattr(details, "cached_tokens", None),
    }


def _engine_error(detail: str, context: str) -> EngineError:
    """The error for a failed call: `EngineDeadError` (which the client retries) when `detail` says the
    engine or its replica died, else `EngineError` with `context` ("engine call failed", ...)."""
    # vLLM's EngineDeadError, by name or by its fixed message, however Serve wrapped it; or the
    # replica's own process died (killed, OOM): Serve replaces the replica either way.
    if any(sign in detail for sign in ("EngineDeadError", "EngineCore encountered an issue", "ActorDiedError",
                                       "RayActorError", "ActorUnavailableError")):
        return EngineDeadError(f"the engine died (its process crashed; Serve is restarting the replica): "
                               f"{detail[:500]}")
    return EngineError(f"{context}: {detail}")


class ServeLLMClient(EngineClient):
    """`EngineClient` over a `ray.serve.llm` deployment (or the fake one of the same shape).

    When the engine's process or its replica dies mid-call (vLLM `EngineDeadError`, a killed
    replica), Serve restarts the replica;
    the call is re-sent up to `dead_retries` times, `dead_backoff_s` apart and doubling (requests
    reach a restarting deployment only once a healthy replica is back), and the result counts the
    retries. Past that it raises fleet's `EngineDeadError`, which says so in words."""

    def __init__(self, app_name: str, deployment_name: str, dead_retries: int = 3, dead_backoff_s: float = 5.0) -> None:
        self.app_name, self.deployment_name = app_name, deployment_name
        self.dead_retries, self.dead_backoff_s = dead_retries, dead_backoff_s
        self._handle = None
        self._init_lock: asyncio.Lock | None = None  # made on first use, in the loop that uses it

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_init_lock": None}

    async def _get_handle(self):
        if self._handle is not None:
            return self._handle
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        # Concurrent first calls (several deliberations reaching a fresh agent at once) must not
        # initialise the handle twice: Serve returns the same handle object, and a second `_init`
        # raises "Handle has already been initialized".
        async with self._init_lock:
            if self._handle is not None:
                return self._handle
            try:
                # get_deployment_handle talks to the Serve controller synchronously: keep it off the loop.
                handle = await asyncio.to_thread(serve.get_deployment_handle, self.deployment_name, self.app_name)
            except Exception as e:
                raise EngineNotReadyError(
                    f"no deployment {self.deployment_name!r} in Serve app {self.app_name!r}: {e}"
                ) from e
            if not handle.is_initialized:
                handle._init(_prefer_local_routing=True)
            self._handle = handle
            return self._handle

    async def warm_up(self) -> None:
        await self._get_handle()

    async def chat(self, request: ChatRequest) -> ChatResult:
        handle = await self._get_handle()
        start = time.perf_counter()
        for attempt in range(self.dead_retries + 1):
            try:
                result = await self._once(handle, request, start)
                return result.model_copy(update={"retries": attempt})
            except EngineDeadError:
                if attempt == self.dead_retries:
                    raise
                await asyncio.sleep(self.dead_backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    async def _once(self, handle: Any, request: ChatRequest, start: float) -> ChatResult:
        response = handle.complete.remote(_payload(request))
        try:
            reply = await response
        except asyncio.CancelledError:
            response.cancel()  # aborts the request in the engine
            raise
        except Exception as e:
            raise _engine_error(f"{type(e).__name__}: {e}", "engine call failed") from e
        return _to_result(reply, (time.perf_counter() - start) * 1000)


def _to_result(reply: dict[str, Any], latency_ms: float) -> ChatResult:
    if "error" in reply:
        raise _engine_error(reply["error"], "engine returned an error")
    return ChatResult(latency_ms=latency_ms, **reply)


# Like LLMServer: admit every request and let the engine queue. Serve's locality preference is soft
# (a full same-node replica sends the call elsewhere), so a small limit would defeat placement.
@serve.deployment(max_ongoing_requests=1_000_000_000)
class FakeLLMServer:
    """A Serve deployment with `LLMServer.chat`'s protocol, backed by `FakeEngine`; it reports the
    node it runs on in `system_fingerprint`, which placement tests read."""

    def __init__(self, model_id: str, config: FakeEngineConfig) -> None:
        # Import the response type now: importing it (it pulls in vLLM) inside the first request
        # would block this replica's loop for seconds, so the router would route around it.
        from ray.serve.llm.openai_api_models import ChatCompletionResponse

        self._response_cls = ChatCompletionResponse
        node = ray.get_runtime_context().get_node_id()
        self.model_id = model_id
        self.engine = FakeEngine(config.model_copy(update={"fingerprint": f"fleet-fake@{node}"}))

    async def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """fleet's agents' call (see `FleetLLMServer.complete`): plain data in and out."""
        fmt = payload.get("response_format") or {}
        result = await self.engine.chat(ChatRequest(
            model=payload["model"], messages=[ChatMessage(**m) for m in payload["messages"]],
            max_tokens=payload.get("max_tokens") or 256, seed=payload.get("seed"),
            ignore_eos=payload.get("ignore_eos", False),
            json_schema=(fmt.get("json_schema") or {}).get("schema")))
        return result.model_dump(exclude={"latency_ms", "retries"})

    async def chat(self, request: Any, raw_request_info: Any = None):
        """ray.serve.llm's `LLMServer.chat` protocol, for the OpenAI routes."""
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
        yield self._response_cls(
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
        )


IN_PROCESS_WORKER = "fleet_in_process_worker"  # LLMConfig.experimental_configs key FleetVLLMEngine reads


def _actor_options(spec: EngineSpec) -> dict[str, Any]:
    # num_cpus=0: the engine's CPUs are reserved by its placement group bundle, not the replica actor;
    # counting both would need more logical CPUs than a 2-core laptop has.
    options: dict[str, Any] = {"num_cpus": 0}
    if spec.placement_resource:
        options["resources"] = {spec.placement_resource: 0.001}
    return options


def llm_config(spec: EngineSpec, model_source: str):
    """The `LLMConfig` for a vLLM engine spec."""
    from ray.serve.llm import LLMConfig

    engine_kwargs = {
        "dtype": spec.dtype,
        "max_model_len": spec.max_model_len,
        "max_num_seqs": spec.max_num_seqs,
        # Every call of a deliberation starts with the same system message and task (prompts.py's
        # shared_prefix layout): computed once, reused; each response says how many prompt tokens
        # came from the cache (usage.prompt_tokens_details.cached_tokens), which the record sums.
        "enable_prefix_caching": True,
        "enable_prompt_tokens_details": True,
        # Eager on the CPU unless asked: torch.compile costs 50-80 s of start on 2 cores (EngineSpec.compile).
        **({"enforce_eager": True} if spec.accelerator == "cpu" and not spec.compile else {}),
        # Compact JSON under a schema: with whitespace allowed between fields, small models emit blanks
        # until max_tokens (seen: every judge answer of Qwen2.5-Coder-0.5B was '{"correctness":' + spaces).
        # vLLM takes this per engine, not per request, and only with an explicit xgrammar/guidance backend.
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        **spec.engine_kwargs,
        **spec.cpu_scheduler_kwargs(),
    }
    return LLMConfig(
        model_loading_config={"model_id": spec.model_id, "model_source": model_source},
        accelerator_config={"kind": spec.accelerator},
        engine_kwargs=engine_kwargs,
        runtime_env={"env_vars": spec.worker_env()},
        deployment_config={
            "num_replicas": spec.num_replicas,
            "ray_actor_options": _actor_options(spec),
            **({"max_replicas_per_node": spec.max_replicas_per_node} if spec.max_replicas_per_node else {}),
        },
        log_engine_metrics=spec.engine_metrics,
        experimental_configs={IN_PROCESS_WORKER: spec.in_process_worker and spec.accelerator == "cpu"},
    )


def model_card(spec: EngineSpec, model_source: str | None) -> Any:
    """The OpenAI model card ray.serve.llm's ingress lists for `spec`."""
    from ray.llm._internal.serve.core.configs.openai_api_models import ModelCard, to_model_metadata

    if spec.kind == "vllm":
        return to_model_metadata(spec.model_id, llm_config(spec, model_source))
    return ModelCard(id=spec.model_id, object="model", owned_by="fleet", permission=[],
                     metadata={"model_id": spec.model_id, "engine": "fleet-fake"})


def build_engine_app(spec: EngineSpec, model_source: str | None = None) -> Application:
    """The Serve application that hosts `spec`'s engine (deployment named `spec.deployment_name`)."""
    if spec.kind == "fake":
        return FakeLLMServer.options(
            name=spec.deployment_name,
            num_replicas=spec.num_replicas,
            ray_actor_options=_actor_options(spec),
            **({"max_replicas_per_node": spec.max_replicas_per_node} if spec.max_replicas_per_node else {}),
        ).bind(spec.model_id, spec.fake)
    from ray.serve.llm import build_llm_deployment

    from fleet.engine.llm_server import FleetLLMServer

    if model_source is None:
        raise EngineNotReadyError("a vLLM engine needs a prepared model_source (see fleet.engine.model_prep)")
    # name_prefix: the deployment keeps LLMServer's name (EngineSpec.deployment_name), whatever the class.
    return build_llm_deployment(llm_config(spec, model_source), deployment_cls=FleetLLMServer,
                                name_prefix="LLMServer:")


def engine_client(spec: EngineSpec) -> EngineClient:
    """The client an agent (or the judge) uses to reach `spec`'s engine. Picklable before first use."""
    if spec.kind == "inproc_fake":
        return FakeEngine(spec.fake)
    return ServeLLMClient(spec.app_name, spec.deployment_name)

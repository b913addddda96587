"""The agent's side of an engine call: `ServeLLMClient`, an `EngineClient` over a Serve deployment.

`engine_client(spec)` is what an agent (or the judge) holds. It calls the replica's `complete`
method through a `DeploymentHandle` with `fleet.engine.wire`'s plain data, so an agent process never
imports vLLM. Calls prefer a replica on the caller's node (`_prefer_local_routing`), which is where
placement put the agent. What this file leaves out: building and deploying the engine
(`fleet.engine.deploy`) and the replica itself (`fleet.engine.llm_server`, or the fake in
`fleet.engine.fake_deployment`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray import serve

from fleet.config.engine import EngineSpec
from fleet.engine.fake import FakeEngine
from fleet.engine.protocol import ChatRequest, ChatResult, EngineClient
from fleet.engine.wire import WireReply, chat_payload
from fleet.errors import EngineDeadError, EngineError, EngineNotReadyError


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
        self._handle: Any = None  # Serve's DeploymentHandle, resolved on first use
        self._init_lock: asyncio.Lock | None = None  # made on first use, in the loop that uses it

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_init_lock": None}

    async def _get_handle(self) -> Any:
        if self._handle is not None:
            return self._handle
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        # Concurrent first calls (several deliberations reaching a fresh agent at once) must not
        # initialise the handle twice: Serve returns the same handle object, and a second `_init`
        # raises "Handle has already been initialized".
        async with self._init_lock:
            if self._handle is None:
                self._handle = await self._resolve_handle()
            return self._handle

    async def _resolve_handle(self) -> Any:
        try:
            # get_deployment_handle talks to the Serve controller synchronously: keep it off the loop.
            handle: Any = await asyncio.to_thread(serve.get_deployment_handle, self.deployment_name, self.app_name)
        except Exception as e:
            raise EngineNotReadyError(
                f"no deployment {self.deployment_name!r} in Serve app {self.app_name!r}: {e}"
            ) from e
        if not handle.is_initialized:
            handle._init(_prefer_local_routing=True)
        return handle

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
        response = handle.complete.remote(chat_payload(request))
        try:
            reply: WireReply = await response
        except asyncio.CancelledError:
            response.cancel()  # aborts the request in the engine
            raise
        except Exception as e:
            raise _engine_error(f"{type(e).__name__}: {e}", "engine call failed") from e
        return _to_result(reply, (time.perf_counter() - start) * 1000)


def _to_result(reply: WireReply, latency_ms: float) -> ChatResult:
    if "error" in reply:
        raise _engine_error(reply["error"], "engine returned an error")
    return ChatResult(latency_ms=latency_ms, **reply)


def engine_client(spec: EngineSpec) -> EngineClient:
    """The client an agent (or the judge) uses to reach `spec`'s engine. Picklable before first use."""
    if spec.kind == "inproc_fake":
        return FakeEngine(spec.fake)
    return ServeLLMClient(spec.app_name, spec.deployment_name)

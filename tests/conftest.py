"""Shared fixtures: one Ray session and one real engine deployment for the whole suite.

Tiers (markers): `unit` (no Ray), `ray` (the shared Ray session, fake engines in real actors),
`engine` (the real vLLM CPU engine via ray.serve.llm, deployed once), `gpu` (skipped without CUDA).
Every test in a module gets the module's marker from `pytestmark`.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent

# Engine workers and the driver: no hub, no telemetry. Set before Ray starts.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("RAY_enable_metrics_collection", "0")  # see fleet/driver.py: exit hang

NUM_CPUS = 2  # fixed, whatever the machine: tests must schedule the same way on CI's 2 cores


def pytest_collection_modifyitems(config, items):
    # Run cheap tiers first, the real engine last: a logic failure shows in seconds.
    order = {"unit": 0, "ray": 1, "engine": 2, "gpu": 3}

    def tier(item):
        return min((order[m.name] for m in item.iter_markers() if m.name in order), default=0)

    items.sort(key=tier)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    for item in items:
        if item.get_closest_marker("gpu") and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the suite, with the engine placement resource every node of a fleet has."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # address="local": always a fresh local cluster, never a head another test started and left in
    # /tmp/ray/ray_current_cluster (test_job's head).
    ray.init(address="local", num_cpus=NUM_CPUS, resources={"fleet_engine": 1000}, namespace="fleet-tests",
             log_to_driver=False, include_dashboard=False)
    yield ray
    from ray import serve

    try:
        serve.shutdown()
        # The ingress's coordinator is detached (it outlives replicas): stop it with the session.
        try:
            ray.kill(ray.get_actor("fleet-coordinator", namespace="fleet"))
        except ValueError:
            pass
    finally:
        ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_app_args(model_id: str = "smollm2", **overrides) -> dict:
    """serve_configs/cpu.yaml's args with test-sized overrides: SmolLM2 by default (the plumbing
    tiers only need a fast real engine), shorter completions."""
    args = yaml.safe_load((ROOT / "serve_configs" / "cpu.yaml").read_text())["applications"][0]["args"]
    return {**args, "engine": {**args["engine"], "model_id": model_id}, **overrides}


@pytest.fixture(scope="session")
def serve_http(ray_session):
    """Ray Serve for the whole suite, started once (HTTP on a free loopback port); its base URL. Every
    test that deploys to Serve goes through it: a second `serve.start` would keep the first's port."""
    from ray import serve

    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def fleet_app(serve_http, tmp_path_factory):
    """The whole fleet as `serve run serve_configs/cpu.yaml` deploys it (vLLM's CPU build + the HTTP
    ingress; SmolLM2 for speed), once for the suite, on a free loopback port. Yields the base URL."""
    from ray import serve

    from fleet.serve_app import build_app

    state = tmp_path_factory.mktemp("state") / "fleet.sqlite"  # not the user's ~/.cache one
    args = cpu_app_args(max_tokens=64, state_path=str(state))
    # Short drafts (64 tokens) and critiques (48): on 2 busy cores the CPU engine makes a few tokens a
    # second, and the tier checks plumbing, not prose. (The judge keeps its budget: a cut verdict fails.)
    args["deliberation"] = {**args["deliberation"], "critique_max_tokens": 48}
    serve.run(build_app(args), name="fleet", route_prefix="/")
    yield serve_http
    serve.delete("fleet")


@pytest.fixture(scope="session")
async def real_fleet(fleet_app):
    """A driver on the suite's engine (the `fleet` app), with its own coordinator."""
    from fleet import Fleet, FleetConfig

    fleet = await Fleet.start(FleetConfig.model_validate(
        cpu_app_args(max_tokens=96, coordinator_name="fleet-tests-real", state_path=None)))
    yield fleet
    await fleet.shutdown()


@pytest.fixture(scope="module")
async def coder_fleet(serve_http):
    """The embedded default model (Qwen2.5-Coder-0.5B) in an engine app of its own, for the tests of
    grounded judgement. Its placement group takes the second of the session's 2 logical CPUs.
    Module-scoped: the engine (~7 GB with its workers) and its coordinator's agent actors (~0.7 GB
    each) go as soon as those tests end; kept for the session beside the SmolLM2 app they pushed a
    24 GiB machine into Ray's memory monitor, which killed agent actors of later tests."""
    from fleet import Fleet, FleetConfig

    args = cpu_app_args(model_id="qwen2.5-coder-0.5b", max_tokens=256, coordinator_name="fleet-tests-coder",
                        state_path=None)
    args["engine"] = {**args["engine"], "app_name": "fleet-coder"}
    fleet = await Fleet.start(FleetConfig.model_validate(args))
    yield fleet
    await fleet.shutdown(engine=True)


def pytest_report_header(config):
    return f"fleet tests: Ray num_cpus={NUM_CPUS}; nproc={os.cpu_count()}; git={shutil.which('git') is not None}"


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL on loopback for the suite (tests/pg_server.py); its URL, password included."""
    from pg_server import postgres_server

    with postgres_server(free_port()) as url:
        yield url


@pytest.fixture
def fresh_database(postgres_url):
    """A new empty database on the suite's PostgreSQL for one test; its URL."""
    import uuid

    import sqlalchemy as sa

    name = f"fleet_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"

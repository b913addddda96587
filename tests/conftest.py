"""Shared fixtures: one Ray session and one real engine deployment for the whole suite.

Tiers (markers): `unit` (no Ray), `ray` (the shared Ray session, fake engines in real actors),
`engine` (the real vLLM CPU engine via ray.serve.llm, deployed once), `gpu` (skipped without CUDA).
Every test in a module gets the module's marker from `pytestmark`.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Engine workers and the driver: no hub, no telemetry. Set before Ray starts.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

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
    ray.init(num_cpus=NUM_CPUS, resources={"fleet_engine": 1000}, namespace="fleet-tests",
             log_to_driver=False, include_dashboard=False)
    yield ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
async def real_fleet(ray_session):
    """The embedded CPU engine (SmolLM2 on vLLM's CPU build) behind one coordinator, started once."""
    from fleet import Fleet, FleetConfig

    config = FleetConfig.model_validate({
        "engine": {"kind": "vllm", "kv_cache_gib": 1},
        "max_tokens": 96,
        "coordinator_name": "fleet-tests-real",
    })
    fleet = await Fleet.start(config)
    yield fleet
    await fleet.shutdown(engine=True)


def pytest_report_header(config):
    return f"fleet tests: Ray num_cpus={NUM_CPUS}; nproc={os.cpu_count()}; git={shutil.which('git') is not None}"

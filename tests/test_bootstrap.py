"""`open_fleet`, the one "connect, else start" of every entry point, without Ray: which fleet each
caller gets (driver, CLI and `fleet eval` without a config; with one; the batch job's join=True)."""

from __future__ import annotations

import pytest

from fleet import bootstrap
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.errors import EngineNotReadyError

pytestmark = pytest.mark.unit


@pytest.fixture
def calls(monkeypatch):
    """What `open_fleet` asked for, in order: ("connect", config) or ("start", config, deploy, detached).
    A fleet runs when the connecting config's coordinator is named "running"."""
    seen: list[tuple] = []

    async def connect(config: FleetConfig):
        seen.append(("connect", config))
        if config.coordinator_name != "running":
            raise EngineNotReadyError("none")
        return "joined"

    async def start(config: FleetConfig, *, deploy: bool = True, detached: bool = False):
        seen.append(("start", config, deploy, detached))
        return "started"

    monkeypatch.setattr(bootstrap, "connect", connect)
    monkeypatch.setattr(bootstrap, "start", start)
    return seen


def more_room(config: FleetConfig) -> FleetConfig:
    return config.model_copy(update={"max_concurrent": 16})


async def test_without_a_config_a_running_fleet_is_joined_else_the_default_one_started(calls, monkeypatch):
    options = RayOptions(address="ray://head:10001")
    assert await bootstrap.open_fleet(ray_options=options, on_start=more_room) == "started"
    (_, looked), (_, started, deploy, detached) = calls
    assert looked == FleetConfig(ray=options)
    assert started == FleetConfig(ray=options, max_concurrent=16) and deploy and not detached

    calls.clear()
    running = FleetConfig(coordinator_name="running")
    monkeypatch.setattr(bootstrap, "FleetConfig", lambda: running)  # the default names a running fleet
    assert await bootstrap.open_fleet(on_start=more_room) == "joined"
    assert calls == [("connect", running)]  # on_start is for a fleet being started only


async def test_a_config_of_ones_own_is_started_without_looking_unless_join(calls):
    config = FleetConfig(coordinator_name="running")
    assert await bootstrap.open_fleet(config, deploy=False, detached=True) == "started"
    assert calls == [("start", config, False, True)]

    calls.clear()  # the batch job: the cluster's running fleet first, whatever its config
    assert await bootstrap.open_fleet(config, join=True) == "joined"
    assert calls == [("connect", config)]

    calls.clear()
    mine = FleetConfig(coordinator_name="mine")
    assert await bootstrap.open_fleet(mine, join=True, on_start=more_room) == "started"
    assert calls == [("connect", mine), ("start", more_room(mine), True, False)]

"""Bringing a fleet up, and down again: Ray, the engine's Serve app, the named coordinator actor.

    up = await open_fleet(config)     # the fleet that runs, else one of this process's own
    record = await up.client.run(request)
    await up.shutdown()               # stops only what this process started

Written once, here, for every way in: `Fleet.start` / `Fleet.connect` (driver scripts, the HTTP
ingress, the bus), the CLI, the batch job (`fleet.jobs.deliberate`) and `fleet eval`. Blocking
Ray/Serve set-up calls (`ray.init`, `serve.run`, the one-time model conversion) run in worker threads.

Two rules: fleet never deploys into a Ray it was not pointed at (an address, or RAY_ADDRESS): a Ray
that merely runs on this machine is joined only to find a fleet already there; without one, a private
local Ray is started. And a running coordinator is reused only when it runs the same config
(`FleetConfig.same_fleet`), unless the caller asked to join whatever runs.

What it leaves out: the calls on a running coordinator (`fleet.coordinator.client`, behind
`CoordinatorAPI`) and the driver API (`fleet.driver.Fleet`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import ray
from ray import serve

from fleet.config.engine import EMBEDDED_MODELS, EngineSpec
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.coordinator.client import CoordinatorClient, find_coordinator
from fleet.coordinator.coordinator import CoordinatorActor
from fleet.errors import ConflictError, EngineNotReadyError

# How this process is connected to Ray: "ready" (it was, or it connected to the address given),
# "joined" (the Ray already running on this machine) or "started" (a private local Ray).
RayConnection = Literal["ready", "joined", "started"]


def init_ray(config: FleetConfig, *, join: bool = False) -> RayConnection | None:
    """Connect this process to Ray (blocking): to the config's address, else RAY_ADDRESS; else with
    join=True to the Ray running on this machine (None when there is none); else start a private
    local Ray with the engine's placement resource."""
    if ray.is_initialized():
        return "ready"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"namespace": config.ray.namespace, "log_to_driver": config.ray.log_to_driver}
    if address:
        ray.init(address=address, **kwargs)
        return "ready"
    if join:
        try:
            ray.init(address="auto", **kwargs)
        except ConnectionError:  # no Ray on this machine
            return None
        return "joined"
    # Ray 2.60's driver flushes OpenTelemetry metrics at exit with no bound; after a vLLM replica
    # this was seen to hang the CLI forever once the raylet was gone (ray-project/ray#66180 bounds
    # it later). A local laptop session has no metrics consumer, so collection is off.
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    resources = {config.engine.placement_resource: 1000.0} if config.engine.placement_resource else None
    # address="local": a Ray someone else started here (`ray start`, another fleet's) would refuse
    # these resources ("When connecting to an existing cluster, resources must not be provided").
    ray.init(address="local", num_cpus=config.ray.num_cpus, resources=resources, **kwargs)
    return "started"


def resolve_model_source(engine: EngineSpec) -> str | None:
    """The weights folder vLLM loads (None: not a vLLM engine); an embedded model is converted once
    (blocking). `EngineNotReadyError` for a model that has neither a source nor an embedded copy."""
    if engine.kind != "vllm":
        return None
    if engine.model_source is not None:
        return engine.model_source
    if engine.model_id in EMBEDDED_MODELS:
        from fleet.engine.model_prep import prepare_model

        folder = prepare_model(engine.model_id, engine.weights_dtype)
        if engine.quantization != "none":
            from fleet.engine.quantize import prepare_quantized

            folder = prepare_quantized(folder, engine.quantization)
        return str(folder)
    raise EngineNotReadyError(f"model {engine.model_id!r} has no model_source")


def _engine_running(app_name: str) -> bool:
    app = serve.status().applications.get(app_name)
    return app is not None and str(app.status).endswith("RUNNING")


def deploy_engine(engine: EngineSpec) -> None:
    """Deploy `engine` in Serve unless it runs already (blocking; call through a thread)."""
    if engine.kind == "inproc_fake" or _engine_running(engine.app_name):
        return
    from fleet.engine.deploy import build_engine_app

    app = build_engine_app(engine, resolve_model_source(engine))
    serve.run(app, name=engine.app_name, route_prefix=None)


@dataclass
class RunningFleet:
    """A fleet this process is attached to: a client of its coordinator, the config it runs, and
    whether this process created the coordinator (then `shutdown` stops it)."""

    client: CoordinatorClient
    config: FleetConfig
    engine_ready_s: float = 0.0  # wall time spent bringing the engine up (0 when it ran already)
    owner: bool = False

    async def shutdown(self, engine: bool = False) -> None:
        """Stop the coordinator (and its agents) if this process started it; with `engine=True` also
        delete the engine app. Ray itself is left as it is."""
        if self.owner:
            ray.kill(self.client.handle)
        if engine and self.config.engine.kind != "inproc_fake":
            await asyncio.to_thread(serve.delete, self.config.engine.app_name)


async def start(config: FleetConfig, *, deploy: bool = True, detached: bool = False) -> RunningFleet:
    """Connect to (or start) Ray, deploy the engine unless it runs (or `deploy=False`: the caller's
    Serve app hosts it), and start the named coordinator, or reuse it when it runs the same config
    (`ConflictError` when it runs another). `detached=True` keeps the coordinator alive beyond this
    process (Serve replicas use it)."""
    await asyncio.to_thread(init_ray, config)
    started = time.perf_counter()
    if deploy:
        await asyncio.to_thread(deploy_engine, config.engine)
    engine_ready_s = time.perf_counter() - started
    handle = await find_coordinator(config)
    owner = handle is None
    if owner:
        # A SQLite state file lives on the coordinator's node: keep the coordinator (and so every
        # restart of it) on the head node. With PostgreSQL it may land anywhere.
        placement = {"resources": {"node:__internal_head__": 0.001}} if config.state_on_node() else {}
        handle = CoordinatorActor.options(
            name=config.coordinator_name, namespace=config.ray.namespace, get_if_exists=True,
            lifetime="detached" if detached else None, **placement,
        ).remote(config)
    client = CoordinatorClient(handle, config)
    await client.ready()
    running = await client.fleet_config()
    if not running.same_fleet(config):
        raise ConflictError(
            f"coordinator {config.coordinator_name!r} already runs with a different config; "
            "connect() to it, stop it, or pick another coordinator_name"
        )
    return RunningFleet(client, config, engine_ready_s, owner)


async def connect(config: FleetConfig) -> RunningFleet:
    """Attach to a fleet started elsewhere (the config's coordinator name), as it runs: on the Ray at
    the config's address, else on the Ray running on this machine. `EngineNotReadyError` when there
    is none (a Ray joined only to look is let go again)."""
    how = await asyncio.to_thread(init_ray, config, join=True)
    handle = await find_coordinator(config) if how else None
    if handle is None:
        if how == "joined":  # a Ray without this fleet: leave it alone (start() makes a private one)
            await asyncio.to_thread(ray.shutdown)
        raise EngineNotReadyError(f"no fleet coordinator named {config.coordinator_name!r} is running"
                                  + ("" if how else " (found no Ray on this machine to join)"))
    client = CoordinatorClient(handle, config)
    running = await client.fleet_config()
    return RunningFleet(CoordinatorClient(handle, running), running)


async def open_fleet(config: FleetConfig | None = None, *, join: bool | None = None,
                     ray_options: RayOptions | None = None, deploy: bool = True, detached: bool = False,
                     on_start: Callable[[FleetConfig], FleetConfig] | None = None) -> RunningFleet:
    """The fleet that runs, else a new one: "connect, else start", for every entry point.

    join: first look for a running fleet (`connect`) and take it as it runs; by default only when no
    config is given (a config of one's own means: that fleet, started or reused, `start`). When none
    runs, `on_start(config)` is the config started (e.g. with room for more deliberations at once;
    default: the config as it is, `FleetConfig()` when none was given). `ray_options` (address,
    namespace, ...) replace the config's."""
    join = config is None if join is None else join
    config = config or FleetConfig()
    if ray_options is not None:
        config = config.model_copy(update={"ray": ray_options})
    if join:
        try:
            return await connect(config)
        except EngineNotReadyError:
            pass
    return await start(on_start(config) if on_start else config, deploy=deploy, detached=detached)

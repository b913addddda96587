"""The driver API: start or connect to a fleet, run deliberations. Async, and safe to use from
inside any running event loop (web handlers, message consumers, notebooks).

    async with await Fleet.start() as fleet:          # local Ray + the embedded CPU engine
        record = await fleet.deliberate("Add rate limiting to the login endpoint", role="DEV")

Blocking Ray/Serve set-up calls (`ray.init`, `serve.run`, the one-time model conversion) run in
worker threads via `asyncio.to_thread`; remote calls are awaited, each under a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import ray
from pydantic import ValidationError
from ray import serve

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest, SampleRequest, SamplingOverride
from fleet.config.engine import EMBEDDED_MODELS, EngineSpec
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.config.inputs import DeliberationInput
from fleet.config.plan import PlanApproved, PlanDispatch
from fleet.config.task import Task
from fleet.coordinator.coordinator import CoordinatorActor
from fleet.errors import (
    ConflictError,
    CoordinatorUnavailableError,
    EngineNotReadyError,
    FleetError,
    InvalidRequestError,
    explain,
)
from fleet.record import DeliberationEvent, DeliberationRecord, DeliberationState, SampleResult

log = logging.getLogger(__name__)

_CONTROL_TIMEOUT_S = 60.0  # coordinator bookkeeping calls (councils, status)


def _init_ray(config: FleetConfig, *, join: bool = False) -> str | None:
    """Connect this process to Ray; how: "ready" (already connected, or the address given: the
    config's, else RAY_ADDRESS), "joined" (join=True: the Ray already running on this machine) or
    "started" (a private local Ray with the engine's placement resource). None: join=True and no Ray
    runs here. Without an address fleet never deploys into a Ray it was not pointed at: joining is
    only for finding a fleet that runs there (`Fleet.connect`)."""
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
    resources = {config.engine.placement_resource: 1000} if config.engine.placement_resource else None
    # address="local": a Ray someone else started here (`ray start`, another fleet's) would refuse
    # these resources ("When connecting to an existing cluster, resources must not be provided").
    ray.init(address="local", num_cpus=config.ray.num_cpus, resources=resources, **kwargs)
    return "started"


def resolve_model_source(engine: EngineSpec) -> str | None:
    """The weights folder vLLM loads; the embedded model is converted once (blocking)."""
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
    from fleet.engine.serve_llm import build_engine_app

    app = build_engine_app(engine, resolve_model_source(engine))
    serve.run(app, name=engine.app_name, route_prefix=None)


class Fleet:
    """A handle on a running fleet: its coordinator actor and config."""

    def __init__(self, coordinator: Any, config: FleetConfig, engine_ready_s: float = 0.0, owner: bool = False) -> None:
        self.coordinator, self.config = coordinator, config
        self.engine_ready_s = engine_ready_s  # wall time start() spent bringing the engine up
        self.owner = owner  # True when this handle created the coordinator (and so may stop it)
        self._stale = False  # the handle's actor is gone for good: look the coordinator up again

    @classmethod
    async def start(cls, config: FleetConfig | None = None, *, ray_options: RayOptions | None = None,
                    deploy: bool = True, detached: bool = False) -> Fleet:
        """Connect to (or start) Ray, deploy the engine unless it runs (or `deploy=False`: the
        caller's Serve app hosts it), and start or reuse the named coordinator. `detached=True`
        keeps the coordinator alive beyond this process (Serve replicas use it).

        Without a config, a fleet that already runs (e.g. `serve run serve_configs/cpu.yaml`) is
        joined as it is; with one, a running coordinator of another config is a `ConflictError`.
        `ray_options` (address, namespace, ...) override the config's."""
        explicit = config is not None
        config = config or FleetConfig()
        if ray_options is not None:
            config = config.model_copy(update={"ray": ray_options})
        if not explicit:  # no config of our own: join the fleet that runs, if one does
            try:
                return await cls.connect(config)
            except EngineNotReadyError:
                pass
        await asyncio.to_thread(_init_ray, config)
        started = time.perf_counter()
        if deploy:
            await asyncio.to_thread(deploy_engine, config.engine)
        engine_ready_s = time.perf_counter() - started
        coordinator = await _find_coordinator(config)
        owner = coordinator is None
        if owner:
            # A SQLite state file lives on the coordinator's node: keep the coordinator (and so every
            # restart of it) on the head node. With PostgreSQL it may land anywhere.
            placement = {"resources": {"node:__internal_head__": 0.001}} if config.state_on_node() else {}
            coordinator = CoordinatorActor.options(
                name=config.coordinator_name, namespace=config.ray.namespace, get_if_exists=True,
                lifetime="detached" if detached else None, **placement,
            ).remote(config)
        await asyncio.wait_for(coordinator.ready.remote(), _CONTROL_TIMEOUT_S)
        running = await asyncio.wait_for(coordinator.fleet_config.remote(), _CONTROL_TIMEOUT_S)
        if not running.same_fleet(config):
            raise ConflictError(
                f"coordinator {config.coordinator_name!r} already runs with a different config; "
                "connect() to it, stop it, or pick another coordinator_name"
            )
        return cls(coordinator, config, engine_ready_s, owner)

    @classmethod
    async def connect(cls, config: FleetConfig | None = None) -> Fleet:
        """Attach to a fleet started elsewhere (same coordinator name): on the Ray at the given address,
        else on the Ray running on this machine. `EngineNotReadyError` when there is none."""
        config = config or FleetConfig()
        how = await asyncio.to_thread(_init_ray, config, join=True)
        coordinator = await _find_coordinator(config) if how else None
        if coordinator is None:
            if how == "joined":  # a Ray without this fleet: leave it alone (start() makes a private one)
                await asyncio.to_thread(ray.shutdown)
            raise EngineNotReadyError(f"no fleet coordinator named {config.coordinator_name!r} is running"
                                      + ("" if how else " (found no Ray on this machine to join)"))
        running = await asyncio.wait_for(coordinator.fleet_config.remote(), _CONTROL_TIMEOUT_S)
        return cls(coordinator, running)

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()

    async def deliberate(
        self,
        task: Task | str,
        *,
        role: str = "DEV",
        num_agents: int | None = None,
        rounds: int | None = None,
        topology: str | None = None,
        k: int | None = None,
        persona: str | None = None,
        council: CouncilSpec | None = None,
        judge: bool | None = None,
        sampling: SamplingOverride | None = None,
        config: DeliberationConfig | None = None,
    ) -> DeliberationRecord:
        """Run one deliberation and return its record. Arguments left None take the fleet's defaults.
        Raises `InvalidRequestError` for bad input, `NotFoundError` for an unknown role,
        `DeliberationFailedError` (with `.record`) when the quorum is lost."""
        return await self.run(self.request(task, role=role, num_agents=num_agents, rounds=rounds, topology=topology,
                                           k=k, persona=persona, council=council, judge=judge, sampling=sampling,
                                           config=config))

    def request(self, task: Task | str, *, role: str = "DEV", num_agents: int | None = None, rounds: int | None = None,
                topology: str | None = None, k: int | None = None, persona: str | None = None,
                council: CouncilSpec | None = None, judge: bool | None = None,
                sampling: SamplingOverride | None = None, config: DeliberationConfig | None = None,
                ) -> DeliberationRequest:
        """A validated request with the fleet's defaults (what `deliberate` runs); `InvalidRequestError`."""
        try:
            return DeliberationInput(
                task=task, role=role, num_agents=num_agents, rounds=rounds, topology=topology, k=k,
                persona=persona, council=council, judge=judge, sampling=sampling,
            ).to_request(config or self.config.deliberation)
        except ValidationError as e:
            raise InvalidRequestError(explain(e.errors())) from e

    async def run(self, request: DeliberationRequest) -> DeliberationRecord:
        """Run a validated request on the coordinator and wait for its record (the one code path
        every entry point uses)."""
        return await self._call("run", request, timeout_s=request.config.timeouts.deliberation_s + 30)

    async def sample(self, request: SampleRequest) -> SampleResult:
        """`request.n` independent first drafts (no review): the baselines of `fleet eval`."""
        return await self._call("sample", request, timeout_s=request.timeouts.stage_s + 30)

    async def submit(self, request: DeliberationRequest) -> DeliberationState:
        """Start a validated request in the background; returns its queued state at once."""
        return await self._call("submit", request)

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation ends (or as it is after timeout_s)."""
        return await self._call("wait", deliberation_id, timeout_s, timeout_s=timeout_s + 30)

    async def get(self, deliberation_id: str) -> DeliberationState:
        return await self._call("get_deliberation", deliberation_id)

    async def list_deliberations(self, role: str | None = None, status: str | None = None, offset: int = 0,
                                 limit: int = 50) -> tuple[list[DeliberationState], int]:
        return await self._call("list_deliberations", role, status, offset, limit)

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        return await self._call("cancel", deliberation_id)

    async def events(self, deliberation_id: str, after: int = 0, wait_s: float = 15.0
                     ) -> AsyncIterator[DeliberationEvent | None]:
        """Every event with seq > after, then each new one as it happens, until the deliberation ends.
        Yields None after each `wait_s` without news (a caller's chance to send a keep-alive)."""
        while True:
            events, finished = await self._call("events", deliberation_id, after, wait_s, timeout_s=wait_s + 30)
            for event in events:
                after = event.seq
                yield event
            if finished and not events:
                return
            if not events:
                yield None

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        return await self._call("plan_approved", event)

    async def councils(self) -> list[CouncilSpec]:
        return await self._call("list_councils")

    async def council(self, role: str) -> CouncilSpec:
        return await self._call("get_council", role)

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        return await self._call("create_council", spec)

    async def delete_council(self, role: str) -> None:
        await self._call("delete_council", role)

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        return await self._call("add_agent", role, new)

    async def remove_agent(self, role: str, agent_id: str) -> None:
        await self._call("remove_agent", role, agent_id)

    async def status(self) -> dict[str, Any]:
        return await self._call("status")

    async def _call(self, method: str, *args: Any, timeout_s: float = _CONTROL_TIMEOUT_S) -> Any:
        """Await a coordinator method under a timeout; fleet's typed errors come back as themselves.
        A coordinator that died is `CoordinatorUnavailableError` (503): Ray restarts it, and the next
        call reaches the new one (looked up by name again if this handle's actor is gone for good)."""
        if self._stale:
            found = await _find_coordinator(self.config)
            if found is None:
                raise CoordinatorUnavailableError(
                    f"no fleet coordinator named {self.config.coordinator_name!r} is running: it died and was not "
                    "restarted; start the fleet again")
            self.coordinator, self._stale = found, False
        ref = getattr(self.coordinator, method).remote(*args)
        try:
            return await asyncio.wait_for(ref, timeout_s)
        except (asyncio.CancelledError, TimeoutError):
            ray.cancel(ref)  # recursive: the coordinator's work for this call (a deliberation) stops too
            raise
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, FleetError):
                raise e.cause from None
            raise
        except ray.exceptions.RayActorError as e:
            self._stale = True  # the next call looks it up by name: the restarted actor, or none
            raise CoordinatorUnavailableError(
                f"the fleet coordinator is unavailable ({type(e).__name__}: its process died; Ray restarts it): "
                f"{method} did not complete; retry in {CoordinatorUnavailableError.retry_after_s}s") from e

    async def shutdown(self, engine: bool = False) -> None:
        """Stop the coordinator (and its agents) if this handle started it; with `engine=True` also
        delete the engine app."""
        if self.owner:
            ray.kill(self.coordinator)
        if engine and self.config.engine.kind != "inproc_fake":
            await asyncio.to_thread(serve.delete, self.config.engine.app_name)


async def _find_coordinator(config: FleetConfig) -> Any | None:
    try:  # ray.get_actor asks the GCS synchronously: off the loop
        return await asyncio.to_thread(ray.get_actor, config.coordinator_name, config.ray.namespace)
    except ValueError:
        return None

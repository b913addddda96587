"""`FleetBus`: the bus service as a Serve deployment of fleet's app (when the config has `nats`).

One replica. Serve restarts it when its process dies or `check_health` fails (the supervisor loop in
`service.py` ended, which it only does on a bug); the ingress holds its handle and shows `state()`
in `/v1/status`. It reaches the coordinator like the ingress does (`Fleet.start(..., deploy=False,
detached=True)`: the same named actor). What it leaves out: HTTP routes (it has none).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from fleet.bus.service import BusService
from fleet.config.fleet import FleetConfig
from fleet.driver import Fleet
from fleet.errors import EngineNotReadyError


class FleetBus:
    async def __init__(self, fleet_config: dict[str, Any]) -> None:  # type: ignore[misc]  # Serve awaits it
        """fleet_config: the app's FleetConfig as JSON, its `nats` secrets in clear (`NatsConfig.reveal`).
        Async: Serve awaits it on the replica's event loop, where the service then runs."""
        self.config = FleetConfig.model_validate(fleet_config)
        if self.config.nats is None:
            raise ValueError("FleetBus needs a config with a nats block")
        self.service = BusService(self.config.nats, self._fleet, self._engine_ready)
        self.service.start()

    async def _fleet(self) -> Fleet:
        return await Fleet.start(self.config, deploy=False, detached=True)

    async def _engine_ready(self) -> None:
        """The engine deployment must be HEALTHY before an event is dispatched (what the HTTP route
        asks too): a plan that arrives while it starts waits, nak'ed, instead of failing its agents."""
        engine = self.config.engine
        app = (await asyncio.to_thread(serve.status)).applications.get(engine.app_name)
        deployment = app.deployments.get(engine.deployment_name) if app else None
        status = str(deployment.status).rsplit(".", 1)[-1] if deployment else "MISSING"
        if status != "HEALTHY":
            raise EngineNotReadyError(f"engine {engine.deployment_name} is {status}")

    async def state(self) -> dict[str, Any]:
        return await self.service.state()

    async def check_health(self) -> None:
        """Serve calls this every few seconds; raising makes it replace the replica."""
        if not self.service.alive():
            task = self.service.task
            why = "never started" if task is None else "cancelled" if task.cancelled() else repr(task.exception())
            raise RuntimeError(f"the bus supervisor ended: {why}")

    async def __del__(self) -> None:
        await self.service.stop()

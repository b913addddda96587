"""The bus service: connect, run the plan consumer and the result watcher, and keep them running.

`BusService.run()` is the supervisor: it connects (retrying while NATS is away), runs both loops, and
if either ends with an error it closes the connection and starts over after a pause; the durable
consumers on the server keep every unacked message for the next round. Its `state()` is what
`/v1/status` shows under `bus` (secrets redacted). The Serve deployment around it is `deployment.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fleet.bus.consumer import FleetCalls, PlanConsumer
from fleet.bus.publisher import Bus
from fleet.bus.watcher import ResultWatcher
from fleet.config.bus import NatsConfig

log = logging.getLogger(__name__)

RESTART_S = 1.0  # pause before the supervisor connects again


class BusService:
    def __init__(self, config: NatsConfig, fleet: Callable[[], Awaitable[FleetCalls]],
                 ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """fleet: how to reach the coordinator (awaited once; e.g. `Fleet.start(config, deploy=False)`).
        ready: raises `EngineNotReadyError` while the engine is not up (events then wait, nak'ed)."""
        self.config = config
        self._get_fleet, self._ready = fleet, ready
        self.bus: Bus | None = None
        self.consumer: PlanConsumer | None = None
        self.watcher: ResultWatcher | None = None
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None
        self._totals = {"acked": 0, "rejected": 0, "redelivered": 0, "naked": 0, "completed": 0, "failed": 0,
                        "published": 0, "duplicates_dropped": 0, "reconnects": 0}

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self.task

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def run(self) -> None:
        fleet: FleetCalls | None = None
        while True:
            self.bus = Bus(self.config)
            try:
                fleet = fleet or await self._get_fleet()
                self.consumer = PlanConsumer(self.bus, fleet, self._ready)
                self.watcher = ResultWatcher(self.bus, fleet)
                await self.bus.connect()
                loops = [asyncio.ensure_future(self.consumer.run()), asyncio.ensure_future(self.watcher.run())]
                try:  # both run until cancelled: one that ends has failed
                    done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
                    for d in done:
                        d.result()
                finally:
                    for loop in loops:
                        loop.cancel()
                    await asyncio.gather(*loops, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS unreachable at start, a stream refused, a bug: start over
                self.bus.last_error = f"{type(e).__name__}: {e}"
                log.warning("bus: %s; connecting again in %.0fs", self.bus.last_error, RESTART_S, exc_info=True)
            finally:
                self._keep_totals()
                await self.bus.close()
            self.restarts += 1
            await asyncio.sleep(RESTART_S)

    def _live(self) -> dict[str, int]:
        """This round's counters (each round of the supervisor has its own bus, consumer, watcher)."""
        live: dict[str, int] = {}
        if self.consumer is not None:
            live.update({k: getattr(self.consumer, k) for k in ("acked", "rejected", "redelivered", "naked")})
        if self.watcher is not None:
            live.update({"completed": self.watcher.completed, "failed": self.watcher.failed})
        if self.bus is not None:
            live.update({"published": self.bus.published, "duplicates_dropped": self.bus.duplicates,
                         "reconnects": self.bus.reconnects})
        return live

    def _keep_totals(self) -> None:
        """Fold the finished round's counters into the totals."""
        for k, v in self._live().items():
            self._totals[k] += v
        for counters in (self.consumer, self.watcher, self.bus):  # kept for their last_error, counted once
            for k in ("acked", "rejected", "redelivered", "naked", "completed", "failed", "published",
                      "duplicates", "reconnects"):
                if counters is not None and hasattr(counters, k):
                    setattr(counters, k, 0)

    def counts(self) -> dict[str, int]:
        """Totals since this process started: acked, rejected, redelivered, naked, completed, failed,
        published, duplicates_dropped (re-publishes the result stream recognised), reconnects."""
        live = self._live()
        return {k: v + live.get(k, 0) for k, v in self._totals.items()}

    async def state(self) -> dict[str, Any]:
        """The consumer's state for /v1/status: connected, the server's pending counts, this process's
        counters, the config with its secrets redacted."""
        bus = self.bus
        server = await self.consumer.pending() if self.consumer and bus and bus.connected else None
        return {
            "running": self.alive(),
            "connected": bus.connected if bus else False,
            "pending": server["pending"] if server else None,  # not yet delivered, as the server counts
            "ack_pending": server["ack_pending"] if server else None,
            **self.counts(),
            "watching": len(self.watcher.watching) if self.watcher else 0,
            "restarts": self.restarts,
            "last_error": bus.last_error if bus else None,
            "config": self.config.model_dump(mode="json"),  # SecretStr fields dump as '**********'
        }

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

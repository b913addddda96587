"""The NATS side shared by the consumer and the watcher: the connection, the two streams, and
publishing a result exactly once.

Exactly once = JetStream's de-duplication: every result carries a `Nats-Msg-Id` made from what it is
about (deliberation id + kind), and the result stream remembers ids for `dedupe_window_s`. So a
publish is simply retried until the server has stored it (a server restarting, a lost PubAck), and a
consumer that restarts and publishes the same result again adds nothing. What this file leaves out:
which results to publish and when (`watcher.py`).
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError as StreamNotFound

from fleet.bus.envelope import BusEvent
from fleet.config.bus import NatsConfig

log = logging.getLogger(__name__)

_RETRY_S = (0.2, 0.5, 1.0, 2.0)  # between attempts of a publish; the last repeats


class Bus:
    """One NATS connection with JetStream, reconnecting forever; counts what it published."""

    def __init__(self, config: NatsConfig) -> None:
        self.config = config
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.published = 0  # results stored (a duplicate the server dropped does not count)
        self.duplicates = 0  # publishes the server recognised as already stored
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def jetstream(self) -> JetStreamContext:
        """The JetStream context; only after `connect()`."""
        if self.js is None:
            raise RuntimeError("bus: not connected to NATS (connect() first)")
        return self.js

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> None:
        async def on_error(e: Exception) -> None:
            self.last_error = f"{type(e).__name__}: {e}"

        async def on_reconnect() -> None:
            self.reconnects += 1
            url = self.nc.connected_url if self.nc is not None else None
            log.info("bus: reconnected to %s", url.netloc if url else "?")

        async def on_disconnect() -> None:
            log.warning("bus: disconnected from NATS; reconnecting")

        self.nc = await nats.connect(**self.config.connect_options(), error_cb=on_error,
                                     reconnected_cb=on_reconnect, disconnected_cb=on_disconnect)
        self.js = self.nc.jetstream()
        if self.config.create_streams:
            await self._ensure_stream(self.config.plan_stream, [self.config.plan_subject], None)
            await self._ensure_stream(self.config.result_stream, [f"{self.config.result_prefix}.>"],
                                      self.config.dedupe_window_s)

    async def _ensure_stream(self, name: str, subjects: list[str], dedupe_s: float | None) -> None:
        try:
            await self.jetstream.stream_info(name)
            return
        except StreamNotFound:
            pass
        config = StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE)
        if dedupe_s is not None:
            config.duplicate_window = dedupe_s
        await self.jetstream.add_stream(config)
        log.info("bus: created stream %s on %s", name, subjects)

    async def publish(self, kind: str, event: BusEvent, msg_id: str) -> None:
        """Store `event` on `<prefix>.<kind>` once: retried until the server acknowledges it."""
        subject, payload = self.config.subject(kind), event.model_dump_json().encode()
        attempt = 0
        while True:
            try:
                ack = await self.jetstream.publish(subject, payload, timeout=self.config.connect_timeout_s,
                                            headers={"Nats-Msg-Id": msg_id})
            except (NatsError, TimeoutError) as e:  # server away: publish again
                self.last_error = f"publish {subject}: {type(e).__name__}: {e}"
                await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                attempt += 1
                continue
            if ack.duplicate:
                self.duplicates += 1
            else:
                self.published += 1
            return

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.close(), 5)
            except (NatsError, TimeoutError):
                pass

"""The plan-approved consumer: a durable JetStream pull consumer that dispatches each event through
the same coordinator call as `POST /v1/events/plan-approved` (`Fleet.plan_approved`).

Per message, in this order (so nothing is lost and nothing runs twice):
1. parse and validate the envelope; refused -> `<prefix>.dispatch.rejected` (reason, subject, stream
   sequence), then ack: bad input is reported once, never redelivered forever, never a crash;
2. dispatch, once the engine is up (as the HTTP route): idempotent on the event id (a role's
   deliberation id is derived from it), the answer stored before it returns; a full queue (a role
   refused with `OverloadedError`), an engine not up or an unreachable coordinator -> nak with
   `nak_delay_s` (redelivered later, never dropped); the roles that did start are kept, a
   redelivery only tries the refused ones;
3. one `<prefix>.dispatch.accepted` per role, stored in the result stream (de-duplicated) - the
   watcher (`watcher.py`) works from these, so results survive a consumer restart;
4. ack. A consumer that dies before this point gets the event redelivered after `ack_wait_s`; steps
   2-3 then find what they did the first time and add nothing.
What this file leaves out: waiting for deliberations and publishing their results (`watcher.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fleet.bus.envelope import DispatchAccepted, DispatchRejected, parse_plan
from fleet.bus.publisher import Bus
from fleet.errors import FleetError, UserError
from fleet.schemas.api import DeliberationState, PlanApproved, PlanDispatch

log = logging.getLogger(__name__)

RAW_PREVIEW = 2048  # bytes of a rejected message quoted in its report


class FleetCalls(Protocol):
    """What the bus needs of a fleet (`fleet.driver.Fleet` is one)."""

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch: ...

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState: ...


class PlanConsumer:
    def __init__(self, bus: Bus, fleet: FleetCalls, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """ready: raises `EngineNotReadyError` while the engine is not up (as the HTTP route refuses)."""
        self.bus, self.fleet, self.config, self.ready = bus, fleet, bus.config, ready
        self.sub: JetStreamContext.PullSubscription | None = None
        # counters since this process started (the consumer's own totals are in consumer_info)
        self.acked = self.rejected = self.redelivered = self.naked = 0

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(durable_name=self.config.durable, ack_policy=AckPolicy.EXPLICIT,
                              deliver_policy=DeliverPolicy.ALL, filter_subject=self.config.plan_subject,
                              ack_wait=self.config.ack_wait_s, max_ack_pending=self.config.max_ack_pending,
                              max_deliver=-1)  # never give up on an event: a full queue only delays it

    async def run(self) -> None:
        """Pull and handle messages until cancelled. A batch is handled concurrently."""
        self.sub = sub = await self.bus.jetstream.pull_subscribe(
            self.config.plan_subject, durable=self.config.durable, stream=self.config.plan_stream,
            config=self.consumer_config())
        while True:
            try:
                msgs = await sub.fetch(self.config.fetch_batch, timeout=1.0)
            except TimeoutError:  # nothing to fetch (nats' own TimeoutError is one too)
                continue
            except NatsError as e:  # disconnected: the client reconnects by itself
                self.bus.last_error = f"fetch: {type(e).__name__}: {e}"
                await asyncio.sleep(0.5)
                continue
            await asyncio.gather(*(self.handle(m) for m in msgs))

    async def handle(self, msg: Msg) -> None:
        """One message; never raises (a bug is logged and the message redelivered later)."""
        try:
            await self._handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("bus: handling %s failed; redelivered in %.0fs", msg.subject, self.config.nak_delay_s)
            self.bus.last_error = f"handle: {type(e).__name__}: {e}"
            await self._nak(msg)

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        if meta.num_delivered > 1:
            self.redelivered += 1
        event = parse_plan(msg.data)
        if isinstance(event, str):
            await self._reject(msg, event)
            return
        try:
            if self.ready is not None:
                await self.ready()
            answer = await self.fleet.plan_approved(event.plan())
        except UserError as e:  # the event is wrong for this fleet: retrying cannot help
            await self._reject(msg, f"refused by fleet: {type(e).__name__}: {e}")
            return
        except FleetError as e:  # engine not up, coordinator restarting, store down: later
            log.warning("bus: event %s not dispatched (%s: %s); redelivered in %.0fs", event.event_id,
                        type(e).__name__, e, self.config.nak_delay_s)
            await self._nak(msg)
            return
        if answer.refused():
            log.info("bus: event %s: the queue is full for %s; redelivered in %.0fs", event.event_id,
                     answer.refused(), self.config.nak_delay_s)
            await self._nak(msg)
            return
        await asyncio.gather(*(self.bus.publish(
            "dispatch.accepted",
            DispatchAccepted(event_id=answer.event_id, plan_id=answer.plan_id, story_id=answer.story_id, role=r.role,
                             deliberation_id=r.deliberation_id, error_type=r.error_type, error=r.error),
            msg_id=f"{answer.event_id}:{r.role}:accepted") for r in answer.results))
        await self._ack(msg)

    async def _reject(self, msg: Msg, reason: str) -> None:
        meta = msg.metadata
        log.warning("bus: rejected %s #%d: %s", msg.subject, meta.sequence.stream, reason)
        report = DispatchRejected(reason=reason, subject=msg.subject, stream=meta.stream,
                                  stream_seq=meta.sequence.stream, delivered=meta.num_delivered,
                                  raw=msg.data[:RAW_PREVIEW].decode(errors="replace"))
        await self.bus.publish("dispatch.rejected", report, msg_id=f"rejected:{meta.stream}:{meta.sequence.stream}")
        if await self._ack(msg):
            self.rejected += 1

    async def _ack(self, msg: Msg) -> bool:
        """Ack and wait for the server to take it; False: it will be redelivered (harmless)."""
        try:
            await msg.ack_sync(timeout=self.config.connect_timeout_s)
        except (NatsError, TimeoutError) as e:
            self.bus.last_error = f"ack: {type(e).__name__}: {e}"
            return False
        self.acked += 1
        return True

    async def _nak(self, msg: Msg) -> None:
        try:
            await msg.nak(delay=self.config.nak_delay_s)
            self.naked += 1
        except NatsError as e:  # not delivered: ack_wait redelivers it anyway
            self.bus.last_error = f"nak: {type(e).__name__}: {e}"

    async def pending(self) -> dict[str, int | None] | None:
        """The durable consumer's own counts, as the server keeps them (None: not reachable now)."""
        if self.sub is None:
            return None
        try:
            info = await asyncio.wait_for(self.sub.consumer_info(), 2)
        except (NatsError, TimeoutError):
            return None
        return {"pending": info.num_pending, "ack_pending": info.num_ack_pending,
                "redelivered": info.num_redelivered}

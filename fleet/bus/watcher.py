"""The result watcher: follows each dispatched deliberation to its end and publishes what happened.

It is a second durable pull consumer, on fleet's own `<prefix>.dispatch.accepted` records (one per
role, written by the consumer before it acked the plan event). For each record: publish
`deliberation.started`, await the deliberation (`Fleet.wait`, a long poll of `ack_wait_s / 3`, with an
in-progress ack after each so the record is not redelivered meanwhile), publish `.completed` or
`.failed`, then ack the record. A watcher that dies anywhere in between gets the record again and
does the same again; every publish carries a `Nats-Msg-Id` (deliberation id + kind), so the result
stream stores each result once. What this file leaves out: the plan events themselves (`consumer.py`).
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from fleet.bus.consumer import FleetCalls
from fleet.bus.envelope import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationStarted,
    DispatchAccepted,
    outcome,
    ref_fields,
)
from fleet.bus.publisher import Bus
from fleet.coordinator.tracking import FINISHED
from fleet.errors import FleetError, NotFoundError

log = logging.getLogger(__name__)

MAX_WATCHING = 10_000  # records in flight at once (the watch consumer's max_ack_pending)


class ResultWatcher:
    def __init__(self, bus: Bus, fleet: FleetCalls) -> None:
        self.bus, self.fleet, self.config = bus, fleet, bus.config
        self.watching: dict[str, list[Msg]] = {}  # deliberation id (or event:role) -> deliveries of its record
        self._tasks: set[asyncio.Task[None]] = set()
        self.completed = self.failed = 0

    async def run(self) -> None:
        subject, durable = self.config.subject("dispatch.accepted"), f"{self.config.durable}-watch"
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, filter_subject=subject,
                                ack_wait=self.config.ack_wait_s, max_ack_pending=MAX_WATCHING, max_deliver=-1)
        sub = await self.bus.jetstream.pull_subscribe(subject, durable=durable, stream=self.config.result_stream,
                                                      config=config)
        try:
            while True:
                try:
                    msgs = await sub.fetch(64, timeout=1.0)
                except TimeoutError:  # nothing to fetch (nats' own TimeoutError is one too)
                    continue
                except NatsError as e:
                    self.bus.last_error = f"watch fetch: {type(e).__name__}: {e}"
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self._take(msg)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _take(self, msg: Msg) -> None:
        try:
            ref = DispatchAccepted.model_validate_json(msg.data)
        except ValidationError as e:  # not ours (someone else published here): nothing to watch
            log.warning("bus: ignoring a dispatch record that does not validate: %s", e)
            await self._ack([msg])
            return
        key = ref.deliberation_id or f"{ref.event_id}:{ref.role}"
        if key in self.watching:  # a redelivery while we watch it: ack it too when done
            self.watching[key].append(msg)
            return
        self.watching[key] = [msg]
        task = asyncio.get_running_loop().create_task(self._watch(key, ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, key: str, ref: DispatchAccepted) -> None:
        base = ref_fields(ref)
        did = ref.deliberation_id
        try:
            if did is None:  # the role never started (no council, ...): report it failed
                await self.bus.publish("deliberation.failed", DeliberationFailed(
                    **base, deliberation_id=None, url=None, error_type=ref.error_type or "DispatchError",
                    error=ref.error or "not dispatched"), msg_id=f"{ref.event_id}:{ref.role}:failed")
                self.failed += 1
            else:
                url = f"{self.config.public_url.rstrip('/')}/v1/deliberations/{did}"
                await self.bus.publish("deliberation.started", DeliberationStarted(**base, deliberation_id=did,
                                                                                   url=url), msg_id=f"{did}:started")
                result = await self._finished(ref, did, url)
                kind = "completed" if isinstance(result, DeliberationCompleted) else "failed"
                await self.bus.publish(f"deliberation.{kind}", result, msg_id=f"{did}:{kind}")
                if kind == "completed":
                    self.completed += 1
                else:
                    self.failed += 1
            await self._ack(self.watching.pop(key, []))
        except asyncio.CancelledError:  # shutting down: the record is redelivered to the next watcher
            self.watching.pop(key, None)
            raise
        except Exception:
            log.exception("bus: watching %s failed; its record is redelivered", key)
            self.watching.pop(key, None)

    async def _finished(self, ref: DispatchAccepted, did: str, url: str) -> DeliberationCompleted | DeliberationFailed:
        """Await the deliberation's end, keeping its record's delivery alive; its result event."""
        poll_s = max(self.config.ack_wait_s / 3, 0.5)
        while True:
            try:
                state = await self.fleet.wait(did, poll_s)
            except NotFoundError as e:  # gone (a memory-only coordinator restarted): say so
                return DeliberationFailed(**ref_fields(ref), deliberation_id=did, url=None,
                                          error_type="NotFoundError", error=str(e))
            except FleetError as e:  # the coordinator restarts: ask again
                self.bus.last_error = f"wait {did}: {type(e).__name__}: {e}"
                await asyncio.sleep(min(poll_s, 2.0))
                state = None
            if state is not None and state.status in FINISHED:
                return outcome(ref, state, url)
            for msg in self.watching.get(did, []):
                try:
                    await msg.in_progress()
                except NatsError:  # disconnected: the record may be redelivered, then it joins this watch
                    pass

    async def _ack(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            try:
                await msg.ack_sync(timeout=self.config.connect_timeout_s)
            except (NatsError, TimeoutError) as e:  # redelivered later: the results are de-duplicated
                self.bus.last_error = f"watch ack: {type(e).__name__}: {e}"

"""The coordinator: a Ray actor that owns the councils, their agent actors, and every deliberation.

Every way into fleet (driver script, CLI, `ray job submit`, HTTP) ends here. `submit` resolves the
council (unknown role: `NotFoundError` at once), makes sure one `AgentActor` per agent exists (placed
beside an engine replica through the engine's placement resource), and runs a `Deliberation` over
those actors in a background task, at most `max_concurrent` at a time (the rest are queued). State
and events are kept for `get`, `list` and the event stream. What it leaves out: persistence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray

from fleet.agents.agent import AgentActor
from fleet.config.council import AgentSpec, CouncilSpec, NewAgent
from fleet.config.deliberation import DeliberationRequest, SampleRequest
from fleet.config.fleet import FleetConfig
from fleet.config.plan import PlanApproved, PlanDispatch, RoleDispatch
from fleet.coordinator.admission import TokenCounter, check_prompt_budget, engine_tokenizer
from fleet.coordinator.councils import CouncilRegistry
from fleet.coordinator.deliberation import Deliberation, agent_failure, new_deliberation_id, plan_deliberation_id
from fleet.coordinator.metrics import FleetMetrics
from fleet.coordinator.pool import ActorPool
from fleet.coordinator.store import StateStore
from fleet.coordinator.tracking import FINISHED, Tracked
from fleet.engine.serve_llm import engine_client
from fleet.errors import (
    ConflictError,
    DeliberationFailedError,
    FleetError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    StoreError,
)
from fleet.messages import GenerateRequest
from fleet.record import (
    Checkpoint,
    DeliberationEvent,
    DeliberationRecord,
    DeliberationState,
    Lifecycle,
    Proposal,
    SampleResult,
    TokenTotals,
)
from fleet.scoring.judge import Judge
from fleet.scoring.scorer import RubricScorer

log = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.engine = engine_client(config.engine)  # the judge's engine
        self.actors: dict[str, tuple[AgentSpec, Any]] = {}  # agent_id -> (spec, actor handle)
        self.tracked: dict[str, Tracked] = {}  # deliberation_id -> state, in submission order
        self.plans: dict[str, PlanDispatch] = {}  # event_id -> the first answer (idempotency)
        self.counts: Counter[tuple[str, str]] = Counter()  # (role, record or lifecycle status) -> n
        self._slots = asyncio.Semaphore(config.max_concurrent)
        self._tokenizer_lock = asyncio.Lock()
        self._tokens: TokenCounter | None = None
        self.prompt_check: str | None = None  # how prompt lengths are checked at the door (None: not yet known)
        self.metrics = FleetMetrics()
        self.replaced: Counter[str] = Counter()  # agent_id -> actors that died and were replaced
        self._dead: set[str] = set()  # agents whose actor died since a deliberation last started them
        # Durable state: read once here (the constructor runs before any call), then written through
        # on one thread, in order. A failed write is counted and shown by status(), never dropped silently.
        location = config.state_location()
        self.store = StateStore(location) if location else None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-store")
        self.store_errors: list[str] = []
        snapshot = self.store.load() if self.store else None
        if snapshot and snapshot.unreadable:
            self.store_errors.append(f"load: {len(snapshot.unreadable)} deliberation(s) written by an older fleet "
                                     f"no longer validate and were left in the file: {snapshot.unreadable[:5]}")
        councils = (snapshot.councils if snapshot else None) or config.startup_councils()
        self.councils = CouncilRegistry(councils, config.council_size, config.max_tokens)
        if self.store and not snapshot.councils:
            for c in councils:
                self.store.put_council(c)
        try:  # a Ray async actor's constructor runs on its event loop: resumed runs can start now
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.resumed: list[str] = []
        for state, events in snapshot.deliberations if snapshot else []:
            did = state.deliberation_id
            run = snapshot.runs.get(did) if loop is not None else None
            if run is not None and state.status not in FINISHED:
                # Its coordinator died while it was queued or running: go on from its last completed
                # stage. Events after that stage's are dropped first (the resumed run emits them again).
                self._persist("truncate_events", did, run.events)
                tracked = Tracked(did, run.request, state.role, self._on_change, state, events, resume_at=run.events)
                tracked.task = loop.create_task(self._run(tracked, run.council, run.checkpoint))
                self.resumed.append(did)
            else:  # finished, or nothing to resume from: an unfinished one comes back failed ("interrupted")
                tracked = Tracked(did, None, state.role, self._on_change, state, events)
                if run is not None:
                    self._persist("delete_run", did)
            self.tracked[did] = tracked
            self._count(tracked)
        self.plans = {p.event_id: p for p in snapshot.plans} if snapshot else {}
        self._warming: set[asyncio.Task] = set()
        if loop is not None:
            self._warm([a for c in self.councils.councils.values() if c.role in config.warm_roles
                        for a in self._members(c)])

    def _persist(self, method: str, *args: Any) -> None:
        if self.store is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # constructor: write now
            getattr(self.store, method)(*args)
            return
        future = loop.run_in_executor(self._io, getattr(self.store, method), *args)

        def check(f: asyncio.Future) -> None:
            if not f.cancelled() and f.exception() is not None:
                self.store_errors.append(f"{method}: {f.exception()!r}")

        future.add_done_callback(check)

    def _on_change(self, tracked: Tracked, event: DeliberationEvent) -> None:
        self._persist("add_event", event)
        if event.type == "status":
            self._persist("put_state", tracked.state)
            state = tracked.state
            log.info("deliberation %s role=%s task=%s: %s%s", state.deliberation_id, state.role, state.task_id,
                     state.status, f" ({state.error})" if state.error else "")
            self.metrics.load(*self._load())
        elif event.type == "failure":
            f = event.data
            log.warning("deliberation %s agent=%s stage=%s round=%s failed: %s: %s", event.deliberation_id,
                        f.agent_id, f.stage, f.round, f.error_type, f.message[:300])

    async def ready(self) -> bool:
        await self.engine.warm_up()  # the judge's connection
        return True

    async def fleet_config(self) -> FleetConfig:
        return self.config

    # -- councils ------------------------------------------------------------------------------

    async def list_councils(self) -> list[CouncilSpec]:
        return list(self.councils.councils.values())

    async def get_council(self, role: str) -> CouncilSpec:
        return self.councils.get(role)

    async def create_council(self, spec: CouncilSpec) -> CouncilSpec:
        self._persist("put_council", self.councils.create(spec))
        self._warm(self._members(spec))
        return spec

    async def delete_council(self, role: str) -> None:
        council = self.councils.delete(role)
        self._persist("delete_council", council.role)
        for a in council.agents:
            self._drop_actor(a.agent_id)

    async def add_agent(self, role: str, new: NewAgent) -> AgentSpec:
        agent = self.councils.add_agent(role, new)
        self._persist("put_council", self.councils.get(role))
        self._warm([agent])
        return agent

    async def remove_agent(self, role: str, agent_id: str) -> None:
        self._drop_actor(self.councils.remove_agent(role, agent_id).agent_id)
        self._persist("put_council", self.councils.get(role))

    # -- agents --------------------------------------------------------------------------------

    def _actor(self, spec: AgentSpec) -> Any:
        have = self.actors.get(spec.agent_id)
        if have is not None and have[0] == spec:
            return have[1]
        self._drop_actor(spec.agent_id)
        options: dict[str, Any] = {}
        engine = self.config.engine
        if engine.placement_resource and engine.kind != "inproc_fake":
            options["resources"] = {engine.placement_resource: 0.001}
        handle = AgentActor.options(**options).remote(spec, engine_client(engine), engine.model_id)
        self.actors[spec.agent_id] = (spec, handle)
        return handle

    def _members(self, council: CouncilSpec) -> list[AgentSpec]:
        return [*council.agents, self.councils.architect_for(council)]

    def _warm(self, agents: list[AgentSpec]) -> None:
        """Start these agents' actors now and connect them to the engine, in the background: the
        first deliberation then finds them running. A failure here is logged; the deliberation that
        needs the agent starts it again and records what happens."""
        members = {a.agent_id: a for a in agents}
        if not members:
            return

        async def warm() -> None:
            pool, _ = self._pool(list(members.values()))
            results = await asyncio.gather(
                *(asyncio.wait_for(pool.agent(a).ready(), self.config.deliberation.timeouts.call_s) for a in members),
                return_exceptions=True)
            failed = {a: r for a, r in zip(members, results, strict=True) if isinstance(r, BaseException)}
            log.info("warm agents: %d started%s", len(members) - len(failed), f", failed: {failed}" if failed else "")

        task = asyncio.get_running_loop().create_task(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    def _agent_died(self, agent_id: str, handle: Any) -> None:
        """An agent's actor died: forget it (the next call gets a new one) unless already replaced."""
        have = self.actors.get(agent_id)
        if have is not None and have[1] is handle:
            del self.actors[agent_id]
            self._dead.add(agent_id)

    def _pool(self, members: list[AgentSpec]) -> tuple[ActorPool, list[str]]:
        """The agents' actors (new ones for agents whose actor died), and which were replaced."""
        replaced = sorted(a.agent_id for a in members if a.agent_id in self._dead)
        pool = ActorPool({a.agent_id: self._actor(a) for a in members}, on_dead=self._agent_died)
        for agent_id in replaced:
            self._dead.discard(agent_id)
            self.replaced[agent_id] += 1
        return pool, replaced

    def _drop_actor(self, agent_id: str) -> None:
        have = self.actors.pop(agent_id, None)
        if have is not None:
            ray.kill(have[1])  # non-blocking

    async def agent_nodes(self) -> dict[str, str]:
        """agent_id -> Ray node id, for every agent actor this coordinator holds (placement checks)."""
        ids = list(self.actors)
        nodes = await asyncio.wait_for(asyncio.gather(*(self.actors[a][1].ready.remote() for a in ids)),
                                       self.config.deliberation.timeouts.call_s)
        return dict(zip(ids, nodes, strict=True))

    # -- deliberations -------------------------------------------------------------------------

    async def submit(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationState:
        """Start a deliberation in the background; returns its (queued) state at once. Refused before
        anything is stored: an unknown role (`NotFoundError`), a quorum larger than the council that
        would run or a prompt that can outgrow the engine's context window (`InvalidRequestError`), a
        full queue (`OverloadedError`)."""
        count = await self._token_counter()
        council = self.councils.resolve(request)
        quorum, n = request.config.quorum, len(council.agents)
        if quorum is not None and quorum > n:
            raise InvalidRequestError(f"config.quorum: {quorum} is larger than the council that would run "
                                      f"({council.role}: {n} agents)")
        if count is not None:
            check_prompt_budget(request, council, count, self.config.engine.max_model_len)
        did = deliberation_id or new_deliberation_id()
        if did in self.tracked:
            raise ConflictError(f"deliberation {did!r} exists already")
        _, queued = self._load()
        if queued >= self.config.max_queued:
            raise OverloadedError(f"{queued} deliberations are waiting for a slot (max_queued="
                                  f"{self.config.max_queued}, {self.config.max_concurrent} run at once): retry "
                                  f"in {OverloadedError.retry_after_s}s")
        tracked = Tracked(did, request, council.role, self._on_change)
        self._persist("put_run", did, request, council, len(tracked.events))
        self.metrics.started.inc(tags={"role": council.role})
        self.tracked[did] = tracked
        self._evict()
        tracked.task = asyncio.get_running_loop().create_task(self._run(tracked, council))
        return tracked.state

    async def _token_counter(self) -> TokenCounter | None:
        """The engine's tokenizer, loaded once (in a thread); None: prompt lengths are not checked."""
        async with self._tokenizer_lock:
            if self.prompt_check is None:
                try:
                    self._tokens = await asyncio.to_thread(engine_tokenizer, self.config.engine)
                    self.prompt_check = ("on: the engine's tokenizer" if self._tokens else
                                         "off: no tokenizer for this engine on the coordinator's node")
                except Exception as e:  # reported by status(); requests are still served
                    self.prompt_check = f"off: loading the tokenizer failed: {type(e).__name__}: {e}"
        return self._tokens

    async def _run(self, tracked: Tracked, council: CouncilSpec, checkpoint: Checkpoint | None = None) -> None:
        """Run (or, from `checkpoint`, resume) one deliberation to its end; every outcome is recorded."""
        request, did = tracked.request, tracked.state.deliberation_id

        def saved(cp: Checkpoint) -> None:  # after the stage's events: a resume drops only later ones
            self._persist("put_checkpoint", did, len(tracked.events), cp)

        try:
            async with self._slots:
                tracked.set_status("running")
                architect = self.councils.architect_for(council) if request.config.architect else None
                members = council.agents + ([architect] if architect else [])
                pool, replaced = self._pool(members)
                judge = (Judge(self.engine, self.config.engine.model_id, request.config.judge_max_tokens,
                               layout=request.config.prompt_layout)
                         if request.config.judge else None)
                run = Deliberation(request, council, pool, RubricScorer(judge, request.config.sandbox), did,
                                   on_event=tracked.emit, architect_id=architect.agent_id if architect else None,
                                   checkpoint=checkpoint, on_checkpoint=saved)
                run.record.engine = self.config.engine.info()
                if replaced:
                    run.record.notes.append(f"the actors of {replaced} had died since their last call: "
                                            "they run in new actors")
                try:
                    record = await run.run()
                except asyncio.CancelledError:
                    self._finish(tracked, "cancelled", run.record, "cancelled")
                    raise
        except asyncio.CancelledError:
            if not tracked.finished:  # cancelled while still queued
                self._finish(tracked, "cancelled", None, "cancelled")
            return
        except DeliberationFailedError as e:
            self._finish(tracked, "failed", e.record, str(e))
            return
        except Exception as e:  # a bug, not an agent failure: surfaced in the state, never swallowed
            self._finish(tracked, "failed", None, f"{type(e).__name__}: {e}")
            return
        self._finish(tracked, "done", record, None)

    def _finish(self, tracked: Tracked, status: Lifecycle, record: DeliberationRecord | None,
                error: str | None) -> None:
        tracked.set_status(status, record, error)
        self._persist("delete_run", tracked.state.deliberation_id)  # after the final state: nothing to resume
        self.metrics.ended(tracked.state.role, self._count(tracked), tracked.state.record)

    def _count(self, tracked: Tracked) -> str | None:
        """Count a finished deliberation by role and outcome (the record's status when done, else the
        lifecycle's); returns the outcome (None: not finished, not counted)."""
        state = tracked.state
        if not tracked.finished:
            return None
        outcome = state.record.status if state.record and state.status == "done" else state.status
        self.counts[(state.role, outcome)] += 1
        return outcome

    def _evict(self) -> None:
        finished = [d for d, t in self.tracked.items() if t.finished]
        for did in finished[: max(0, len(self.tracked) - self.config.max_tracked)]:
            del self.tracked[did]
            self._persist("delete_deliberation", did)

    def _get(self, deliberation_id: str) -> Tracked:
        tracked = self.tracked.get(deliberation_id)
        if tracked is None:
            raise NotFoundError(f"no deliberation {deliberation_id!r}")
        return tracked

    async def deliberate(self, request: DeliberationRequest, deliberation_id: str | None = None) -> DeliberationRecord:
        """Submit and wait: the record, or `DeliberationFailedError` (with the partial record)."""
        state = await self.submit(request, deliberation_id)
        tracked = self._get(state.deliberation_id)
        try:
            await asyncio.shield(tracked.task)
        except asyncio.CancelledError:
            tracked.task.cancel()  # our caller went away: so does the deliberation
            raise
        state = tracked.state
        if state.status == "done":
            return state.record
        if state.status == "cancelled":
            raise asyncio.CancelledError(f"deliberation {state.deliberation_id} was cancelled")
        raise DeliberationFailedError(state.error or "failed", state.record)

    async def sample(self, request: SampleRequest) -> SampleResult:
        """`request.n` first drafts from the council's agents in turn, all at once (one deliberation
        slot). Each failed call is a failure in the result; none is retried or replaced."""
        council = self.councils.resolve(request)
        agents = council.agents
        started = time.perf_counter()
        async with self._slots:
            pool, _ = self._pool(agents)
            calls = [(agents[i % len(agents)].agent_id,
                      GenerateRequest(task=request.task, sampling=request.sampling, sample=i // len(agents),
                                      layout=request.prompt_layout))
                     for i in range(request.n)]
            replies = await asyncio.gather(*(asyncio.wait_for(pool.agent(a).generate(req), request.timeouts.call_s)
                                             for a, req in calls), return_exceptions=True)
        result = SampleResult(wall_ms=(time.perf_counter() - started) * 1000)
        for (agent_id, _), reply in zip(calls, replies, strict=True):
            if isinstance(reply, asyncio.CancelledError):
                raise reply
            if isinstance(reply, BaseException):
                result.failures.append(agent_failure(agent_id, "generate", 0, reply, request.timeouts.call_s))
                continue
            result.drafts.append(Proposal(author_id=agent_id, role=council.role, round=0, content=reply.content,
                                          usage=reply.usage))
        result.tokens = TokenTotals.of([d.usage for d in result.drafts])
        return result

    async def wait(self, deliberation_id: str, timeout_s: float) -> DeliberationState:
        """The state once the deliberation ends, or as it is after timeout_s."""
        tracked = self._get(deliberation_id)
        try:
            await asyncio.wait_for(asyncio.shield(tracked.task), timeout_s)
        except TimeoutError:
            pass
        return tracked.state

    async def get_deliberation(self, deliberation_id: str) -> DeliberationState:
        return self._get(deliberation_id).state

    async def list_deliberations(self, role: str | None = None, status: Lifecycle | None = None, offset: int = 0,
                   limit: int = 50) -> tuple[list[DeliberationState], int]:
        """Newest first, filtered; returns (page, total matching)."""
        states = [t.state for t in reversed(self.tracked.values())
                  if (role is None or t.state.role == role.upper()) and (status is None or t.state.status == status)]
        return states[offset: offset + limit], len(states)

    async def events(self, deliberation_id: str, after: int = 0,
                     wait_s: float = 15.0) -> tuple[list[DeliberationEvent], bool]:
        """Events with seq > after (long-polls up to wait_s); (events, finished)."""
        return await self._get(deliberation_id).wait_events(after, wait_s)

    async def cancel(self, deliberation_id: str) -> DeliberationState:
        tracked = self._get(deliberation_id)
        if tracked.finished:
            raise ConflictError(f"deliberation {deliberation_id!r} already ended: {tracked.state.status}")
        tracked.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(tracked.task), self.config.deliberation.timeouts.call_s)
        except (asyncio.CancelledError, TimeoutError):
            pass
        return tracked.state

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        """One deliberation per role, started together; the same event_id again starts nothing. Roles
        the full queue refused are tried again by a repeat (the bus redelivers the event later); a
        role's deliberation id comes from the event id, so no repeat or race starts one twice. The
        answer is in the store before it is returned (the bus acks only then)."""
        before = self.plans.get(event.event_id)
        if before is not None and not before.refused():
            return before
        kept = {r.role: r for r in before.results if r.error_type != "OverloadedError"} if before else {}
        task = event.task.model_copy(update={"story_id": event.story_id})
        results = []
        for role in event.roles:
            if role in kept:
                results.append(kept[role])
                continue
            did = plan_deliberation_id(event.event_id, role)
            request = DeliberationRequest(task=task, role=role, config=event.config or self.config.deliberation)
            try:
                if did not in self.tracked:  # else a concurrent repeat started it
                    await self.submit(request, did)
                results.append(RoleDispatch(role=role, deliberation_id=did))
            except FleetError as e:  # e.g. a role without a council: reported, the others go on
                if did in self.tracked:
                    results.append(RoleDispatch(role=role, deliberation_id=did))
                else:
                    results.append(RoleDispatch(role=role, error_type=type(e).__name__, error=str(e)))
        started = sum(r.deliberation_id is not None for r in results)
        answer = PlanDispatch(event_id=event.event_id, plan_id=event.plan_id, story_id=event.story_id,
                              total=len(results), started=started, failed=len(results) - started, results=results)
        self.plans[event.event_id] = answer
        if self.store is not None:  # awaited: one writer thread, in order, so the runs it started are in too
            try:
                await asyncio.get_running_loop().run_in_executor(self._io, self.store.put_plan, answer)
            except Exception as e:
                raise StoreError(f"the plan answer of event {event.event_id!r} could not be stored: "
                                 f"{type(e).__name__}: {e}") from e
        return answer

    def _load(self) -> tuple[int, int]:
        """(in flight: queued or running, queued)."""
        states = [t.state.status for t in self.tracked.values()]
        return sum(s not in FINISHED for s in states), states.count("queued")

    async def status(self) -> dict[str, Any]:
        in_flight, queued = self._load()
        per_role: dict[str, dict[str, int]] = {}
        for (role, status), n in self.counts.items():
            per_role.setdefault(role, {})[status] = n
        return {
            "councils": {r: [a.agent_id for a in c.agents] for r, c in self.councils.councils.items()},
            "in_flight": in_flight,
            "total": len(self.tracked),
            "finished": sum(self.counts.values()),
            "per_role": per_role,
            "queued": queued,
            "max_queued": self.config.max_queued,
            "agents_replaced": dict(self.replaced),
            "resumed": list(self.resumed),
            "prompt_check": self.prompt_check,
            "engine": self.config.engine.info().model_dump(),
            "store": {"location": self.store.location if self.store else None,
                      "dialect": self.store.dialect if self.store else None, "errors": len(self.store_errors),
                      "last_error": self.store_errors[-1] if self.store_errors else None},
        }


# num_cpus=0: the coordinator only awaits; the CPUs belong to the engines. max_restarts=-1: if its
# process dies, Ray starts it again (its constructor reloads the state file, when there is one); calls
# in flight then fail (the driver says 503, retry) and later calls reach the new one. Its agent actors
# die with it (they are its children) and are made again on demand.
CoordinatorActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(Coordinator)

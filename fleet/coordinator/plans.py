"""Plan dispatch: an approved plan (from the bus or HTTP) starts one deliberation per role, once.

Idempotent on the event id: the same event again starts nothing and returns the first answer; roles
the full queue refused are tried again by a repeat (the bus redelivers the event later). A role's
deliberation id comes from the event id, so no repeat or race starts one twice. The answer is in the
store before it is returned (the bus acks only then).
"""

from __future__ import annotations

from fleet.config.deliberation import DeliberationRequest
from fleet.config.fleet import FleetConfig
from fleet.coordinator.deliberation import plan_deliberation_id
from fleet.coordinator.runs import Runs
from fleet.coordinator.writer import StoreWriter
from fleet.errors import FleetError
from fleet.schemas.api import PlanApproved, PlanDispatch, RoleDispatch


class PlanDispatcher:
    def __init__(self, config: FleetConfig, runs: Runs, store: StoreWriter, answers: list[PlanDispatch]) -> None:
        self.config, self.runs, self.store = config, runs, store
        self.plans: dict[str, PlanDispatch] = {p.event_id: p for p in answers}  # event_id -> latest answer

    async def plan_approved(self, event: PlanApproved) -> PlanDispatch:
        """One deliberation per role, started together; see the module docstring. `StoreError` when
        the answer could not be stored (the bus then redelivers)."""
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
                if did not in self.runs.tracked:  # else a concurrent repeat started it
                    await self.runs.submit(request, did)
                results.append(RoleDispatch(role=role, deliberation_id=did))
            except FleetError as e:  # e.g. a role without a council: reported, the others go on
                if did in self.runs.tracked:
                    results.append(RoleDispatch(role=role, deliberation_id=did))
                else:
                    results.append(RoleDispatch(role=role, error_type=type(e).__name__, error=str(e)))
        started = sum(r.deliberation_id is not None for r in results)
        answer = PlanDispatch(event_id=event.event_id, plan_id=event.plan_id, story_id=event.story_id,
                              total=len(results), started=started, failed=len(results) - started, results=results)
        self.plans[event.event_id] = answer
        await self.store.put_plan(answer)  # one writer thread, in order: the runs it started are in too
        return answer

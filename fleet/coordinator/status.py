"""The coordinator's `status()`: councils, load, outcomes per role, replaced actors, resumed runs, how
prompts are checked, the engine, and the store's health. A plain dict (the HTTP API returns it as is)."""

from __future__ import annotations

from typing import Any

from fleet.config.fleet import FleetConfig
from fleet.coordinator.actors import AgentActors
from fleet.coordinator.admission import Admission
from fleet.coordinator.councils import CouncilRegistry
from fleet.coordinator.runs import Runs
from fleet.coordinator.writer import StoreWriter


def fleet_status(config: FleetConfig, councils: CouncilRegistry, runs: Runs, agents: AgentActors,
                 admission: Admission, store: StoreWriter, resumed: list[str]) -> dict[str, Any]:
    in_flight, queued = runs.load()
    per_role: dict[str, dict[str, int]] = {}
    for (role, status), n in runs.counts.items():
        per_role.setdefault(role, {})[status] = n
    return {
        "councils": {r: [a.agent_id for a in c.agents] for r, c in councils.councils.items()},
        "in_flight": in_flight,
        "total": len(runs.tracked),
        "finished": sum(runs.counts.values()),
        "per_role": per_role,
        "queued": queued,
        "max_queued": config.max_queued,
        "agents_replaced": dict(agents.replaced),
        "resumed": list(resumed),
        "prompt_check": admission.prompt_check,
        "engine": config.engine.info().model_dump(),
        "store": {"location": store.store.location, "dialect": store.store.dialect, "errors": len(store.errors),
                  "last_error": store.errors[-1] if store.errors else None},
    }

"""A starting coordinator's state, read back from the store: councils, deliberations, plan answers,
and the runs a dead coordinator left unfinished.

An unfinished deliberation with a resume point goes on from its last completed stage (its events
after that stage's are dropped first: the resumed run emits them again). One without a resume point,
or read where no event loop runs, comes back failed ("interrupted"), its output kept. Work already
recorded is never recomputed. What this file leaves out: running them (runs.py).
"""

from __future__ import annotations

from fleet.config.council import CouncilSpec
from fleet.config.fleet import FleetConfig
from fleet.coordinator.runs import Runs
from fleet.coordinator.state_store import Snapshot, StateStore
from fleet.coordinator.tracking import FINISHED, Tracked
from fleet.coordinator.writer import StoreWriter


def load(store: StateStore, errors: list[str], config: FleetConfig) -> tuple[Snapshot, list[CouncilSpec]]:
    """The stored snapshot and the councils to start with: the stored ones, else the configured
    startup councils (then written to the store at once). Rows that no longer validate are reported
    in `errors`, not fatal."""
    snapshot = store.load()
    if snapshot.unreadable:
        errors.append(f"load: {len(snapshot.unreadable)} deliberation(s) written by an older fleet "
                      f"no longer validate and were left in the file: {snapshot.unreadable[:5]}")
    councils = snapshot.councils or config.startup_councils()
    if not snapshot.councils:
        for c in councils:
            store.put_council(c)
    return snapshot, councils


def restore(snapshot: Snapshot, runs: Runs, store: StoreWriter, loop_running: bool) -> list[str]:
    """Track every stored deliberation again, resuming the unfinished ones that can be (only with a
    running event loop: a Ray async actor's constructor has one); returns the ids resumed."""
    resumed: list[str] = []
    for state, events in snapshot.deliberations:
        did = state.deliberation_id
        run = snapshot.runs.get(did) if loop_running else None
        if run is not None and state.status not in FINISHED:
            store.truncate_events(did, run.events)
            tracked = Tracked(did, run.request, state.role, runs.on_change, state, events, resume_at=run.events)
            runs.start(tracked, run.request, run.council, run.checkpoint)
            resumed.append(did)
        else:  # finished, or nothing to resume from: an unfinished one comes back failed ("interrupted")
            tracked = Tracked(did, None, state.role, runs.on_change, state, events)
            if run is not None:
                store.delete_run(did)
        runs.adopt(tracked)
    return resumed

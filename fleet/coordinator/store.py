"""Durable coordinator state: councils, deliberations (state + record), their events, plan answers.

One SQLite file (stdlib `sqlite3`), written through as things change, read once when a coordinator
starts. A deliberation that was queued or running when its coordinator stopped comes back `failed`
("interrupted"), with everything it had produced. A row an older fleet wrote that no longer
validates is left in the file untouched and counted in `Snapshot.unreadable` (the coordinator reports
it) instead of stopping the coordinator from starting. All methods block: the coordinator runs them
on one dedicated thread, in order. What this leaves out: sharing one file between coordinators, and
migrations (those come with the versioned schema of a later change).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import BaseModel, ValidationError

from fleet.config.council import CouncilSpec
from fleet.config.plan import PlanDispatch
from fleet.record import DeliberationEvent, DeliberationState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS councils (role TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliberations (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
                                   PRIMARY KEY (id, seq));
CREATE TABLE IF NOT EXISTS plans (event_id TEXT PRIMARY KEY, answer TEXT NOT NULL);
"""


class Snapshot(BaseModel):
    councils: list[CouncilSpec]
    deliberations: list[tuple[DeliberationState, list[DeliberationEvent]]]  # oldest first
    plans: list[PlanDispatch]
    unreadable: list[str] = []  # ids of deliberations whose stored state or events no longer validate


class StateStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: opened in the actor's constructor, then used from its one IO thread.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def load(self) -> Snapshot:
        q = self._db.execute
        states, unreadable = [], set()
        for did, s in q("SELECT id, state FROM deliberations ORDER BY created_at, rowid"):
            try:
                states.append(DeliberationState.model_validate_json(s))
            except ValidationError:
                unreadable.add(did)
        events: dict[str, list[DeliberationEvent]] = {s.deliberation_id: [] for s in states}
        for did, e in q("SELECT id, event FROM events ORDER BY id, seq"):
            try:
                events.setdefault(did, []).append(DeliberationEvent.model_validate_json(e))
            except ValidationError:
                unreadable.add(did)
        return Snapshot(
            councils=[CouncilSpec.model_validate_json(s) for (s,) in q("SELECT spec FROM councils ORDER BY rowid")],
            deliberations=[(s, events[s.deliberation_id]) for s in states if s.deliberation_id not in unreadable],
            plans=[PlanDispatch.model_validate_json(a) for (a,) in q("SELECT answer FROM plans")],
            unreadable=sorted(unreadable),
        )

    def get_state(self, deliberation_id: str) -> DeliberationState | None:
        """One deliberation's stored state (None if absent); raises ValidationError if unreadable."""
        row = self._db.execute("SELECT state FROM deliberations WHERE id = ?", (deliberation_id,)).fetchone()
        return DeliberationState.model_validate_json(row[0]) if row else None

    def put_council(self, spec: CouncilSpec) -> None:
        self._db.execute("INSERT INTO councils VALUES (?, ?) ON CONFLICT(role) DO UPDATE SET spec = excluded.spec",
                         (spec.role, spec.model_dump_json()))

    def delete_council(self, role: str) -> None:
        self._db.execute("DELETE FROM councils WHERE role = ?", (role,))

    def put_state(self, state: DeliberationState) -> None:
        self._db.execute("INSERT INTO deliberations VALUES (?, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET state = excluded.state",
                         (state.deliberation_id, state.created_at.isoformat(), state.model_dump_json()))

    def add_event(self, event: DeliberationEvent) -> None:
        self._db.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?)",
                         (event.deliberation_id, event.seq, event.model_dump_json()))

    def delete_deliberation(self, deliberation_id: str) -> None:
        self._db.execute("DELETE FROM deliberations WHERE id = ?", (deliberation_id,))
        self._db.execute("DELETE FROM events WHERE id = ?", (deliberation_id,))

    def put_plan(self, answer: PlanDispatch) -> None:
        self._db.execute("INSERT OR REPLACE INTO plans VALUES (?, ?)", (answer.event_id, answer.model_dump_json()))

"""Durable coordinator state: councils, deliberations (state + record), their events, plan answers.

One storage layer (SQLAlchemy Core) over two databases, chosen by URL:
- SQLite (`state_path`, or `state_url: sqlite:///...`): the embedded default, one file in WAL mode.
  The file lives on the coordinator's node, so with SQLite the coordinator is kept on the head node
  (a restarted coordinator finds its file again).
- PostgreSQL (`state_url: postgresql://user:password@host/db`, psycopg 3): for clusters, where the
  coordinator may restart on any node and the state must not live on it.

The schema is versioned (`fleet_schema`); opening a database applies the migrations it lacks in one
transaction (under an advisory lock on PostgreSQL, so two coordinators starting together migrate once)
and refuses a database a newer fleet wrote. A SQLite file written before versioning is version 1.

Written through as things change, read once when a coordinator starts. An accepted deliberation's
request and council are stored at once (`runs`), and a checkpoint after each completed stage, so a
restarted coordinator resumes it from there; its row goes when it ends. A row an older fleet wrote
that no longer validates is left untouched and counted in `Snapshot.unreadable` (the coordinator
reports it) instead of stopping the coordinator from starting.

`SqlStore` implements the `StateStore` contract (state_store.py: what each method stores, when, and
its idempotence). All methods block: the coordinator runs them on one dedicated thread, in order
(writer.py), so two writes of one deliberation's state can never land out of order, and its event loop
never waits on the database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.coordinator.state_store import Checkpoint, Snapshot, StoredRun
from fleet.errors import StoreError
from fleet.schemas.api import DeliberationEvent, DeliberationState, PlanDispatch

_meta = sa.MetaData()
_version = sa.Table("fleet_schema", _meta, sa.Column("version", sa.Integer, nullable=False))
_councils = sa.Table("councils", _meta, sa.Column("role", sa.Text, primary_key=True),
                     sa.Column("spec", sa.Text, nullable=False), sa.Column("position", sa.Integer))
_deliberations = sa.Table("deliberations", _meta, sa.Column("id", sa.Text, primary_key=True),
                          sa.Column("created_at", sa.Text, nullable=False), sa.Column("state", sa.Text, nullable=False))
_events = sa.Table("events", _meta, sa.Column("id", sa.Text, primary_key=True),
                   sa.Column("seq", sa.Integer, primary_key=True), sa.Column("event", sa.Text, nullable=False))
_plans = sa.Table("plans", _meta, sa.Column("event_id", sa.Text, primary_key=True),
                  sa.Column("answer", sa.Text, nullable=False))
_runs = sa.Table("runs", _meta, sa.Column("id", sa.Text, primary_key=True),
                 sa.Column("request", sa.Text, nullable=False), sa.Column("council", sa.Text, nullable=False),
                 sa.Column("events", sa.Integer, nullable=False), sa.Column("checkpoint", sa.Text))


def _v1_tables(conn: Connection) -> None:
    """The tables as the first fleet wrote them (SQLite files from before versioning have exactly these)."""
    for ddl in (
        "CREATE TABLE IF NOT EXISTS councils (role TEXT PRIMARY KEY, spec TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS deliberations (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, state TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS events (id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, "
        "PRIMARY KEY (id, seq))",
        "CREATE TABLE IF NOT EXISTS plans (event_id TEXT PRIMARY KEY, answer TEXT NOT NULL)",
    ):
        conn.execute(sa.text(ddl))


def _v2_council_order(conn: Connection) -> None:
    """Councils keep their registration order in a column (v1 relied on SQLite's rowid, which
    PostgreSQL has not)."""
    conn.execute(sa.text("ALTER TABLE councils ADD COLUMN position INTEGER"))
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("UPDATE councils SET position = rowid"))


def _v3_runs(conn: Connection) -> None:
    """What an unfinished deliberation needs to resume: its request, its council, and its last
    checkpoint with the number of events emitted up to it. Deleted when the deliberation ends."""
    conn.execute(sa.text("CREATE TABLE runs (id TEXT PRIMARY KEY, request TEXT NOT NULL, council TEXT NOT NULL, "
                         "events INTEGER NOT NULL, checkpoint TEXT)"))


# Index i brings a database from version i to i + 1. Append; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_tables, _v2_council_order, _v3_runs]
SCHEMA_VERSION = len(MIGRATIONS)


def database_url(location: str) -> str:
    """A SQLAlchemy URL for a state location: a file path (SQLite), `sqlite:///...`, or
    `postgresql://...` (driven by psycopg 3)."""
    if "://" not in location:
        return f"sqlite:///{Path(location).expanduser()}"
    url = make_url(location)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.get_backend_name() == "sqlite":
        return location
    raise StoreError(f"state_url: {url.get_backend_name()!r} is not supported (sqlite or postgresql)")


def redacted(location: str) -> str:
    """The location with any password hidden (for status and logs)."""
    return make_url(location).render_as_string(hide_password=True) if "://" in location else location


class SqlStore:
    """The `StateStore` at `location` (a SQLite path or a database URL), migrated to `SCHEMA_VERSION` on
    open. Raises `StoreError` when the database cannot be reached or a newer fleet wrote it."""

    def __init__(self, location: str) -> None:
        self.location = redacted(location)
        url = database_url(location)
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Opened here (the actor's constructor), then used from its one IO thread.
            options["connect_args"] = {"check_same_thread": False}
        else:
            options["pool_pre_ping"] = True  # a restarted database server: reconnect, don't fail the write
        self._engine = sa.create_engine(url, **options)
        self.dialect = self._engine.dialect.name
        if self.dialect == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_wal)
        try:
            with self._engine.begin() as conn:
                self.version_found = _migrate(conn)
        except sa.exc.OperationalError as e:
            self._engine.dispose()
            raise StoreError(f"state store {self.location}: cannot open: {e.orig}") from None

    def close(self) -> None:
        self._engine.dispose()

    def _upsert(self, table: sa.Table, keys: list[str], update: list[str], **values: Any) -> None:
        """Insert a row, or on a key conflict set the `update` columns (none: keep the row as it is)."""
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table).values(**values)
        statement = (insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in update})
                     if update else insert.on_conflict_do_nothing(index_elements=keys))
        with self._engine.begin() as conn:
            conn.execute(statement)

    def load(self) -> Snapshot:
        states, unreadable = [], set()
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(_deliberations.c.id, _deliberations.c.state)
                                .order_by(_deliberations.c.created_at, _deliberations.c.id))
            for did, s in rows:
                try:
                    states.append(DeliberationState.model_validate_json(s))
                except ValidationError:
                    unreadable.add(did)
            events: dict[str, list[DeliberationEvent]] = {s.deliberation_id: [] for s in states}
            for did, e in conn.execute(sa.select(_events.c.id, _events.c.event).order_by(_events.c.id, _events.c.seq)):
                try:
                    events.setdefault(did, []).append(DeliberationEvent.model_validate_json(e))
                except ValidationError:
                    unreadable.add(did)
            councils = [CouncilSpec.model_validate_json(s) for (s,) in
                        conn.execute(sa.select(_councils.c.spec).order_by(_councils.c.position, _councils.c.role))]
            plans = [PlanDispatch.model_validate_json(a) for (a,) in conn.execute(sa.select(_plans.c.answer))]
            runs = {}
            for did, request, council, n, checkpoint in conn.execute(sa.select(
                    _runs.c.id, _runs.c.request, _runs.c.council, _runs.c.events, _runs.c.checkpoint)):
                try:
                    runs[did] = StoredRun(
                        request=DeliberationRequest.model_validate_json(request),
                        council=CouncilSpec.model_validate_json(council), events=n,
                        checkpoint=Checkpoint.model_validate_json(checkpoint) if checkpoint else None)
                except ValidationError:
                    unreadable.add(did)
        return Snapshot(
            councils=councils,
            deliberations=[(s, events[s.deliberation_id]) for s in states if s.deliberation_id not in unreadable],
            plans=plans,
            runs={did: run for did, run in runs.items() if did not in unreadable},
            unreadable=sorted(unreadable),
        )

    def get_state(self, deliberation_id: str) -> DeliberationState | None:
        """One deliberation's stored state (None if absent); raises ValidationError if unreadable."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(_deliberations.c.state)
                               .where(_deliberations.c.id == deliberation_id)).fetchone()
        return DeliberationState.model_validate_json(row[0]) if row else None

    def put_council(self, spec: CouncilSpec) -> None:
        last = sa.select(sa.func.coalesce(sa.func.max(_councils.c.position), 0) + 1).scalar_subquery()
        # An update keeps the council's place.
        self._upsert(_councils, ["role"], ["spec"], role=spec.role, spec=spec.model_dump_json(), position=last)

    def delete_council(self, role: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_councils).where(_councils.c.role == role))

    def put_state(self, state: DeliberationState) -> None:
        self._upsert(_deliberations, ["id"], ["state"], id=state.deliberation_id,
                     created_at=state.created_at.isoformat(), state=state.model_dump_json())

    def add_event(self, event: DeliberationEvent) -> None:
        self._upsert(_events, ["id", "seq"], ["event"], id=event.deliberation_id, seq=event.seq,
                     event=event.model_dump_json())

    def delete_deliberation(self, deliberation_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_deliberations).where(_deliberations.c.id == deliberation_id))
            conn.execute(sa.delete(_events).where(_events.c.id == deliberation_id))
            conn.execute(sa.delete(_runs).where(_runs.c.id == deliberation_id))

    def truncate_events(self, deliberation_id: str, keep: int) -> None:
        """Drop the deliberation's events after seq `keep` (a resumed run emits them again)."""
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_events).where(_events.c.id == deliberation_id, _events.c.seq > keep))

    def put_run(self, deliberation_id: str, request: DeliberationRequest, council: CouncilSpec, events: int) -> None:
        """A deliberation accepted (`events` emitted so far): what resuming it needs before any stage completes."""
        self._upsert(_runs, ["id"], [], id=deliberation_id, request=request.model_dump_json(),
                     council=council.model_dump_json(), events=events, checkpoint=None)

    def put_checkpoint(self, deliberation_id: str, events: int, checkpoint: Checkpoint) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.update(_runs).where(_runs.c.id == deliberation_id)
                         .values(events=events, checkpoint=checkpoint.model_dump_json()))

    def delete_run(self, deliberation_id: str) -> None:
        """The deliberation ended: nothing to resume."""
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_runs).where(_runs.c.id == deliberation_id))

    def put_plan(self, answer: PlanDispatch) -> None:
        self._upsert(_plans, ["event_id"], ["answer"], event_id=answer.event_id, answer=answer.model_dump_json())


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA journal_mode=WAL")


def _migrate(conn: Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it had (0: empty)."""
    if conn.dialect.name == "postgresql":  # two coordinators opening one database at once migrate once
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7151)"))
    _version.create(conn, checkfirst=True)
    found = conn.execute(sa.select(_version.c.version)).scalar()
    if found is None:  # an empty database, or a SQLite file from before versioning (v1's tables)
        found = 1 if sa.inspect(conn).has_table("councils") else 0
        conn.execute(sa.insert(_version).values(version=found))
    if found > SCHEMA_VERSION:
        raise StoreError(f"the state store has schema version {found}, written by a newer fleet; this fleet "
                         f"knows up to {SCHEMA_VERSION}: upgrade fleet or point state_url elsewhere")
    for version in range(found, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
        conn.execute(sa.update(_version).values(version=version + 1))
    return found


if TYPE_CHECKING:
    from fleet.coordinator.state_store import StateStore

    def _implements_the_contract(store: SqlStore) -> StateStore:  # mypy checks SqlStore against StateStore
        return store

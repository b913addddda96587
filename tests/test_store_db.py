"""The storage layer on both of its databases: SQLite (the embedded default) and a real PostgreSQL
the suite starts on loopback. Round trips, ordering, upserts, schema versions and migrations, and the
errors a user sees when the database is unreachable or newer than fleet."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from fleet import FleetConfig
from fleet.config.council import CouncilSpec
from fleet.coordinator.store import SCHEMA_VERSION, SqlStore, database_url, redacted
from fleet.errors import StoreError
from fleet.schemas.api import DeliberationEvent, DeliberationState, PlanDispatch, RoleDispatch, StatusChange

pytestmark = [pytest.mark.unit, pytest.mark.timeout(180)]

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "state" / "fleet.sqlite")
    return request.getfixturevalue("fresh_database")


def state(did: str, status: str = "queued", minutes: int = 0) -> DeliberationState:
    return DeliberationState(deliberation_id=did, role="DEV", task_id="t", status=status,
                             created_at=T0 + timedelta(minutes=minutes))


def event(did: str, seq: int, status: str) -> DeliberationEvent:
    return DeliberationEvent(seq=seq, deliberation_id=did, type="status", at=T0, data=StatusChange(status=status))


def test_everything_written_comes_back_in_order(location):
    store = SqlStore(location)
    assert store.version_found == 0
    for role in ("QA", "DEV", "ARCHITECT"):  # registration order, not alphabetical
        store.put_council(CouncilSpec.default(role, 2))
    store.put_council(CouncilSpec.default("DEV", 3))  # an update keeps DEV's place
    store.put_state(state("d-late", minutes=5))
    store.put_state(state("d-early"))
    store.put_state(state("d-early", "done"))  # upsert: the last write wins
    for seq, status in ((2, "running"), (1, "queued"), (3, "done")):
        store.add_event(event("d-early", seq, status))
    store.add_event(event("d-early", 3, "failed"))  # same seq again: replaced
    plan = PlanDispatch(event_id="e1", plan_id="p", story_id="s", total=1, started=1, failed=0,
                        results=[RoleDispatch(role="DEV", deliberation_id="d-early")])
    store.put_plan(plan)
    store.close()

    snap = SqlStore(location).load()  # another process, later
    assert [c.role for c in snap.councils] == ["QA", "DEV", "ARCHITECT"]
    assert len(snap.councils[1].agents) == 3
    assert [s.deliberation_id for s, _ in snap.deliberations] == ["d-early", "d-late"]
    (early, events), (late, late_events) = snap.deliberations
    assert early.status == "done" and late.status == "queued" and late_events == []
    assert [(e.seq, e.data.status) for e in events] == [(1, "queued"), (2, "running"), (3, "failed")]
    assert snap.plans == [plan] and snap.unreadable == []


def test_get_and_delete(location):
    store = SqlStore(location)
    store.put_state(state("d1", "done"))
    store.add_event(event("d1", 1, "done"))
    assert store.get_state("d1").status == "done" and store.get_state("nope") is None
    store.delete_deliberation("d1")
    store.put_council(CouncilSpec.default("QA", 2))
    store.delete_council("QA")
    snap = store.load()
    assert snap.deliberations == [] and snap.councils == [] and store.get_state("d1") is None


def test_a_database_a_newer_fleet_wrote_is_refused_untouched(location):
    SqlStore(location).put_state(state("d1"))
    engine = sa.create_engine(database_url(location))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet_schema SET version = 99"))
    with pytest.raises(StoreError, match=r"schema version 99.*newer fleet"):
        SqlStore(location)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM fleet_schema")).scalar() == 99
        assert conn.execute(sa.text("SELECT count(*) FROM deliberations")).scalar() == 1
    engine.dispose()


def test_a_sqlite_file_from_before_versioning_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # exactly what the first fleet wrote (no fleet_schema, no position)
        conn.executescript("""
            CREATE TABLE councils (role TEXT PRIMARY KEY, spec TEXT NOT NULL);
            CREATE TABLE deliberations (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, state TEXT NOT NULL);
            CREATE TABLE events (id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (id, seq));
            CREATE TABLE plans (event_id TEXT PRIMARY KEY, answer TEXT NOT NULL);
        """)
        for role in ("QA", "DEV"):
            conn.execute("INSERT INTO councils VALUES (?, ?)", (role, CouncilSpec.default(role, 2).model_dump_json()))
        s = state("d1", "done")
        conn.execute("INSERT INTO deliberations VALUES (?, ?, ?)", ("d1", s.created_at.isoformat(),
                                                                    s.model_dump_json()))
    store = SqlStore(str(path))
    assert store.version_found == 1
    store.put_council(CouncilSpec.default("ARCHITECT", 2))
    snap = store.load()
    assert [c.role for c in snap.councils] == ["QA", "DEV", "ARCHITECT"]  # v1's rowid order carried over
    assert [s.deliberation_id for s, _ in snap.deliberations] == ["d1"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM fleet_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_two_stores_opening_one_postgres_database_at_once_migrate_it_once(fresh_database):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(SqlStore, [fresh_database] * 4))
    assert sorted(s.version_found for s in stores) == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]
    engine = sa.create_engine(database_url(fresh_database))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM fleet_schema")).scalars().all() == [SCHEMA_VERSION]
    engine.dispose()


def test_an_unreachable_database_is_a_store_error_without_its_password(postgres_url):
    unreachable = postgres_url.rsplit("@", 1)[0] + "@127.0.0.1:1/postgres"
    with pytest.raises(StoreError, match="cannot open") as info:
        SqlStore(unreachable)
    assert "fleet-test-pw" not in str(info.value) and "***" in str(info.value)
    wrong_password = postgres_url.replace("fleet-test-pw", "wrong")
    with pytest.raises(StoreError, match="password authentication failed"):
        SqlStore(wrong_password)


def test_locations_and_config():
    assert database_url("/var/lib/fleet/s.sqlite") == "sqlite:////var/lib/fleet/s.sqlite"
    assert database_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert redacted("postgresql://u:secret@h/d") == "postgresql://u:***@h/d"
    with pytest.raises(StoreError, match="not supported"):
        database_url("mysql://u@h/d")
    url = FleetConfig(state_url="postgresql://u:secret@db:5432/fleet")
    assert url.state_location() == "postgresql://u:secret@db:5432/fleet" and not url.state_on_node()
    assert "secret" not in repr(url) and "secret" not in str(url.model_dump())
    assert FleetConfig(state_path="~/s.sqlite").state_on_node() and FleetConfig().state_location() is None
    with pytest.raises(ValueError, match="not both"):
        FleetConfig(state_path="/x.sqlite", state_url="postgresql://u@h/d")
    with pytest.raises(ValueError, match="expected postgresql"):
        FleetConfig(state_url="mysql://u@h/d")


def test_a_run_keeps_its_request_council_and_last_checkpoint_until_it_ends(location):
    from fleet.config.deliberation import DeliberationRequest
    from fleet.config.task import Task
    from fleet.coordinator.state_store import Checkpoint
    from fleet.schemas.record import DeliberationRecord

    request = DeliberationRequest(task=Task(description="Add a cache"), role="DEV")
    council = CouncilSpec.default("DEV", 3)
    record = DeliberationRecord(deliberation_id="d1", status="completed", task=request.task, council=council,
                                config=request.config, quorum=2, started_at=T0)
    store = SqlStore(location)
    store.put_state(state("d1", "running"))
    for seq in (1, 2, 3, 4):
        store.add_event(event("d1", seq, "running"))
    store.put_run("d1", request, council, 1)
    store.put_run("d1", request, CouncilSpec.default("DEV", 5), 9)  # accepted once: a second put changes nothing
    assert store.load().runs["d1"].events == 1 and store.load().runs["d1"].checkpoint is None
    store.put_checkpoint("d1", 3, Checkpoint(round=0, live=["agent-dev-001"], record=record))
    run = SqlStore(location).load().runs["d1"]
    assert (run.request, run.council, run.events) == (request, council, 3)
    assert run.checkpoint.live == ["agent-dev-001"] and run.checkpoint.record == record
    store.truncate_events("d1", 3)
    assert [e.seq for e in store.load().deliberations[0][1]] == [1, 2, 3]
    store.delete_run("d1")
    assert store.load().runs == {}

"""What people read: the live progress board, the Markdown transcript, `fleet show` on a stored
deliberation (captured output; the fake engine in process)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest
from helpers import local_deliberation
from rich.console import Console

from fleet.cli import main
from fleet.coordinator.store import SqlStore
from fleet.live import Board, follow
from fleet.schemas.api import DeliberationEvent, DeliberationState, StatusChange
from fleet.transcript import markdown

pytestmark = pytest.mark.unit


async def deliberation_with_events(**kw):
    events: list[DeliberationEvent] = []

    def emit(kind, payload):
        events.append(DeliberationEvent(seq=len(events) + 1, deliberation_id="delib-1", type=kind,
                                        at=datetime.now(UTC), data=payload))

    emit("status", StatusChange(status="queued"))
    emit("status", StatusChange(status="running"))
    d, _ = local_deliberation(**kw)
    d._on_event = emit
    record = await d.run()
    emit("status", StatusChange(status="done"))
    return record, events


async def test_markdown_transcript_holds_the_whole_deliberation():
    record, _ = await deliberation_with_events(n=3, rounds=1)
    text = markdown(record)
    assert text.startswith(f"# Deliberation {record.deliberation_id}")
    for heading in ("## Task", "## Proposals", "## Round 1: critiques", "## Round 1: revisions", "## Scores",
                    "## Winner", "## Timings"):
        assert heading in text, heading
    for p in record.proposals:
        assert p.content.strip()[:60] in text
    assert text.count("### agent-dev-00") == len(record.proposals) + len(record.critiques)
    assert f"**{record.selection.winner_candidate}**" in text and record.selection.reason in text  # author@rN
    assert text.count("```") % 2 == 0  # every fence closed


async def test_the_board_follows_each_agent_from_drafting_to_the_winner():
    record, events = await deliberation_with_events(n=3, rounds=1)
    board = Board(["agent-dev-001", "agent-dev-002", "agent-dev-003"], rounds=1)
    seen = []
    for event in events:
        board.apply(event)
        seen.append(dict(board.state))
    assert seen[1] == dict.fromkeys(board.state, "drafting")  # running: everyone drafts
    assert any(set(s.values()) == {"critiquing"} for s in seen)  # once every draft is in
    assert any(v.startswith("revising") for s in seen for v in s.values())
    winner = record.selection.winner_id
    assert board.state[winner] == "WINNER" and board.status == "done"
    assert all(board.state[a].startswith("scored #") for a in board.state if a != winner)


class ReplayFleet:
    """submit/events/get/cancel over recorded events, as the driver offers them."""

    def __init__(self, record, events):
        self.record, self.events_, self.cancelled = record, events, False

    async def submit(self, request):
        return DeliberationState(deliberation_id="delib-1", role="DEV", task_id="t", status="queued",
                                 created_at=datetime.now(UTC))

    async def events(self, did, after=0, wait_s=15.0):
        yield None  # a keep-alive tick
        for e in self.events_:
            yield e

    async def get(self, did):
        return DeliberationState(deliberation_id=did, role="DEV", task_id="t", status="done",
                                 created_at=datetime.now(UTC), record=self.record)

    async def cancel(self, did):
        self.cancelled = True


async def test_live_progress_renders_every_agents_state_to_the_console():
    record, events = await deliberation_with_events(n=3, rounds=1)
    d, _ = local_deliberation(n=3, rounds=1)
    out = io.StringIO()
    state = await follow(ReplayFleet(record, events), d.request, ["agent-dev-001", "agent-dev-002", "agent-dev-003"],
                         Console(file=out, width=140, force_terminal=False))
    text = out.getvalue()
    assert state.record is record
    assert "WINNER" in text and text.count("scored #") == 2 and "deliberation done" in text


def test_fleet_show_reads_a_stored_deliberation(tmp_path, capsys):
    # sync: `main` is the CLI's synchronous edge (it runs its own event loop)
    record, _ = asyncio.run(deliberation_with_events(n=2, rounds=1))
    path = str(tmp_path / "state.sqlite")
    SqlStore(path).put_state(DeliberationState(deliberation_id="delib-1", role="DEV", task_id="t", status="done",
                                               created_at=datetime.now(UTC), record=record))
    out = tmp_path / "t.md"
    assert main(["show", "delib-1", "--state", path, "--format", "markdown", "--out", str(out)]) == 0
    assert out.read_text() == markdown(record)
    assert main(["show", "delib-1", "--state", path]) == 0
    assert "WINNER:" in capsys.readouterr().out
    assert main(["show", "delib-nope", "--state", path]) == 2
    assert "no deliberation 'delib-nope'" in capsys.readouterr().err
    assert main(["show", "delib-1", "--state", str(tmp_path / "absent.sqlite")]) == 2

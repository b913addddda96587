"""Live progress of one deliberation in the terminal: each agent's state as the events arrive
(drafting -> drafted -> critiquing -> revising -> scored -> winner), with `rich`.

`follow(fleet, request, agents, console)` submits the request, renders the states of `agents` (and of
any agent the events name) from the deliberation's event stream (the same stream the HTTP API serves)
and returns the final state. Cancelling it (Ctrl-C at the CLI) cancels the deliberation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fleet.config.deliberation import DeliberationRequest
from fleet.schemas.api import DeliberationEvent, DeliberationState, StatusChange
from fleet.schemas.record import AgentFailure, Critique, Proposal, Selection
from fleet.schemas.scoring import ScoreCard


class FollowedFleet(Protocol):
    """What `follow` needs of a fleet (fleet.driver.Fleet has it; tests replay a record)."""

    async def submit(self, request: DeliberationRequest, /) -> DeliberationState: ...

    def events(self, deliberation_id: str, /, *, wait_s: float) -> AsyncIterator[DeliberationEvent | None]: ...

    async def cancel(self, deliberation_id: str, /) -> object: ...

    async def get(self, deliberation_id: str, /) -> DeliberationState: ...


class Board:
    """Every agent's state, from the events seen so far (pure: tested without a terminal)."""

    def __init__(self, agents: list[str], rounds: int) -> None:
        self.rounds = rounds
        self.state: dict[str, str] = dict.fromkeys(agents, "waiting")
        self.detail: dict[str, str] = dict.fromkeys(agents, "")
        self.status = "queued"
        self.started = time.perf_counter()

    def _set(self, agent: str, state: str, detail: str = "") -> None:
        self.state[agent] = state
        if detail:
            self.detail[agent] = detail

    def apply(self, event: DeliberationEvent) -> None:
        data = event.data
        if event.type == "status" and isinstance(data, StatusChange):
            self.status = data.status
            if data.status == "running":
                for a in self.state:
                    self._set(a, "drafting")
        elif event.type in ("proposal", "revision") and isinstance(data, Proposal):
            fb = data.feedback
            checks = (f"visible tests {fb.tests_passed}/{fb.tests_total}" if fb and fb.tests_total
                      else "no code block" if fb and not fb.code_found else "")
            done = "drafted" if event.type == "proposal" else f"revised (round {data.round})"
            self._set(data.author_id, done, ", ".join(x for x in (f"{data.usage.completion_tokens} tok", checks) if x))
            if event.type == "proposal" and self.rounds and all(s != "drafting" for s in self.state.values()):
                for a, s in self.state.items():
                    if s == "drafted":
                        self._set(a, "critiquing")
        elif event.type == "critique" and isinstance(data, Critique):
            if not self.state.get(data.author_id, "").startswith("failed"):
                self._set(data.author_id, f"revising (round {data.round})")
        elif event.type == "failure" and isinstance(data, AgentFailure):
            self._set(data.agent_id, f"failed at {data.stage}", f"{data.error_type}: {data.message[:60]}")
        elif event.type == "score" and isinstance(data, ScoreCard):
            judge = f", judge {data.judge.score:.1f}" if data.judge else ""
            self._set(data.author_id, f"scored #{data.rank}", f"total {data.total:.3f}{judge}")
        elif event.type == "winner" and isinstance(data, Selection):
            self._set(data.winner_id, "WINNER", data.reason[:80])

    def table(self) -> Table:
        t = Table(title=f"deliberation {self.status}  {time.perf_counter() - self.started:.0f}s", expand=False)
        t.add_column("agent")
        t.add_column("state")
        t.add_column("detail")
        for agent, state in self.state.items():
            t.add_row(agent, state, self.detail.get(agent, ""))
        return t


async def follow(fleet: FollowedFleet, request: DeliberationRequest, agents: list[str],
                 console: Console) -> DeliberationState:
    """Submit `request`, show its agents' progress until it ends, return its final state."""
    state = await fleet.submit(request)
    did = state.deliberation_id
    board = Board(agents, request.config.rounds)
    try:
        with Live(board.table(), console=console, refresh_per_second=4, transient=False) as live:
            async for event in fleet.events(did, wait_s=1.0):
                if event is not None:
                    board.apply(event)  # an agent not on the board yet (a custom role's) joins it here
                live.update(board.table())
    except asyncio.CancelledError:
        await asyncio.shield(fleet.cancel(did))
        raise
    return await fleet.get(did)

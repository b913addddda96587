"""The `Selector` interface, what a selector gets (`Pool`), and the rules every selector shares.

A selector chooses the winner among a deliberation's candidates: every proposal of every round
(drafts and revisions), each with its score card and, for code, its behaviour group. One module per
variant: `consensus` (groups by visible tests passed, then agreement), `architect` (an agent
chooses, reading where the candidates' outputs differ), `top_score` (the highest total).

The rule every selector inherits through `Pool.cards`: a revision that passes fewer visible tests
than its parent never ranks above it (`demote_regressions`). What this file leaves out: the agent
call (the deliberation hands the architect an `ask`) and how candidates are scored.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from fleet.config.task import Task
from fleet.schemas.record import Proposal, Selection, SelectionMethod
from fleet.schemas.scoring import ScoreCard
from fleet.schemas.usage import CallUsage
from fleet.selection.models import Behaviour


@dataclass
class Pool:
    """What a selector chooses from. cards: best first; `among`: the candidate ids to choose between
    (set when one selector hands a near-tie to another; None: the top k cards)."""

    task: Task
    proposals: dict[str, Proposal]  # candidate id -> proposal
    cards: list[ScoreCard]
    behaviour: Behaviour | None = None
    among: list[str] | None = None

    def card(self, candidate: str) -> ScoreCard:
        return next(c for c in self.cards if cid(c) == candidate)

    def top(self) -> list[str]:
        return self.among if self.among is not None else [cid(c) for c in self.cards[: self.task.k]]


class Selector(abc.ABC):
    name: str

    @abc.abstractmethod
    async def select(self, pool: Pool) -> Selection:
        """The winner among `pool`'s candidates, with the reason. Never raises for what an agent did."""


def cid(card: ScoreCard) -> str:
    return card.candidate_id or card.author_id


def visible(card: ScoreCard) -> tuple[int, int]:
    """(passed, total) of the card's visible tests; (0, 0) when it has none."""
    check = next((c for c in card.checks if c.name == "tests:visible" and c.status != "skipped"), None)
    return (check.tests_passed or 0, check.tests_total or 0) if check else (0, 0)


def lineage_roots(proposals: list[Proposal]) -> dict[str, str]:
    """candidate id -> the draft its lineage starts from (a revision and its parent share a root).

    >>> from fleet.messages import CallUsage
    >>> u = CallUsage(agent_id="a", stage="generate", round=0, prompt_tokens=0, completion_tokens=0,
    ...               latency_ms=0, finish_reason="stop")
    >>> ps = [Proposal(author_id="a", role="DEV", round=0, content="", usage=u),
    ...       Proposal(author_id="a", role="DEV", round=1, content="", usage=u, parent_id="a@r0")]
    >>> lineage_roots(ps)
    {'a@r0': 'a@r0', 'a@r1': 'a@r0'}
    """
    parent = {p.candidate_id: p.parent_id for p in proposals}
    roots = {}
    for c in parent:
        root, seen = c, {c}
        while (up := parent.get(root)) is not None and up in parent and up not in seen:
            root = up
            seen.add(root)
        roots[c] = root
    return roots


def demote_regressions(cards: list[ScoreCard], proposals: dict[str, Proposal]) -> tuple[list[ScoreCard], list[str]]:
    """Cards (best first) re-ranked so that no revision passing fewer visible tests than its parent
    ranks above that parent (it moves to just below it). Returns the cards, ranks renumbered, and a
    note per regression (kept and recorded, never above its parent)."""
    order = [cid(c) for c in cards]
    by = {cid(c): c for c in cards}
    notes = []
    changed = True
    while changed:  # a chain of regressions settles in as many passes as it is long
        changed = False
        for c in list(order):
            p = proposals.get(c)
            parent = p.parent_id if p else None
            if parent not in by or visible(by[c])[0] >= visible(by[parent])[0]:
                continue
            note = (f"{c} passes fewer visible tests than its parent {parent} "
                    f"({visible(by[c])[0]} < {visible(by[parent])[0]}): kept, never ranked above it")
            if note not in notes:
                notes.append(note)
            if order.index(c) < order.index(parent):
                order.remove(c)
                order.insert(order.index(parent) + 1, c)
                changed = True
    return [by[c].model_copy(update={"rank": i + 1}) for i, c in enumerate(order)], notes


def selection(pool: Pool, winner: str, candidates: list[str], method: SelectionMethod, reason: str,
              runner_up: str | None = None, architect_id: str | None = None,
              usage: CallUsage | None = None) -> Selection:
    return Selection(winner_id=pool.proposals[winner].author_id if winner in pool.proposals else winner,
                     winner_candidate=winner, candidates=candidates, runner_up=runner_up, reason=reason,
                     method=method, architect_id=architect_id, usage=usage)

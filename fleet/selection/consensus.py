"""`consensus`: CodeT-style. Candidates are grouped by identical outputs on the probe inputs; groups
rank by the visible tests their representative passes, then by their crashes (probe inputs on which
they raise an error their code does not raise itself, where another candidate returns a value: an
`IndexError` on `[]` is a bug the hidden tests are likely to try, a `ValueError` the code raises on
purpose is an answer), then by agreement (distinct lineages: a revision and its parent count once),
then size, then the best score card among them. The winner is the leading group's representative
(its member that passes most visible tests, then ranks best).

When the top two groups tie on visible tests, crashes and agreement, a tie-breaker (the architect) chooses
among the tied groups' representatives; without one, or with no behaviour to compare (no code ran),
the order above (or the top total) decides.

    >>> g = lambda vis, agree, m: BehaviourGroup(members=[m], outputs=[m], visible_passed=vis, visible_total=2,
    ...                                          agreement=agree)
    >>> [x.members[0] for x in rank_groups([g(1, 3, "a"), g(2, 1, "b"), g(2, 2, "c")], {"a": 0, "b": 1, "c": 2})]
    ['c', 'b', 'a']
"""

from __future__ import annotations

from collections import defaultdict

from fleet.schemas.record import Selection
from fleet.selection.base import Pool, Selector, cid, selection
from fleet.selection.models import BehaviourGroup, ProbeRow
from fleet.selection.top_score import top_score


def group_key(g: BehaviourGroup) -> tuple[int, int, int]:
    """What a near-tie compares: visible tests passed, then crashes, then agreement."""
    return (g.visible_passed, -g.crashes, g.agreement)


def rank_groups(groups: list[BehaviourGroup], rank: dict[str, int]) -> list[BehaviourGroup]:
    """Best first. rank: candidate id -> its score card's position (ties after agreement and size)."""
    # Code that did not run never leads code that ran as well on the visible tests.
    return sorted(groups, key=lambda g: (-g.visible_passed, g.outputs is None, g.crashes, -g.agreement,
                                         -len(g.members), rank[g.members[0]]))


def crashes(outputs: list[str] | None, valued: list[bool], own: set[str]) -> int:
    """Inputs on which `outputs` holds an error (`!Type`) not among `own` (the types the code raises
    itself) where some candidate returns a value (`valued`).

    >>> crashes(["[]", "!IndexError", "!ValueError", "!TypeError"], [True, True, True, False], {"ValueError"})
    1
    """
    if outputs is None:
        return 0
    return sum(o.startswith("!") and v and o[1:] not in own for o, v in zip(outputs, valued, strict=False))


def returned_values(table: list[ProbeRow]) -> list[bool]:
    """Per probe input: whether some candidate's code returns a value there (not `!Type`)."""
    ran = [r.outputs for r in table if r.outputs is not None]
    return [any(not o[i].startswith("!") for o in ran if i < len(o)) for i in range(max(map(len, ran), default=0))]


def make_groups(table: list[ProbeRow], vis: dict[str, tuple[int, int]], roots: dict[str, str],
                rank: dict[str, int], raises: dict[str, set[str]] | None = None) -> list[BehaviourGroup]:
    """Candidates with the same outputs, one group each (a candidate whose code did not run stands
    alone: failing to run is no agreement), in consensus order. raises: candidate id -> the exception
    types its code raises itself (None: none known, every error is a crash)."""
    by: dict[object, list[str]] = defaultdict(list)
    for row in table:
        by[tuple(row.outputs) if row.outputs is not None else ("!did-not-run", row.candidate_id)].append(
            row.candidate_id)
    valued = returned_values(table)
    out = []
    outputs = {r.candidate_id: r.outputs for r in table}
    for members in by.values():
        members.sort(key=lambda c: (-vis[c][0], rank[c]))
        best = members[0]
        own = set().union(*((raises or {}).get(c, set()) for c in members))
        out.append(BehaviourGroup(members=members, outputs=outputs[best], visible_passed=vis[best][0],
                                  visible_total=vis[best][1], agreement=len({roots[c] for c in members}),
                                  crashes=crashes(outputs[best], valued, own)))
    return rank_groups(out, rank)


class Consensus(Selector):
    name = "consensus"

    def __init__(self, tie_break: Selector | None = None) -> None:
        self.tie_break = tie_break

    async def select(self, pool: Pool) -> Selection:
        b = pool.behaviour
        if b is None or not b.groups or all(g.outputs is None for g in b.groups):
            return top_score(pool, "no candidate's code ran on the probe inputs, so the top total wins")
        groups = b.groups
        lead = groups[0]
        tied = [g for g in groups if group_key(g) == group_key(lead)][: max(pool.task.k, 2)]
        reps = [g.members[0] for g in groups[: max(pool.task.k, 1)]]
        if len(tied) > 1 and self.tie_break is not None:
            among = [g.members[0] for g in tied]
            return await self.tie_break.select(Pool(pool.task, pool.proposals, pool.cards, b, among))
        return selection(pool, lead.members[0], reps, "consensus", explain(pool, groups, tied),
                         runner_up=reps[1] if len(reps) > 1 else None)


def explain(pool: Pool, groups: list[BehaviourGroup], tied: list[BehaviourGroup]) -> str:
    lead = groups[0]
    b = pool.behaviour
    n = b.lineages if b else 0
    why = (f"{lead.members[0]} represents the leading behaviour group: {lead.visible_passed}/{lead.visible_total} "
           f"visible tests, {lead.agreement} of {n} lineages agree ({', '.join(lead.members)})")
    if lead.crashes:
        why += f"; it crashes on {lead.crashes} probe input(s) where another candidate returns a value"
    if len(groups) > 1:
        nxt = groups[1]
        why += (f"; next: {nxt.members[0]}'s group, {nxt.visible_passed}/{nxt.visible_total} visible, "
                f"{nxt.agreement} agree")
        if nxt.crashes > lead.crashes and (nxt.visible_passed, nxt.agreement) >= (lead.visible_passed, lead.agreement):
            why += f", but it crashes on {nxt.crashes} probe input(s) where another candidate returns a value"
    if len(tied) > 1:
        why += "; tied on tests, crashes and agreement with no tie-breaker: group size, then the best card decide"
    best = pool.card(lead.members[0])
    if cid(best) != cid(pool.cards[0]):
        why += f" (the top total, {cid(pool.cards[0])}, is in a weaker group)"
    return why

"""`architect`: an ARCHITECT agent chooses among candidates, reading their checks and, for code, the
probe inputs on which their outputs differ with each one's outputs there (never a model's expected
output). Prose tasks: among the top k score cards. Code: among the tied groups' representatives a
consensus hands it (`Pool.among`). When the agent fails, the fallback selector decides and the
reason says why.

`ask` is the deliberation's call of its architect: it returns the decision with the call's usage,
or a sentence saying why there is none (the failure is recorded there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fleet.config.deliberation import PromptLayout
from fleet.messages import Candidate, Decision, SelectRequest
from fleet.schemas.record import Selection
from fleet.schemas.usage import CallUsage
from fleet.scoring.judge import card_summary
from fleet.selection.base import Pool, Selector, selection

Ask = Callable[[SelectRequest], Awaitable[tuple[Decision, CallUsage] | str]]
_SHOWN = 6  # differing inputs shown per candidate


def behaviour_summary(pool: Pool, candidate: str, among: list[str]) -> str:
    """Its group and its outputs on the inputs where `among` differ ('' without behaviour)."""
    b = pool.behaviour
    if b is None:
        return ""
    group = b.group_of(candidate)
    if group is None:
        return ""
    row = next((r for r in b.table if r.candidate_id == candidate), None)
    if group.outputs is None:
        return f"\n- behaviour: its code did not run ({row.error if row else 'no result'})"
    groups = [g for c in among if (g := b.group_of(c)) is not None]
    lines = [f"\n- behaviour: {group.agreement} of {b.lineages} lineages give these outputs"]
    for i in b.differing(groups)[:_SHOWN]:
        err = row.errors[i] if row and i < len(row.errors) and row.errors[i] else ""
        lines.append(f"    {b.probes[i].expression} -> {err or group.outputs[i]}")
    return "\n".join(lines)


class Architect(Selector):
    name = "architect"

    def __init__(self, ask: Ask, fallback: Selector, architect_id: str, layout: PromptLayout = "shared_prefix",
                 ) -> None:
        self.ask, self.fallback, self.architect_id, self.layout = ask, fallback, architect_id, layout

    async def select(self, pool: Pool) -> Selection:
        among = pool.top()
        if len(among) < 2:
            return await self.fallback.select(pool)
        request = SelectRequest(task=pool.task, layout=self.layout, candidates=[
            Candidate(author_id=c, content=pool.proposals[c].content,
                      summary=card_summary(pool.card(c)) + behaviour_summary(pool, c, among)) for c in among])
        answer = await self.ask(request)
        if isinstance(answer, str):
            fell = await self.fallback.select(Pool(pool.task, pool.proposals, pool.cards, pool.behaviour))
            return fell.model_copy(update={"reason": f"{answer}, so the fallback decides: {fell.reason}"})
        decision, usage = answer
        tie = " (a near-tie: the groups pass as many visible tests and agree as much)" if pool.among else ""
        return selection(pool, decision.winner, among, "architect", decision.reasons + tie,
                         runner_up=decision.runner_up, architect_id=self.architect_id, usage=usage)

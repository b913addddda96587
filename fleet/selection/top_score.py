"""`top_score`: the highest total among the top k cards wins (the fallback of the other selectors)."""

from __future__ import annotations

from fleet.schemas.record import Selection
from fleet.scoring.ranking import top_total_reason
from fleet.selection.base import Pool, Selector, cid, selection


class TopScore(Selector):
    name = "top_score"

    def __init__(self, why: str = "") -> None:
        self.why = why

    async def select(self, pool: Pool) -> Selection:
        return top_score(pool, self.why)


def top_score(pool: Pool, why: str = "") -> Selection:
    if not pool.cards:
        raise ValueError("nothing to select from")
    ids = pool.top()
    cards = sorted((pool.card(c) for c in ids), key=lambda c: c.rank)
    ids = [cid(c) for c in cards]
    return selection(pool, ids[0], ids, "top-score", top_total_reason(cards, ids, why),
                     runner_up=ids[1] if len(ids) > 1 else None)

"""`top_score`: the highest total among the top k cards wins (the fallback of the other selectors)."""

from __future__ import annotations

from fleet.record import Selection
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
    best = cards[0]
    parts = [why] if why else []
    parts.append(f"{cid(best)} has the highest total {best.total:.3f} among the top {len(cards)}")
    if len(cards) > 1:
        parts.append(f"ahead of {cid(cards[1])} by {best.total - cards[1].total:.3f}")
    failed = [c.name for c in best.checks if c.status == "failed"]
    parts.append(f"failed checks: {failed}" if failed else "no check failed")
    return selection(pool, cid(best), ids, "top-score", "; ".join(parts),
                     runner_up=cid(cards[1]) if len(cards) > 1 else None)

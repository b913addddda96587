"""Turn checks and verdicts into ranked score cards, and the fallback selection (top total).

Components and weights: `fleet.config.scoring` (tests, then lint, then the judge, then structure).
The architect's choice among the top k lives in the deliberation (an agent call); this file only
measures and orders.
"""

from __future__ import annotations

from fleet.config.scoring import ScoreWeights
from fleet.schemas.record import Selection
from fleet.schemas.scoring import Check, JudgeVerdict, ScoreCard


def components(checks: list[Check], judge: JudgeVerdict | None) -> dict[str, float]:
    """The 0..1 components that apply to a proposal.

    >>> components([Check(name="tests:hidden", status="failed", score=0.5, tests_passed=1, tests_total=2)], None)
    {'tests': 0.5}
    """
    by_name = {c.name: c for c in checks}
    out: dict[str, float] = {}
    tests = [c for c in checks if c.name.startswith("tests:") and c.status != "skipped"]
    total = sum(c.tests_total or 0 for c in tests)
    if tests:
        out["tests"] = sum(c.tests_passed or 0 for c in tests) / total if total else 0.0
    parses, lint = by_name.get("parses"), by_name.get("lint")
    if parses is not None and parses.status != "skipped":
        out["lint"] = lint.score if parses.passed and lint is not None else 0.0
    if judge is not None:
        out["judge"] = (judge.score - 1) / 9
    if "structure" in by_name:
        out["structure"] = by_name["structure"].score
    return out


def total_score(parts: dict[str, float], weights: ScoreWeights) -> float:
    """Weighted mean over the components present (absent ones renormalise the rest).

    >>> round(total_score({"tests": 1.0, "judge": 0.0}, ScoreWeights(tests=0.6, lint=0.2, judge=0.2, structure=0)), 6)
    0.75
    """
    w = weights.model_dump()
    denom = sum(w[k] for k in parts)
    return sum(w[k] * v for k, v in parts.items()) / denom if denom else 0.0


def rank(results: dict[str, tuple[list[Check], JudgeVerdict | None]], weights: ScoreWeights) -> list[ScoreCard]:
    """author_id -> (checks, verdict) ==> score cards, best first. Ties: tests, lint, judge, then
    the lower author id."""
    rows = []
    for author, (checks, judge) in results.items():
        parts = components(checks, judge)
        total = round(total_score(parts, weights), 4)
        key = (-total, -parts.get("tests", 0.0), -parts.get("lint", 0.0), -parts.get("judge", 0.0), author)
        rows.append((key, author, checks, judge, parts, total))
    rows.sort(key=lambda r: r[0])
    return [
        ScoreCard(author_id=a, checks=c, judge=j, components={k: round(v, 4) for k, v in p.items()}, total=t,
                  rank=i + 1)
        for i, (_, a, c, j, p, t) in enumerate(rows)
    ]


def top_total_reason(cards: list[ScoreCard], ids: list[str], why: str = "") -> str:
    """Why the first of `cards` (best first, named `ids`) wins on its total: the margin, its failed checks."""
    best = cards[0]
    parts = [why] if why else []
    parts.append(f"{ids[0]} has the highest total {best.total:.3f} among the top {len(cards)}")
    if len(cards) > 1:
        parts.append(f"ahead of {ids[1]} by {best.total - cards[1].total:.3f}")
    failed = [c.name for c in best.checks if c.status == "failed"]
    parts.append(f"failed checks: {failed}" if failed else "no check failed")
    return "; ".join(parts)


def select_top_score(cards: list[ScoreCard], k: int, why: str = "") -> Selection:
    """The highest total among the top k wins; the reason names the margin and the failed checks."""
    if not cards:
        raise ValueError("nothing to select from")
    candidates = cards[:k]
    ids = [c.author_id for c in candidates]
    return Selection(winner_id=ids[0], candidates=ids, runner_up=ids[1] if len(ids) > 1 else None,
                     reason=top_total_reason(candidates, ids, why), method="top-score")

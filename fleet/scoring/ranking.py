"""Turn checks and verdicts into ranked score cards, and select the winner among the top k."""

from __future__ import annotations

from fleet.record import Check, JudgeVerdict, ScoreCard, Selection


def total_score(checks: list[Check], judge: JudgeVerdict | None, judge_weight: float = 0.3) -> tuple[float, float]:
    """(checks_score, total). The judge's 1-10 maps to 0-1 and weighs `judge_weight`.

    >>> total_score([Check(name="a", passed=True, score=1.0)], None)
    (1.0, 1.0)
    """
    checks_score = sum(c.score for c in checks) / len(checks) if checks else 0.0
    if judge is None:
        return checks_score, checks_score
    return checks_score, (1 - judge_weight) * checks_score + judge_weight * (judge.score - 1) / 9


def rank(results: dict[str, tuple[list[Check], JudgeVerdict | None]], judge_weight: float = 0.3) -> list[ScoreCard]:
    """author_id -> (checks, verdict) ==> score cards, best first; ties go to the lower author id."""
    rows = [(author, checks, judge, *total_score(checks, judge, judge_weight))
            for author, (checks, judge) in results.items()]
    rows.sort(key=lambda r: (-r[4], r[0]))
    return [
        ScoreCard(author_id=a, checks=c, checks_score=round(cs, 4), judge=j, total=round(t, 4), rank=i + 1)
        for i, (a, c, j, cs, t) in enumerate(rows)
    ]


def select_top_k(cards: list[ScoreCard], k: int) -> Selection:
    """The highest total among the top k wins; the reason names the margin and the failed checks."""
    if not cards:
        raise ValueError("nothing to select from")
    candidates = cards[:k]
    best = candidates[0]
    parts = [f"{best.author_id} has the highest total {best.total:.3f} among the top {len(candidates)}"]
    if len(candidates) > 1:
        parts.append(f"ahead of {candidates[1].author_id} by {best.total - candidates[1].total:.3f}")
    failed = [c.name for c in best.checks if not c.passed]
    parts.append(f"failed checks: {failed}" if failed else "it passed every check")
    if best.judge:
        parts.append(f"judge gave {best.judge.score}/10: {best.judge.reason}")
    return Selection(winner_id=best.author_id, candidates=[c.author_id for c in candidates],
                     reason="; ".join(parts), method="top-score")

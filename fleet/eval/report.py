"""The eval's Markdown report: pass@1 with a 95% interval, oracle@pool (coverage: some answer the
strategy made passes, apart from whether it was chosen), tokens and wall time per strategy, the
paired comparison of the council with each baseline, and every problem's outcome."""

from __future__ import annotations

import math
from collections import Counter

from fleet.eval.rows import STRATEGIES, EvalRow, Strategy


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 0) for n == 0.

    >>> [round(x, 3) for x in wilson(29, 40)]
    [0.572, 0.839]
    """
    if n == 0:
        return 0.0, 0.0
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_1(passed: int, n: int) -> str:
    """A table's pass@1 cells: the rate and its 95% interval.

    >>> pass_at_1(29, 40)
    '29/40 = 0.725 | [0.572, 0.839]'
    """
    lo, hi = wilson(passed, n)
    return f"{passed}/{n} = {passed / n:.3f} | [{lo:.3f}, {hi:.3f}]"


def paired(first: list[EvalRow], second: list[EvalRow]) -> Counter[tuple[bool, bool]]:
    """(first passed, second passed) -> problems, over the problems both ran."""
    pa = {r.problem: r.passed for r in first}
    pb = {r.problem: r.passed for r in second}
    return Counter((pa[p], pb[p]) for p in pa if p in pb)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def vote_sizes(rows: list[EvalRow]) -> Counter[int]:
    return Counter(int(r.detail.get("n", 0)) for r in rows if r.strategy == "vote")


def render(rows: list[EvalRow], header: list[str] | None = None) -> str:
    """The report for `rows` (one per problem and strategy)."""
    by = {s: [r for r in rows if r.strategy == s] for s in STRATEGIES}
    present = [s for s in STRATEGIES if by[s]]
    out = list(header or [])
    out += ["| strategy | problems | pass@1 | 95% interval | oracle@pool | prompt tok / problem "
            "| completion tok / problem | calls / problem | wall s / problem | errors |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for s in present:
        rs = by[s]
        n, k = len(rs), sum(r.passed for r in rs)
        out.append(f"| {s} | {n} | {pass_at_1(k, n)} | {_oracle(rs)} "
                   f"| {_mean([r.prompt_tokens for r in rs]):,.0f} | {_mean([r.completion_tokens for r in rs]):,.0f} "
                   f"| {_mean([r.calls for r in rs]):.1f} | {_mean([r.wall_s for r in rs]):.1f} "
                   f"| {sum(r.error is not None for r in rs)} |")
    sizes = vote_sizes(rows)
    if sizes:
        out.append("")
        out.append("vote: N = " + ", ".join(f"{n} ({c} problems)" for n, c in sorted(sizes.items())) + " samples")
    councils: tuple[Strategy, ...] = ("council", "council-nofeedback")
    baselines: tuple[Strategy, ...] = ("single", "vote", "council")
    pairs = [(a, b) for a in councils for b in baselines
             if a != b and by[a] and by[b] and not (a == "council-nofeedback" and b != "council")]
    if pairs:
        out += ["", "Paired, on the problems both ran:", "",
                "| comparison | both pass | only the first | only the second | neither |", "|---|---:|---:|---:|---:|"]
        for a, b in pairs:
            c = paired(by[a], by[b])
            out.append(f"| {a} vs {b} | {c[(True, True)]} | {c[(True, False)]} | {c[(False, True)]} "
                       f"| {c[(False, False)]} |")
    problems = sorted({r.problem for r in rows}, key=problem_key)
    cell = {(r.problem, r.strategy): r for r in rows}
    out += ["", "Per problem (pass / fail / error):", "", "| problem | " + " | ".join(present) + " |",
            "|---|" + "---|" * len(present)]
    for p in problems:
        marks = []
        for s in present:
            r = cell.get((p, s))
            marks.append("" if r is None else "pass" if r.passed else "error" if r.error else "fail")
        out.append(f"| {p} | " + " | ".join(marks) + " |")
    return "\n".join(out) + "\n"


def _oracle(rows: list[EvalRow]) -> str:
    """'31/40': the problems where some answer the strategy made passes (rows that measured it).

    >>> s = {"model": "m"}
    >>> r = lambda o: EvalRow(problem="p", strategy="vote", passed=False, prompt_tokens=0, completion_tokens=0,
    ...                       calls=1, wall_s=0, oracle_pool=o, settings=s)
    >>> _oracle([r(True), r(False), r(None)]), _oracle([r(None)])
    ('1/2', '-')
    """
    measured = [r.oracle_pool for r in rows if r.oracle_pool is not None]
    return f"{sum(measured)}/{len(measured)}" if measured else "-"


def problem_key(task_id: str) -> tuple[str, int]:
    name, _, num = task_id.rpartition("/")
    return (name, int(num)) if num.isdigit() else (task_id, 0)

"""A candidate's behaviour on the visible tests' inputs, as its feedback carries it: its outputs (to
group candidates while rounds run), a crash on import, and the first concrete counterexample (the
input, what was expected, what this code returned or raised), which repair reads before any prose.

    >>> from fleet.config.task import TestSuite
    >>> t = Task(description="d", tests=[TestSuite(kind="doctest", visible=True, source=">>> f(2)\\n4\\n")])
    >>> counterexample(t, ["f(2)"], ["5"], [""])
    'Input: f(2)\\nExpected: 4\\nThis code returned: 5'

What this file leaves out: the tests' own pass counts (checks.py) and grouping (fleet/selection).
"""

from __future__ import annotations

import ast
import doctest

from fleet.config.scoring import SandboxLimits
from fleet.config.task import Task
from fleet.scoring.sandbox import run_probes


def _expected(task: Task) -> dict[str, str]:
    """expression -> the output a visible doctest expects of it (normalised like the probe's repr)."""
    out: dict[str, str] = {}
    for suite in task.visible_tests:
        if suite.kind != "doctest":
            continue
        for ex in doctest.DocTestParser().get_examples(suite.source):
            try:
                key = ast.unparse(ast.parse(ex.source.strip(), mode="eval"))
            except SyntaxError:
                continue
            out.setdefault(key, ex.want.strip())
    return out


def counterexample(task: Task, probes: list[str], outputs: list[str], errors: list[str]) -> str:
    """The first visible input this code raises on, or whose output differs from a doctest's expected
    one ('' when none does)."""
    expected = _expected(task)
    for expr, got, err in zip(probes, outputs, errors, strict=False):
        want = expected.get(expr)
        if got.startswith("!"):
            return f"Input: {expr}\n" + (f"Expected: {want}\n" if want else "") + f"This code raised: {err or got[1:]}"
        if want is not None and got.split() != want.split():
            return f"Input: {expr}\nExpected: {want}\nThis code returned: {got}"
    return ""


async def behaviour_feedback(task: Task, code: str, probes: list[str], limits: SandboxLimits,
                             ) -> tuple[list[str] | None, str, str]:
    """(outputs on `probes`, crash, counterexample) of one candidate: one sandbox run. A module that
    does not even import (a NameError at import, a missing module) is a crash: outputs None."""
    run = await run_probes(code, probes, limits)
    if run.outputs is None:
        lines = (run.error or run.output or "the code did not run").strip().splitlines()
        return None, (lines[-1] if lines else "the code did not run")[:500], ""
    return run.outputs, "", counterexample(task, probes, run.outputs, run.errors or [""] * len(run.outputs))

"""The checks a proposal gets: its code parsed, linted and run against the task's tests in the
sandbox, plus a text-only structure check. `grade()` gives the score checks (visible and hidden
tests); `feedback()` gives what an author may see (visible tests and lint only).

    >>> round(coverage_check("My approach: a token bucket. Risk: clock skew.").score, 2)
    0.67
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

from fleet.config.scoring import SandboxLimits
from fleet.config.task import Task, TestSuite
from fleet.schemas.record import ExecutionFeedback
from fleet.schemas.scoring import Check, CheckStatus
from fleet.scoring.counterexample import behaviour_feedback
from fleet.scoring.extract import PARSE_THREAD, CodeExtract, extract_code
from fleet.scoring.lint import lint
from fleet.scoring.sandbox import SandboxRun, run_tests
from fleet.selection.probes import defined_names, visible_inputs

CheckFn = Callable[[str, str], Check | None]  # (role, text) -> Check, or None when not applicable

# What a proposal must cover (the prompts ask for these), found anywhere in the text.
_SECTIONS = {
    "approach": r"approach|design|plan|solution|strategy|step",
    "implementation": r"```|implement|\bdef |\bclass |function",
    "risks": r"risk|challenge|mitigat|trade-?off|limitation|edge case|downside",
}
# role -> groups of words; each group found counts once.
ROLE_CONTENT: dict[str, list[str]] = {
    "DEV": [r"```|\bdef |\bclass ", r"\btest", r"\berror|\bexception|\bvalidat", r"\bfunction|\bmodule|\bendpoint"],
    "QA": [r"\btest", r"edge case|boundary|corner", r"\bbug|regression|failure", r"assert|expect|coverage"],
    "ARCHITECT": [r"component|service|module", r"scalab|scale|throughput|load", r"interface|api|contract",
                  r"trade-?off|pattern|design"],
    "DEVOPS": [r"deploy|rollout|release", r"\bci\b|ci/cd|pipeline", r"monitor|alert|observab|metric",
               r"rollback|reliab|availability|infrastructure"],
    "DATA": [r"pipeline|etl|ingest", r"schema|table|column", r"migration|backfill", r"quality|validat|null"],
}


def coverage_check(text: str, role: str = "") -> Check:
    lower = text.lower()
    found = [name for name, pat in _SECTIONS.items() if re.search(pat, lower)]
    return Check(name="coverage", status=_status(len(found) == len(_SECTIONS)), score=len(found) / len(_SECTIONS),
                 detail=f"found {found or 'none'} of {list(_SECTIONS)}")


def role_content_check(role: str, text: str) -> Check | None:
    groups = ROLE_CONTENT.get(role)
    if groups is None:
        return None
    lower = text.lower()
    hits = [g for g in groups if re.search(g, lower)]
    return Check(name="role_content", status=_status(len(hits) >= len(groups) - 1), score=len(hits) / len(groups),
                 detail=f"{len(hits)}/{len(groups)} kinds of {role} content")


def length_check(role: str, text: str, min_words: int = 80) -> Check:
    words = len(text.split())
    return Check(name="length", status=_status(words >= min_words), score=min(1.0, words / min_words),
                 detail=f"{words} words (want >= {min_words})")


def _status(ok: bool) -> CheckStatus:
    return "passed" if ok else "failed"


TEXT_CHECKS: tuple[CheckFn, ...] = (lambda role, text: coverage_check(text), role_content_check, length_check)


def structure_check(role: str, text: str) -> Check:
    """The text-only checks folded into one (they weigh little: config.scoring)."""
    parts = [c for c in (fn(role, text) for fn in TEXT_CHECKS) if c is not None]
    return Check(name="structure", status=_status(all(c.passed for c in parts)),
                 score=sum(c.score for c in parts) / len(parts),
                 detail="; ".join(f"{c.name}: {c.detail}" for c in parts))


def expects_code(task: Task, role: str) -> bool:
    return task.language is not None or role == "DEV"


async def _extract(text: str) -> CodeExtract:
    return await asyncio.get_running_loop().run_in_executor(PARSE_THREAD, extract_code, text)


def code_check(code: CodeExtract, expected: bool) -> Check:
    if code.code is None:
        return Check(name="parses", status="failed" if expected else "skipped", score=0.0, detail="no code block")
    if code.parse_error:
        cut = " (its block was cut off by max_tokens)" if code.truncated else ""
        return Check(name="parses", status="failed", score=0.0, detail=f"does not parse: {code.parse_error}{cut}")
    cut = "; its last block was cut off by max_tokens" if code.truncated else ""
    return Check(name="parses", status="passed", score=1.0, detail=f"{code.blocks} block(s) parse{cut}")


def lint_check(code: CodeExtract, findings: list[str] | None) -> Check:
    if findings is None:
        return Check(name="lint", status="skipped", score=0.0, detail="no code that parses")
    return Check(name="lint", status=_status(not findings), score=max(0.0, 1.0 - 0.1 * len(findings)),
                 detail=f"{len(findings)} ruff finding(s)" + (f": {'; '.join(findings[:5])}" if findings else ""))


async def _run_suites(code: CodeExtract, suites: list[TestSuite], limits: SandboxLimits) -> list[SandboxRun]:
    return list(await asyncio.gather(*(run_tests(code.code or "", s, limits) for s in suites)))


def _first_failure(runs: list[SandboxRun]) -> SandboxRun | None:
    return next((r for r in runs if r.error or r.passed < r.total), None)


def tests_check(name: str, runs: list[SandboxRun]) -> Check:
    if not runs:
        return Check(name=name, status="skipped", score=0.0, detail="no such tests")
    passed, total = sum(r.passed for r in runs), sum(r.total for r in runs)
    first = _first_failure(runs)
    detail = f"{passed}/{total} passed in the {runs[0].sandbox} sandbox"
    if first is not None and first.error:
        detail += f"; {first.error}"
    return Check(name=name, status=_status(total > 0 and passed == total), score=passed / total if total else 0.0,
                 detail=detail, tests_passed=passed, tests_total=total, sandbox=runs[0].sandbox,
                 output=(first.output if first else "")[:2000])


async def _code_and_lint(text: str) -> tuple[CodeExtract, list[str] | None]:
    code = await _extract(text)
    findings = await lint(code.code) if code.code is not None and code.parse_error is None else None
    return code, findings


async def grade(task: Task, role: str, text: str, limits: SandboxLimits) -> list[Check]:
    """Every check of a final proposal: parses, lint, visible and hidden tests, structure."""
    expected = expects_code(task, role)
    code, findings = await _code_and_lint(text)
    checks = [code_check(code, expected), lint_check(code, findings)]
    hidden = [t for t in task.tests if not t.visible]
    checks.append(tests_check("tests:visible", await _run_suites(code, task.visible_tests, limits)))
    checks.append(tests_check("tests:hidden", await _run_suites(code, hidden, limits)))
    checks.append(structure_check(role, text))
    return checks


async def feedback(task: Task, role: str, text: str, limits: SandboxLimits,
                   probes: Sequence[str] = ()) -> ExecutionFeedback | None:
    """What the author may see of its code: the visible tests' results and the lint findings.
    None when the task asks for no code."""
    if not expects_code(task, role):
        return None
    code, findings = await _code_and_lint(text)
    if code.code is None:
        return ExecutionFeedback(code_found=False)
    runs = await _run_suites(code, task.visible_tests, limits)
    failed = _first_failure(runs)
    failure = "" if failed is None else (f"{failed.error}\n" if failed.error else "") + failed.output
    outputs, crash, example, inputs = None, "", "", []
    if code.parse_error is None and task.language is not None:
        # One run on the visible tests' inputs and the agent's (calls of what this code defines): a crash
        # on import shows even without tests.
        defined = defined_names(code.code or "")
        inputs = visible_inputs(task)
        inputs += [p for p in probes if p not in inputs and p.split("(", 1)[0] in defined]
        outputs, crash, example = await behaviour_feedback(task, code.code or "", inputs, limits)
    return ExecutionFeedback(code_found=True, truncated=code.truncated, parse_error=code.parse_error,
                             lint=findings or [], tests_passed=sum(r.passed for r in runs),
                             tests_total=sum(r.total for r in runs), failure=failure[:1500], crash=crash,
                             counterexample=example[:1500], outputs=outputs, inputs=inputs if outputs else [])

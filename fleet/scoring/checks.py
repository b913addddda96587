"""Deterministic checks on a proposal's text: does it contain what its role asks for?

Each check returns a `Check` with a score in [0, 1]. They are real but shallow: sections present,
role-specific content, Python that parses, substantive length. Execution-grounded checks (lint,
run tests in a sandbox) plug in beside these through the same `CheckFn` signature.

>>> round(coverage_check("My approach: a token bucket. Risk: clock skew.").score, 2)
0.67
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from fleet.record import Check

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
_CODE_BLOCK = re.compile(r"```([a-zA-Z0-9_+-]*)\n(.*?)(?:```|\Z)", re.S)


def coverage_check(text: str, role: str = "") -> Check:
    lower = text.lower()
    found = [name for name, pat in _SECTIONS.items() if re.search(pat, lower)]
    return Check(name="coverage", passed=len(found) == len(_SECTIONS), score=len(found) / len(_SECTIONS),
                 detail=f"found {found or 'none'} of {list(_SECTIONS)}")


def role_content_check(role: str, text: str) -> Check | None:
    groups = ROLE_CONTENT.get(role)
    if groups is None:
        return None
    lower = text.lower()
    hits = [g for g in groups if re.search(g, lower)]
    return Check(name="role_content", passed=len(hits) >= len(groups) - 1, score=len(hits) / len(groups),
                 detail=f"{len(hits)}/{len(groups)} kinds of {role} content")


def python_check(role: str, text: str) -> Check | None:
    """Every Python block must parse. DEV proposals must contain code; other roles only if they show some."""
    blocks = [body for lang, body in _CODE_BLOCK.findall(text) if lang.lower() in ("", "python", "py")]
    if not blocks:
        if role == "DEV":
            return Check(name="python_parses", passed=False, score=0.0, detail="no code block")
        return None
    errors = []
    for i, body in enumerate(blocks):
        try:
            ast.parse(body)
        except SyntaxError as e:
            errors.append(f"block {i + 1}: line {e.lineno}: {e.msg}")
    ok = len(blocks) - len(errors)
    return Check(name="python_parses", passed=not errors, score=ok / len(blocks),
                 detail="; ".join(errors) or f"{len(blocks)} block(s) parse")


def length_check(role: str, text: str, min_words: int = 80) -> Check:
    words = len(text.split())
    return Check(name="length", passed=words >= min_words, score=min(1.0, words / min_words),
                 detail=f"{words} words (want >= {min_words})")


DEFAULT_CHECKS: tuple[CheckFn, ...] = (
    lambda role, text: coverage_check(text),
    role_content_check,
    python_check,
    length_check,
)


def run_checks(role: str, text: str, checks: tuple[CheckFn, ...] = DEFAULT_CHECKS) -> list[Check]:
    return [c for c in (fn(role, text) for fn in checks) if c is not None]

"""Lint model-written code with ruff, in a subprocess. Nothing here runs the code (sandbox.py does).

    >>> import asyncio; asyncio.run(lint("import os\\n"))
    ['F401 line 1: `os` imported but unused']
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys

# ruff's default selection (pyflakes + the E4/E7/E9 subset) plus bugbear; line length is not a finding.
LINT_RULES = "E4,E7,E9,F,B"
_LINT_TIMEOUT_S = 60.0  # ruff takes milliseconds; this only bounds a wedged process


def _ruff() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "ruff")
    found = here if os.access(here, os.X_OK) else shutil.which("ruff")
    if found is None:
        raise RuntimeError("ruff is not installed (it is one of fleet's dependencies)")
    return found


async def lint(code: str) -> list[str]:
    """ruff's findings on `code`, one line each ('F821 line 3: Undefined name `x`')."""
    # A blocking run on a worker thread, not asyncio's subprocess transport: inside a Ray actor the
    # transport cost ~4.6 ms of the event loop's own CPU per call (25-30 ms wall) against ~1 ms (9 ms)
    # this way (measured in an actor, 2 cores), and the coordinator lints every draft and revision.
    return list(await asyncio.to_thread(_lint, code))


@functools.lru_cache(maxsize=512)
def _lint(code: str) -> tuple[str, ...]:
    # Cached: a final proposal is linted for its author's feedback and again when it is graded.
    try:
        proc = subprocess.run(
            [_ruff(), "check", "--isolated", "--no-cache", "--select", LINT_RULES, "--output-format", "json",
             "--stdin-filename", "solution.py", "-"],
            input=code.encode(), capture_output=True, timeout=_LINT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ruff did not finish in {_LINT_TIMEOUT_S:g}s") from None
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}")
    return tuple(f"{d.get('code') or 'syntax'} line {d['location']['row']}: {d['message']}"
                 for d in json.loads(proc.stdout or b"[]"))

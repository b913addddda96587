"""Find the code in a proposal, and lint it. Nothing here runs the code (see sandbox.py).

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.").code
    'def f():\\n    return 1'
    >>> extract_code("```python\\ndef f():\\n    retu").truncated      # cut off by max_tokens
    True
    >>> extract_code("```python\\ndef f():\\n    return 1\\n\\nassert f(").code   # the part that parses
    'def f():\\n    return 1'
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from fleet.config._base import StrictModel

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(```|\Z)", re.S)
_PYTHON = ("", "python", "py", "python3")
_DEFINES = re.compile(r"^(?:async\s+def|def|class|import|from)\b", re.M)
# Every ast.parse of model-written code in the process runs on this one thread, across concurrent
# deliberations: CPython 3.11's parser is not thread-safe ("AST constructor recursion depth
# mismatch", gh-106905).
PARSE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-parse")
# ruff's default selection (pyflakes + the E4/E7/E9 subset) plus bugbear; line length is not a finding.
LINT_RULES = "E4,E7,E9,F,B"
_LINT_TIMEOUT_S = 60.0  # ruff takes milliseconds; this only bounds a wedged process


class CodeExtract(StrictModel):
    code: str | None = None
    blocks: int = 0
    truncated: bool = False  # a code block opened and never closed: cut off by max_tokens
    parse_error: str | None = None
    prefix_kept: bool = False  # truncated and not parsing: `code` is its longest prefix of whole statements that parses


def extract_code(text: str) -> CodeExtract:
    """The proposal's Python: every fenced Python block that defines or imports something, in order
    (or every Python block when none does); a whole reply that parses as code counts too."""
    blocks, truncated = [], False
    for lang, body, close in _FENCE.findall(text):
        if lang.lower() in _PYTHON:
            blocks.append(body.strip("\n"))
            truncated = truncated or not close
    if not blocks:
        if _DEFINES.search(text) and _parses(text) is None:
            blocks = [text.strip("\n")]
        else:
            return CodeExtract()
    chosen = [b for b in blocks if _DEFINES.search(b)] or blocks
    code = "\n\n\n".join(chosen).strip("\n")
    error = _parses(code)
    if error is not None and truncated:
        # An answer cut off by max_tokens often holds a complete function and then the start of example
        # calls after it: the complete part is kept (still flagged truncated), so it can be linted and run.
        prefix = _parsing_prefix(code)
        if prefix:
            return CodeExtract(code=prefix, blocks=len(blocks), truncated=True, prefix_kept=True)
    return CodeExtract(code=code, blocks=len(blocks), truncated=truncated, parse_error=error)


def _parsing_prefix(code: str) -> str | None:
    """The longest prefix of `code` that ends before a top-level statement and parses (None: none does).

    >>> _parsing_prefix("import re\\n\\ndef f(x):\\n    return re.escape(x)\\n\\nprint(f(")
    'import re\\n\\ndef f(x):\\n    return re.escape(x)'
    """
    lines = code.split("\n")
    starts = [i for i, line in enumerate(lines) if i and line[:1] not in ("", " ", "\t", "#", ")", "]", "}")]
    for i in reversed(starts):
        prefix = "\n".join(lines[:i]).rstrip()
        if prefix and _parses(prefix) is None:
            return prefix
    return None


def _parses(code: str) -> str | None:
    try:
        ast.parse(code)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except ValueError as e:  # null bytes
        return str(e)
    return None


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

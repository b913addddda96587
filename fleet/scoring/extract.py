"""Find the code in a proposal. Nothing here runs the code (sandbox.py does) or lints it (lint.py).

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.").code
    'def f():\\n    return 1'
    >>> extract_code("```python\\ndef f():\\n    retu").truncated      # cut off by max_tokens
    True
    >>> extract_code("```python\\ndef f():\\n    return 1\\n\\nassert f(").code   # the part that parses
    'def f():\\n    return 1'
"""

from __future__ import annotations

import ast
import re
from concurrent.futures import ThreadPoolExecutor

from fleet.config._base import StrictModel

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(```|\Z)", re.S)
_PYTHON = ("", "python", "py", "python3")
_DEFINES = re.compile(r"^(?:async\s+def|def|class|import|from)\b", re.M)
# Every ast.parse of model-written code in the process runs on this one thread, across concurrent
# deliberations: CPython 3.11's parser is not thread-safe ("AST constructor recursion depth
# mismatch", gh-106905).
PARSE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-parse")


class CodeExtract(StrictModel):
    """The Python found in one proposal (`code` None: none found)."""

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

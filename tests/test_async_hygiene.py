"""Static guard for the seed system's worst bug: blocking waits inside async code.

`asyncio.run(`, `ray.get(` and `ray.wait(` may appear in fleet/ only in the CLI's entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

FLEET = Path(__file__).parent.parent / "fleet"
ALLOWED = {("cli.py", "asyncio.run"), ("deliberate.py", "asyncio.run")}  # the CLI's and the job's main
BANNED = {"asyncio.run", "ray.get", "ray.wait", "time.sleep"}


def banned_calls(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        func = getattr(node, "func", None)
        if isinstance(node, ast.Call) and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = f"{node.func.value.id}.{node.func.attr}"
            if name in BANNED and (path.name, name) not in ALLOWED:
                found.append((name, node.lineno))
    return found


def test_no_blocking_waits_in_fleet():
    offenders = {str(p.relative_to(FLEET)): calls for p in FLEET.rglob("*.py") if (calls := banned_calls(p))}
    assert offenders == {}


def test_the_guard_catches_what_it_claims(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio, ray\nasync def f():\n    ray.get(x)\n    asyncio.run(g())\n")
    assert banned_calls(bad) == [("ray.get", 3), ("asyncio.run", 4)]


@pytest.mark.parametrize("entry", ["cli.py", "jobs/deliberate.py"])
def test_asyncio_run_sits_only_in_the_sync_main_of_an_entry_point(entry):
    tree = ast.parse((FLEET / entry).read_text())
    owners = [fn.name for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
              for node in ast.walk(fn) if isinstance(node, ast.Call) and ast.unparse(node.func) == "asyncio.run"]
    assert owners == ["main"]

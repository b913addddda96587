"""The `>>>` examples in fleet's docstrings run as tests: an example is a contract, and one that no
longer holds fails here rather than misleading its reader."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fleet

pytestmark = pytest.mark.unit


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(fleet.__path__, "fleet."):
        if info.ispkg:
            continue
        source = importlib.util.find_spec(info.name)
        if source and source.origin and ">>> " in open(source.origin, encoding="utf-8").read():
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} has '>>> ' but no example doctest finds"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"

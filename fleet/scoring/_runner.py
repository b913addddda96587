"""Runs inside the sandbox (fleet.scoring.sandbox): limits itself, then grades `solution.py`.

Standard library only, no fleet import: it is copied into the sandbox's work dir and started as
`python -I _runner.py`. Order matters: read the spec and delete it, apply the rlimits, cut the
network (when no outer sandbox did), drop to the sandbox's uid, and only then import or run any
model-written code. The result goes to `result.json`, tagged with the host's nonce, so text the code
under test prints cannot pass for a result. What it leaves out: isolating the grader from the
graded code inside this process (the host treats every outcome as untrusted data).
"""

import ctypes
import doctest
import io
import json
import os
import resource
import socket
import sys
import traceback
import types
import xml.etree.ElementTree as ET
from typing import Literal, NoReturn, NotRequired, TypedDict

OUT_CHARS = 2000  # of the first failure's output
RunKind = Literal["pytest", "check", "doctest", "probe"]  # TestSuite.kind, or probe (sandbox.run_probes)


class Limits(TypedDict):
    """The rlimits of `SandboxLimits` (fleet.config.scoring) the runner sets on itself."""

    cpu_s: int
    memory_mib: int
    file_mib: int


class Spec(TypedDict):
    """`spec.json`, written by the host (sandbox._run_blocking)."""

    kind: RunKind
    entry_point: str | None
    limits: Limits
    nonce: str
    uid: int | None
    declared_tests: int
    net: Literal["bwrap", "guard"]
    nproc: int


class Result(TypedDict):
    """`result.json`, read back by the host (sandbox._result) as untrusted data."""

    passed: int
    total: int
    output: str
    outputs: NotRequired[list[str]]  # run_probe only
    errors: NotRequired[list[str]]
    nonce: NotRequired[str]  # added by main
    net: NotRequired[str]


def _limit(spec: Spec) -> None:
    lim = spec["limits"]
    for name, value in (("RLIMIT_CPU", lim["cpu_s"]), ("RLIMIT_AS", lim["memory_mib"] << 20),
                        ("RLIMIT_FSIZE", lim["file_mib"] << 20), ("RLIMIT_CORE", 0), ("RLIMIT_NOFILE", 256),
                        ("RLIMIT_NPROC", spec["nproc"])):
        resource.setrlimit(getattr(resource, name), (value, value))


def _no_network(spec: Spec) -> str:
    if spec["net"] != "guard":
        return spec["net"]
    try:  # a new, empty network namespace (needs root): the same cut as bubblewrap's
        if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0:  # CLONE_NEWNET
            return "netns"
    except OSError:
        pass

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise PermissionError("network access is disabled in fleet's sandbox")

    socket.socket = refuse  # type: ignore[assignment, misc]  # replacing the class is the point
    socket.create_connection = refuse
    return "socket-guard"


def _drop(spec: Spec) -> None:
    uid = spec.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _solution_module() -> types.ModuleType:
    module = types.ModuleType("solution")
    module.__file__ = os.path.abspath("solution.py")
    sys.modules["solution"] = module
    with open("solution.py") as f:
        exec(compile(f.read(), "solution.py", "exec"), module.__dict__)
    return module


def _fail_text() -> str:
    return traceback.format_exc(limit=-4)[-OUT_CHARS:]


def run_pytest(spec: Spec) -> Result:
    import pytest

    out = io.StringIO()
    sys.stdout = sys.stderr = out
    try:
        code = pytest.main(["-q", "-p", "no:cacheprovider", "--tb=short", "-o", "junit_family=xunit1",
                            "--junitxml=report.xml", "test_task.py"])
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    total = passed = 0
    first = ""
    try:
        for case in ET.parse("report.xml").getroot().iter("testcase"):
            total += 1
            bad = [c for c in case if c.tag in ("failure", "error")]
            if not bad and not [c for c in case if c.tag == "skipped"]:
                passed += 1
            elif bad and not first:
                first = f"{case.get('name')}: {bad[0].get('message', '')}\n{bad[0].text or ''}"
    except (OSError, ET.ParseError):
        pass
    if total == 0 or (code not in (0, 1) and not first):  # collection failed: the whole output says why
        first = out.getvalue()
    total = max(total, spec["declared_tests"])
    return {"passed": passed, "total": total, "output": first[-OUT_CHARS:] if first else ""}


def run_check(spec: Spec) -> Result:
    try:
        module = _solution_module()
        # The check runs among the solution's globals, as in HumanEval's own harness (one program:
        # prompt, completion, test): HumanEval/32's check calls the prompt's `poly`, 38's `encode_cyclic`.
        namespace = dict(module.__dict__)
        with open("test_task.py") as f:
            exec(compile(f.read(), "test_task.py", "exec"), namespace)
        namespace["check"](getattr(module, spec["entry_point"] or ""))  # set for kind "check" (TestSuite)
    except BaseException:  # SystemExit and friends are the code's failures too
        return {"passed": 0, "total": 1, "output": _fail_text()}
    return {"passed": 1, "total": 1, "output": ""}


def run_doctest(spec: Spec) -> Result:
    with open("test_task.py") as f:
        text = f.read()
    try:
        module = _solution_module()
    except BaseException:
        n = len(doctest.DocTestParser().get_examples(text))
        return {"passed": 0, "total": n, "output": _fail_text()}
    test = doctest.DocTestParser().get_doctest(text, dict(module.__dict__), "examples", "examples", 0)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    results = runner.run(test, out=out.write)
    return {"passed": results.attempted - results.failed, "total": results.attempted,
            "output": out.getvalue()[:OUT_CHARS]}


def run_probe(spec: Spec) -> Result:
    with open("test_task.py") as f:
        expressions = json.load(f)
    try:
        module = _solution_module()
    except BaseException:
        return {"passed": 0, "total": len(expressions), "output": _fail_text()}
    outputs: list[str] = []
    errors: list[str] = []
    passed = 0
    for expression in expressions:
        try:
            value = eval(compile(expression, "probe", "eval"), dict(module.__dict__))
            outputs.append(repr(value)[:500])
            errors.append("")
            passed += 1
        except BaseException as e:  # the code's failure is an output too (its type; the message aside)
            outputs.append("!" + type(e).__name__)
            errors.append(f"{type(e).__name__}: {e}"[:300])
    return {"passed": passed, "total": len(expressions), "output": "", "outputs": outputs, "errors": errors}


def main() -> None:
    with open("spec.json") as f:
        spec: Spec = json.load(f)
    os.unlink("spec.json")
    _limit(spec)
    net = _no_network(spec)
    _drop(spec)
    sys.path.insert(0, os.getcwd())
    result = {"run_pytest": run_pytest, "run_check": run_check, "run_doctest": run_doctest,
              "run_probe": run_probe}[f"run_{spec['kind']}"](spec)
    result["nonce"] = spec["nonce"]
    result["net"] = net
    with open("result.json", "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)  # skip atexit hooks the graded code may have registered


if __name__ == "__main__":
    main()

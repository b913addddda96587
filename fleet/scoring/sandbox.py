"""Run model-written code against tests in a separate, limited process. Never in-process.

`run_tests(code, suite, limits) -> SandboxRun`. The code is written to a fresh temp dir as
`solution.py` beside the tests and `_runner.py` (which grades it), then started:

- `bwrap` (bubblewrap, preferred): read-only view of the whole system, private `/tmp` (tmpfs of
  bounded size), the work dir as the only writable place, new network namespace (no interface but
  loopback), new PID namespace (killing it kills every process it made), `--die-with-parent`;
- `rlimit` (where bubblewrap cannot run): the same process limits, and the network cut by a new
  network namespace when running as root, else by a socket guard inside the process.

Both: RLIMIT_CPU / AS / FSIZE / NPROC / NOFILE set by the runner before any graded code runs, a
wall-clock limit (the whole process group is killed), and a cap on output kept (more kills the run).
As root the graded code runs as a uid of its own, so RLIMIT_NPROC counts only its processes (Linux
exempts root from it). The `SandboxRun` says which sandbox and which network cut applied.

    >>> import asyncio; from fleet.config.task import TestSuite
    >>> asyncio.run(run_tests("def f(): return 1", TestSuite(kind="check", entry_point="f",
    ...     source="def check(c): assert c() == 1"))).passed
    1
"""

from __future__ import annotations

import ast
import asyncio
import functools
import itertools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.config.scoring import SandboxLimits
from fleet.config.task import TestSuite
from fleet.scoring._runner import Limits, RunKind, Spec
from fleet.scoring.extract import PARSE_THREAD

RUNNER = Path(__file__).with_name("_runner.py")
_SANDBOX_UID_BASE = 200_000  # + a per-run number: uids no account uses, a fresh one per run
_run_numbers = itertools.count()
# Runs at once per event loop: every run is CPU work on the same cores as the engine.
_MAX_PARALLEL = 2
_PROBE_CHARS = 500  # a probe's repr kept (values are compared, not read)
SandboxKind = Literal["bwrap", "rlimit"]
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


class SandboxRun(StrictModel):
    """One graded run. `passed`/`total` count tests (or doctest examples); `error` says why the run
    itself failed (timeout, output limit, no result), in which case nothing passed."""

    sandbox: SandboxKind
    network: str = Field(description="how the network was cut: bwrap, netns or socket-guard")
    passed: int = Field(ge=0)
    total: int = Field(ge=0)
    output: str = Field(default="", description="the first failure's output, truncated")
    outputs: list[str] | None = Field(default=None, description="run_probes: each expression's repr or !ErrorType")
    errors: list[str] | None = Field(default=None, description="run_probes: each expression's exception as "
                                     "'Type: message' ('' where it gave a value)")
    error: str | None = None
    exit_code: int | None = None
    wall_ms: float = Field(ge=0)


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap can start a process here (blocking; cached)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                                "--unshare-pid", "--die-with-parent", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _hidden_ancestors(paths: list[str]) -> list[str]:
    """Directories (e.g. a 0700 /root holding pyenv) the sandbox uid could not traverse to reach
    `paths`: each becomes an empty tmpfs with only the needed paths bound back, read-only."""
    hidden = []
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            d = str(Path(*parts[:i]))
            if not os.stat(d).st_mode & 0o001 and d not in hidden:
                hidden.append(d)
                break
    return hidden


def _python_paths() -> list[str]:
    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.__file__))}
    paths |= {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    return sorted(p for p in paths if p != "/")


def _bwrap_argv(work: Path, limits: SandboxLimits, drop_uid: bool) -> list[str]:
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(limits.file_mib << 20), "--tmpfs", "/tmp"]
    # Directories the sandbox masks (its private /tmp; for another uid, a 0700 home) may hold this
    # Python or its venv (a checkout under /tmp, pyenv under /root): bind those back, read-only.
    paths = _python_paths()
    masked = ["/tmp"] + (_hidden_ancestors(paths) if drop_uid else [])
    for d in masked:
        if d != "/tmp":
            argv += ["--perms", "0755", "--tmpfs", d]
        made = {d}
        for p in (p for p in paths if p.startswith(d + "/")):
            for parent in reversed(Path(p).parents):  # mount points bwrap would make 0700
                if str(parent).startswith(d + "/") and str(parent) not in made:
                    made.add(str(parent))
                    argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", p, p]
    argv += ["--bind", str(work), "/tmp/sandbox", "--chdir", "/tmp/sandbox", "--unshare-net", "--unshare-pid",
             "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--"]
    return argv


def _declared_tests(suite: TestSuite) -> int:
    """Tests the suite declares (so a run that cannot even import the code still counts 0 of N)."""
    if suite.kind == "check":
        return 1
    if suite.kind == "doctest":
        return suite.source.count(">>>")
    tree = ast.parse(suite.source)
    return sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
               for n in ast.walk(tree))


def _run_process(argv: list[str], work: Path, env: dict[str, str], wall_s: float, cap: int,
                 started: list[subprocess.Popen[bytes]]) -> tuple[int, bytes, str | None]:
    """Blocking (a worker thread's): start `argv` in a session of its own (appended to `started`, so
    that a cancelled caller can kill it), keep the first `cap` bytes of its output until every writer
    closes it, kill the process group at `wall_s` or past `cap`, and reap it. Returns the exit code,
    the output kept and why the run was killed (None when it was not)."""
    deadline = time.monotonic() + wall_s
    timed_out = f"timed out after {wall_s:g}s wall clock (killed)"
    proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    started.append(proc)
    stdout = proc.stdout
    assert stdout is not None  # stdout=PIPE
    try:
        data = bytearray()
        error = None
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    error = timed_out
                    break
                if not sel.select(left):
                    continue
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:  # EOF: bwrap and everything it started closed the pipe
                    break
                if len(data) + len(chunk) > cap:
                    data += chunk[: cap - len(data)]
                    error = f"output over {cap >> 10} KiB (killed)"
                    break
                data += chunk
        if error is None:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:  # closed its output but kept running
                error = timed_out
        if error is not None:
            _kill(proc)
            proc.wait()
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        stdout.close()
    return proc.returncode, bytes(data), error


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:  # not reaped yet, so the group id is still the run's own
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: bwrap and everything under it
        except ProcessLookupError:
            pass


async def run_tests(code: str, suite: TestSuite, limits: SandboxLimits | None = None) -> SandboxRun:
    """Grade `code` with `suite` in a sandbox. Never raises for what the code does."""
    declared = await asyncio.get_running_loop().run_in_executor(PARSE_THREAD, _declared_tests, suite)
    return await _sandboxed(code, suite.kind, suite.source, suite.entry_point, declared, limits)


async def run_probes(code: str, expressions: list[str], limits: SandboxLimits | None = None) -> SandboxRun:
    """Evaluate each expression after `code` in a sandbox; `outputs[i]` is the repr of the i-th value
    (truncated) or `!ErrorType` when it raised. `passed` counts expressions that gave a value;
    `outputs` is None when the code itself did not run (then `output` says why).

    >>> import asyncio
    >>> asyncio.run(run_probes("def f(x): return 1 // x", ["f(1)", "f(0)"])).outputs
    ['1', '!ZeroDivisionError']
    """
    return await _sandboxed(code, "probe", json.dumps(expressions), None, len(expressions), limits)


async def _sandboxed(code: str, kind: RunKind, source: str, entry_point: str | None, declared: int,
                     limits: SandboxLimits | None) -> SandboxRun:
    limits = limits or SandboxLimits()
    mode: SandboxKind
    if limits.mode != "rlimit" and await asyncio.to_thread(bwrap_works):
        mode = "bwrap"
    elif limits.mode == "bwrap":
        raise RuntimeError("sandbox mode 'bwrap' was asked for, but bubblewrap cannot run here")
    else:
        mode = "rlimit"
    slots = _slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(_MAX_PARALLEL))
    async with slots:
        return await _run(code, kind, source, entry_point, declared, limits, mode)


async def _run(code: str, kind: RunKind, source: str, entry_point: str | None, declared: int, limits: SandboxLimits,
               mode: SandboxKind) -> SandboxRun:
    # The whole run is blocking work on a worker thread: asyncio's subprocess transport cost this loop,
    # the one every deliberation's coordination runs on, ~3 ms of its own CPU per run (one hop: ~2 ms).
    started: list[subprocess.Popen[bytes]] = []
    try:
        return await asyncio.to_thread(_run_blocking, code, kind, source, entry_point, declared, limits, mode,
                                       started)
    except asyncio.CancelledError:
        for proc in started:  # none yet: the thread's own wall limit still ends the run
            _kill(proc)  # the thread then reads EOF, reaps it and removes its work dir
        raise


def _run_blocking(code: str, kind: RunKind, source: str, entry_point: str | None, declared: int,
                  limits: SandboxLimits, mode: SandboxKind, started: list[subprocess.Popen[bytes]]) -> SandboxRun:
    root = os.geteuid() == 0
    # Without bubblewrap nothing can re-expose a Python installed under a 0700 home to another uid,
    # and lazy stdlib imports would then fail: such a run stays root (RLIMIT_NPROC cannot bind it).
    own_uid = root and (mode == "bwrap" or not _hidden_ancestors(_python_paths()))
    uid = _SANDBOX_UID_BASE + (os.getpid() % 10_000) * 1_000 + next(_run_numbers) % 1_000 if own_uid else None
    nonce = secrets.token_hex(16)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fleet-sandbox-"))
    try:
        spec: Spec = {"kind": kind, "entry_point": entry_point, "limits": _rlimits(limits),
                "nonce": nonce, "uid": uid, "declared_tests": declared,
                "net": "bwrap" if mode == "bwrap" else "guard",
                # Root: the uid is the sandbox's own. Otherwise the count includes the user's other processes.
                "nproc": limits.max_procs if root else limits.max_procs + _user_processes()}
        files = {"solution.py": code, "test_task.py": source, "spec.json": json.dumps(spec),
                 "_runner.py": RUNNER.read_text()}
        _write_files(work, files, uid)
        argv = [*(_bwrap_argv(work, limits, uid is not None) if mode == "bwrap" else []), sys.executable, "-I",
                "_runner.py"]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0"}
        exit_code, output, error = _run_process(argv, work, env, limits.wall_s, limits.output_kib << 10, started)
        wall_ms = (time.perf_counter() - start) * 1000
        return _result(work, nonce, mode, exit_code, error, output, declared, wall_ms)
    finally:
        shutil.rmtree(work, True)


def _result(work: Path, nonce: str, mode: SandboxKind, exit_code: int | None, error: str | None, output: bytes,
            declared: int, wall_ms: float) -> SandboxRun:
    text = output.decode(errors="replace")
    data = None
    if error is None:
        try:
            data = json.loads((work / "result.json").read_text())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("nonce") != nonce:
            # A signal shows as -N from a direct child, as 128+N through bubblewrap.
            signum = -exit_code if exit_code is not None and exit_code < 0 else (
                exit_code - 128 if mode == "bwrap" and exit_code is not None and exit_code > 128 else 0)
            sig = f" (killed by {signal.Signals(signum).name}: a CPU, memory or process limit)" if signum else ""
            error = f"the run ended without a result, exit code {exit_code}{sig}"
            data = None
    if data is None:
        network = "bwrap" if mode == "bwrap" else "unknown"
        return SandboxRun(sandbox=mode, exit_code=exit_code, wall_ms=wall_ms, network=network, passed=0,
                          total=declared, output=text[-2000:], error=error)
    total = max(int(data.get("total", 0)), 0)
    outputs = data.get("outputs")
    outputs = [str(o)[:_PROBE_CHARS] for o in outputs] if isinstance(outputs, list) else None
    errors = data.get("errors")
    errors = [str(e)[:_PROBE_CHARS] for e in errors] if isinstance(errors, list) and outputs is not None else None
    return SandboxRun(sandbox=mode, exit_code=exit_code, wall_ms=wall_ms, network=str(data.get("net", "")),
                      passed=min(max(int(data.get("passed", 0)), 0), total), total=total,
                      output=str(data.get("output", ""))[:2000], outputs=outputs, errors=errors)


def _rlimits(limits: SandboxLimits) -> Limits:
    """What the runner sets as rlimits; the rest of `limits` is the host's to enforce."""
    return {"cpu_s": limits.cpu_s, "memory_mib": limits.memory_mib, "file_mib": limits.file_mib}


def _write_files(work: Path, files: dict[str, str], uid: int | None) -> None:
    for name, text in files.items():
        (work / name).write_text(text)
    if uid is not None:  # the work dir is the sandbox uid's: the only place it may write
        for p in [work, *work.iterdir()]:
            os.chown(p, uid, uid)


def _user_processes() -> int:
    uid = os.getuid()
    count = 0
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.stat(f"/proc/{d}").st_uid == uid:
                count += 1
        except OSError:
            pass
    return count

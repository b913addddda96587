"""The sandbox holds: each escape attempt is a test, for every sandbox that can run here.

bubblewrap is what setup installs; the rlimit fallback is what runs where it cannot. As root
without bubblewrap the fallback cannot hide a Python installed under a 0700 home from another uid,
so it stays root there: writes outside its dir and RLIMIT_NPROC are not enforced (the run records
`rlimit`); those two cases are skipped for it, with that reason.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from fleet.config.scoring import SandboxLimits
from fleet.config.task import TestSuite
from fleet.scoring.sandbox import _hidden_ancestors, _python_paths, bwrap_works, run_tests

pytestmark = pytest.mark.unit

MODES = ["bwrap", "rlimit"] if bwrap_works() else ["rlimit"]
CHECK = TestSuite(kind="check", entry_point="f", source="def check(candidate):\n    assert candidate() == 1\n")


def limits(mode: str, **kw) -> SandboxLimits:
    return SandboxLimits(mode=mode, **{"wall_s": 10, "cpu_s": 4, **kw})


def rlimit_stays_root(mode: str) -> bool:
    return mode == "rlimit" and os.geteuid() == 0 and bool(_hidden_ancestors(_python_paths()))


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


async def test_a_correct_function_passes_and_the_run_says_where(mode):
    run = await run_tests("def f():\n    return 1\n", CHECK, limits(mode))
    assert (run.passed, run.total, run.error, run.sandbox) == (1, 1, None, mode)


async def test_infinite_loop_is_stopped(mode):
    start = time.monotonic()
    run = await run_tests("def f():\n    while True:\n        pass\n", CHECK, limits(mode, cpu_s=2))
    assert run.passed == 0 and run.error is not None
    assert time.monotonic() - start < 10


async def test_wall_clock_limit_kills_a_sleeper(mode):
    run = await run_tests("import time\ndef f():\n    time.sleep(60)\n", CHECK, limits(mode, wall_s=2))
    assert run.passed == 0 and "timed out after 2s" in run.error


def _live_children() -> list[int]:
    """Processes this one started that still run (zombies and threads are not counted)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if d.isdigit() and int(fields[1]) == os.getpid() and fields[0] != "Z":
            pids.append(int(d))
    return pids


async def test_a_cancelled_run_is_killed_and_its_dir_removed(mode, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the run's work dir is made under tmp_path
    code = "import time\nopen('started', 'w').close()\ndef f():\n    time.sleep(60)\n"
    task = asyncio.create_task(run_tests(code, CHECK, limits(mode, wall_s=60)))
    for _ in range(200):  # until the graded code runs (its import writes `started` in the work dir)
        await asyncio.sleep(0.05)
        if list(tmp_path.glob("*/started")):
            break
    assert list(tmp_path.glob("*/started")) and _live_children(), "the run never started"
    await asyncio.sleep(0.2)  # now in check() -> f() -> sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not _live_children() and not list(tmp_path.iterdir()):
            break
        await asyncio.sleep(0.05)
    assert _live_children() == [] and list(tmp_path.iterdir()) == []


async def test_fork_bomb_hits_the_process_limit(mode):
    if rlimit_stays_root(mode):
        pytest.skip("rlimit fallback as root with a Python under a 0700 home: RLIMIT_NPROC cannot bind root")
    code = ("import os, time\ndef f():\n    n = 0\n    while True:\n        if os.fork() == 0:\n"
            "            time.sleep(3)\n            os._exit(0)\n        n += 1\n")
    run = await run_tests(code, CHECK, limits(mode, max_procs=16))
    assert run.passed == 0
    assert "Resource temporarily unavailable" in run.output or "BlockingIOError" in run.output


async def test_memory_hog_is_refused(mode):
    run = await run_tests("def f():\n    x = bytearray(8 << 30)\n    return 1\n", CHECK, limits(mode, memory_mib=512))
    assert run.passed == 0 and ("MemoryError" in run.output or run.error)


async def test_writing_outside_the_temp_dir_fails(mode):
    if rlimit_stays_root(mode):
        pytest.skip("rlimit fallback as root: the filesystem is not read-only without bubblewrap")
    target = Path(__file__).parent / f".escaped-{uuid.uuid4().hex}.txt"  # outside /tmp, which is private
    code = f"def f():\n    open({str(target)!r}, 'w').write('x')\n    return 1\n"
    try:
        run = await run_tests(code, CHECK, limits(mode))
        assert run.passed == 0 and not target.exists()
    finally:
        target.unlink(missing_ok=True)
    assert "Read-only file system" in run.output or "Permission denied" in run.output


async def test_no_network_even_to_a_host_port(mode):
    hits = []

    async def on_connect(reader, writer):
        hits.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n    return 1\n"
    async with server:
        run = await run_tests(code, CHECK, limits(mode))
    assert run.passed == 0 and hits == []
    assert run.network in ("bwrap", "netns", "socket-guard")


async def test_output_flood_is_cut_and_the_run_killed(mode):
    run = await run_tests("def f():\n    print('x' * 10_000_000)\n    return 1\n", CHECK, limits(mode, output_kib=16))
    assert run.passed == 0 and "output over 16 KiB" in run.error and len(run.output) <= 2000


async def test_code_cannot_forge_its_own_result(mode):
    code = ("import json, os\njson.dump({'passed': 1, 'total': 1}, open('result.json', 'w'))\nos._exit(0)\n")
    run = await run_tests(code, CHECK, limits(mode))
    assert run.passed == 0 and "without a result" in run.error


async def test_doctest_examples_count_each_example(mode):
    suite = TestSuite(kind="doctest", source=">>> add(1, 2)\n3\n>>> add(2, 2)\n4\n")
    run = await run_tests("def add(a, b):\n    return 3\n", suite, limits(mode))
    assert (run.passed, run.total) == (1, 2) and "add(2, 2)" in run.output


def test_a_python_under_a_masked_dir_is_bound_back(monkeypatch):
    """A checkout (and its venv) under /tmp, which the sandbox replaces with a private tmpfs, must still
    run: seen when CI cloned into /tmp ("bwrap: execvp .../.venv/bin/python: No such file")."""
    from fleet.scoring import sandbox

    monkeypatch.setattr(sandbox, "_python_paths", lambda: ["/tmp/ci/.venv", "/usr/lib/python3.11"])
    argv = sandbox._bwrap_argv(Path("/tmp/fleet-sandbox-x"), SandboxLimits(), drop_uid=False)
    tmpfs, bind = argv.index("/tmp"), argv.index("/tmp/ci/.venv")
    assert argv[tmpfs - 1] == "--tmpfs" and argv[bind - 1] == "--ro-bind" and bind > tmpfs
    assert ["--perms", "0755", "--dir", "/tmp/ci"] == argv[bind - 5: bind - 1]
    assert "/usr/lib/python3.11" not in argv  # visible through the read-only root already

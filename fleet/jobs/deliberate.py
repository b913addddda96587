"""Batch entry for `ray job submit`: run a JSONL file of tasks through the fleet's coordinator.

    ray job submit --working-dir . -- python -m fleet.jobs.deliberate \\
        --tasks examples/tasks.jsonl --out results.jsonl [--config serve_configs/cpu.yaml]

Each input line is {"id": ..., <DeliberationInput fields>} (at least "task"). Every line is
validated before anything runs. It joins the cluster's running fleet (the coordinator a Serve app
or driver started) or, if there is none, starts the engine and a coordinator itself. One JSON line
per task is appended to --out as each finishes; ids already in --out are skipped, so re-running
resumes. Progress goes to stdout, i.e. the job's logs. This is a synchronous edge, like the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from fleet.config.fleet import FleetConfig, load_fleet_config
from fleet.driver import Fleet
from fleet.errors import DeliberationFailedError, FleetError, explain
from fleet.schemas.api import DeliberationInput


class TaskLine(DeliberationInput):
    id: str = Field(min_length=1, max_length=128, description="the caller's task id (resume key)")


def read_tasks(path: Path) -> list[TaskLine]:
    """All lines, validated; raises ValueError naming every bad line."""
    tasks, errors = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            tasks.append(TaskLine.model_validate_json(line))
        except ValidationError as e:
            errors.append(f"{path}:{n}: {explain(e.errors())}")
    ids = [t.id for t in tasks]
    errors += [f"{path}: duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if errors:
        raise ValueError("\n".join(errors))
    return tasks


def done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}


async def _fleet(config_path: str | None) -> Fleet:
    """The cluster's running fleet (as it runs, whatever its config), else one started from the config."""

    def starting(config: FleetConfig) -> FleetConfig:
        print("no running fleet coordinator: starting the engine and one", flush=True)
        return config

    config = load_fleet_config(config_path) if config_path else FleetConfig()
    return await Fleet.start(config, join=True, on_start=starting)


async def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    tasks = await asyncio.to_thread(read_tasks, Path(args.tasks))
    skip = await asyncio.to_thread(done_ids, out)
    todo = [t for t in tasks if t.id not in skip]
    print(f"{len(tasks)} tasks, {len(tasks) - len(todo)} already in {out}, {len(todo)} to run", flush=True)
    if not todo:
        return 0
    fleet = await _fleet(args.config)
    slots, write_lock, failed, finished = asyncio.Semaphore(args.concurrency), asyncio.Lock(), 0, 0

    async def one(task: TaskLine) -> None:
        nonlocal failed, finished
        async with slots:
            started = time.perf_counter()
            line: dict[str, Any] = {"id": task.id}
            try:
                request = task.to_request(fleet.config.deliberation)
                record = await fleet.run(request)
                line |= {"status": "done", "record": record.model_dump(mode="json")}
                summary = f"winner {record.winner_id} ({record.status})"
            except DeliberationFailedError as e:
                line |= {"status": "failed", "error": str(e),
                         "record": e.record.model_dump(mode="json") if e.record else None}
                summary, failed = f"FAILED: {e}", failed + 1
            except (FleetError, ValidationError) as e:
                line |= {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                summary, failed = f"FAILED: {type(e).__name__}: {e}", failed + 1
            async with write_lock:
                await asyncio.to_thread(_append, out, json.dumps(line))
                finished += 1
            print(f"[{finished}/{len(todo)}] {task.id}: {summary} in {time.perf_counter() - started:.1f}s", flush=True)

    await asyncio.gather(*(one(t) for t in todo))
    await fleet.shutdown()
    print(f"done: {len(todo) - failed} succeeded, {failed} failed; results in {out}", flush=True)
    return 1 if failed else 0


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fleet.jobs.deliberate", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", required=True, help="JSONL file: one {id, task, role, ...} per line")
    p.add_argument("--out", required=True, help="JSONL results file (appended; ids in it are skipped)")
    p.add_argument("--config", help="FleetConfig YAML or serve_configs/*.yaml (default: the running fleet's)")
    p.add_argument("--concurrency", type=int, default=2, help="deliberations at once (default 2)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(run(args))  # the synchronous outermost edge of a job
    except ValueError as e:
        print(f"invalid tasks file:\n{e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

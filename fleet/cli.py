"""`fleet` command line: the outermost, and only, synchronous edge.

    fleet deliberate "Add rate limiting to the login endpoint" --role DEV --agents 3 --rounds 1
    fleet deliberate "..." --json > record.json
    fleet prepare-model            # convert the embedded SmolLM2 once (the first deliberate does it too)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap

from fleet.config.deliberation import SamplingOverride
from fleet.config.fleet import FleetConfig, RayOptions, load_fleet_config
from fleet.driver import Fleet
from fleet.errors import DeliberationFailedError, FleetError, UserError
from fleet.record import DeliberationRecord


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleet", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deliberate", help="run one deliberation and print its record")
    d.add_argument("task", help="the task description")
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
    sub.add_parser("prepare-model", help="convert the embedded SmolLM2 GGUF into a vLLM-loadable folder")
    return p


def _config(args: argparse.Namespace) -> FleetConfig | None:
    """The fleet to start, or None: join the running fleet, else start the default one."""
    if not (args.config or args.engine):
        return None
    cfg = load_fleet_config(args.config) if args.config else FleetConfig()
    if args.engine and args.engine != cfg.engine.kind:
        # Another engine kind is another Serve app: never replace the config's own engine app.
        engine = {**cfg.engine.model_dump(), "kind": args.engine, "app_name": "fleet-engine"}
        cfg = FleetConfig.model_validate({**cfg.model_dump(), "engine": engine})
    return cfg


async def _deliberate(args: argparse.Namespace) -> int:
    fleet = await Fleet.start(_config(args), ray_options=RayOptions(address=args.address, log_to_driver=args.verbose))
    try:
        record = await fleet.deliberate(
            args.task, role=args.role, num_agents=args.num_agents, rounds=args.rounds,
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
            out.append(_excerpt(p.content, full))
    if record.scores:
        out.append("\n== scores ==")
        out.append(f"{'rank':<5}{'agent':<18}{'total':>7}{'checks':>8}{'judge':>7}  checks failed")
        for s in record.scores:
            judge = f"{s.judge.score}/10" if s.judge else "-"
            failed = ", ".join(f"{c.name} ({c.detail})" for c in s.checks if not c.passed) or "-"
            out.append(f"{s.rank:<5}{s.author_id:<18}{s.total:>7.3f}{s.checks_score:>8.3f}{judge:>7}  {failed}")
    if record.selection:
        out.append(f"\nWINNER: {record.selection.winner_id}  (candidates {record.selection.candidates})")
        out.append(f"  why: {record.selection.reason}")
    out.append("\nfailures: " + ("none" if not record.failures else ""))
    for f in record.failures:
        out.append(f"  {f.agent_id} at {f.stage} round {f.round}: {f.error_type}: {f.message[:300]}")
    for n in record.notes:
        out.append(f"note: {n}")
    phases = "  ".join(f"{t.phase}{f' r{t.round}' if t.phase in ('critique', 'revise') else ''} "
                       f"{t.wall_ms / 1000:.1f}s" for t in record.timings)
    secs = record.duration_ms / 1000
    tok = record.tokens
    out.append(f"timings: {phases}  | deliberation {secs:.1f}s"
               + (f"  | engine start {engine_ready_s:.1f}s" if engine_ready_s else ""))
    rate = tok.completion_tokens / secs if secs else 0.0
    out.append(f"tokens: {tok.calls} calls, {tok.prompt_tokens} prompt + {tok.completion_tokens} completion "
               f"({rate:.1f} completion tok/s over the deliberation)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare-model":
            from fleet.engine.model_prep import prepare_embedded_model

            print(prepare_embedded_model())
            return 0
        # The one asyncio.run in fleet: this is the synchronous outermost edge.
        return asyncio.run(_deliberate(args))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FleetError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

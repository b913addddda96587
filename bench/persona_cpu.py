"""Issue 20 item 7: does the persona cost answers? One greedy answer (`single`) per problem on the tuning
problems (HumanEval 100-163: 0-39 is the table and is not tuned on), on the default engine, four prompts
run side by side through one fleet:

    role           DEV agent 1 as the council runs it: the DEV persona and its lens after the task (shared_prefix)
    persona-first  the same words, the persona and lens as the system message (the first table's layout)
    no-lens        the DEV persona alone (the lens is the only change)
    bare           "You write Python." and no lens: as near a bare "complete this function" as the prompt gets

    .venv/bin/python bench/persona_cpu.py [--offset 100] [--limit 64] [--out bench/results/persona-cpu]

Resumable (each prompt its own file); the table is printed and written to OUT/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from fleet.config.fleet import load_fleet_config
from fleet.config.roles import ROLE_PERSONAS
from fleet.driver import Fleet
from fleet.eval.report import paired, pass_at_1, problem_key
from fleet.eval.rows import EvalRow, EvalSettings
from fleet.eval.run import EvalConfig, Evaluation

CONFIG = Path(__file__).with_name("humaneval-cpu.yaml")
MODEL = "qwen2.5-coder-0.5b"
PROMPTS: dict[str, EvalSettings] = {
    "role": EvalSettings(model=MODEL),
    "persona-first": EvalSettings(model=MODEL, prompt_layout="persona_first"),
    "no-lens": EvalSettings(model=MODEL, role="DEV_NO_LENS", persona=ROLE_PERSONAS["DEV"]),
    "bare": EvalSettings(model=MODEL, role="BARE", persona="You write Python."),
}


def table(runs: dict[str, list[EvalRow]]) -> str:
    common = set.intersection(*({r.problem for r in rows} for rows in runs.values()))
    runs = {v: sorted((r for r in rows if r.problem in common), key=lambda r: problem_key(r.problem))
            for v, rows in runs.items()}
    first, last, n = runs["role"][0].problem, runs["role"][-1].problem, len(common)
    out = [f"{first}..{last} ({n} problems), one greedy answer each, {MODEL}.", "",
           "| prompt | pass@1 | 95% interval | completion tok / problem | only this passes | only role passes |",
           "|---|---:|---|---:|---:|---:|"]
    for v, rows in runs.items():
        c = paired(rows, runs["role"])
        tok = sum(r.completion_tokens for r in rows) / n
        out.append(f"| {v} | {pass_at_1(sum(r.passed for r in rows), n)} | {tok:,.0f} "
                   f"| {c[(True, False)]} | {c[(False, True)]} |")
    return "\n".join(out) + "\n"


async def main(args: argparse.Namespace) -> None:
    # four evaluations of 16 calls at once: a slot each, none left waiting at the door
    config = load_fleet_config(str(CONFIG)).model_copy(update={"max_concurrent": 4 * 16})
    fleet = await Fleet.start(config)
    try:
        t0 = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        evals = {v: Evaluation(fleet, EvalConfig(settings=s, strategies=["single"], offset=args.offset,
                                                 limit=args.limit, concurrency=16, out=args.out / f"{v}.jsonl"))
                 for v, s in PROMPTS.items()}
        results = await asyncio.gather(*(e.run() for e in evals.values()))
        text = table(dict(zip(evals, results, strict=True)))
        text += f"\nAll four side by side in one fleet: {(time.perf_counter() - t0) / 60:.1f} min.\n"
        print(text)
        (args.out / "README.md").write_text(text)
    finally:
        await fleet.shutdown()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--offset", type=int, default=100)
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("bench/results/persona-cpu"))
    asyncio.run(main(p.parse_args()))

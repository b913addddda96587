"""Replay the council's selection on the records of a `fleet eval --records` run: which winner each
ranking rule picks among the same candidates, and whether it passes the hidden check.

A selection rule costs no tokens, so its variants are compared on one run's candidates instead of
one run each (a council run of 36 tuning problems took 50 min of a 2-core CPU). The rules:

- `agreement`: groups by visible tests passed, then agreement (the rule before 2026-12-01);
- `crashes`:   visible tests passed, then crashes (an error the code does not raise itself, on a probe
               input where another candidate returns a value), then agreement (fleet's rule now).

The replay keeps the record's own winner where a rule leads with the same group (the architect may
have broken a tie there); where it leads with another group, that group's representative wins (`*`
marks a lead tied with another group: the architect would have been asked).

    .venv/bin/python bench/selection_replay.py ROWS.jsonl RECORDS_DIR [--reprobe]

`--reprobe` also reruns every candidate in the sandbox on the probe inputs fleet chooses now
(`choose_probes`). bench/results/selection-replay/ has a run to replay (untar its records).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

from fleet.config.scoring import SandboxLimits
from fleet.eval.run import record_path
from fleet.schemas.record import DeliberationRecord
from fleet.scoring.extract import extract_code
from fleet.selection.behaviour import behaviour
from fleet.selection.consensus import crashes, returned_values
from fleet.selection.models import BehaviourGroup
from fleet.selection.probes import raised_names

Key = Callable[[BehaviourGroup, int], tuple[int, ...]]
RULES: dict[str, tuple[Key, set[str]]] = {  # the rule, and errors that never count as a crash under it
    "agreement": (lambda g, pos: (-g.visible_passed, g.outputs is None, -g.agreement, -len(g.members), pos), set()),
    "crashes": (lambda g, pos: (-g.visible_passed, g.outputs is None, g.crashes, -g.agreement, -len(g.members), pos),
                set()),
    # a TypeError is what valid code raises on an input of the wrong type, which agents do write
    "crashes-but-TypeError": (lambda g, pos: (-g.visible_passed, g.outputs is None, g.crashes, -g.agreement,
                                              -len(g.members), pos), {"TypeError"}),
}


def with_crashes(record: DeliberationRecord, forgiven: set[str]) -> list[BehaviourGroup]:
    """The record's groups (stored order), each with its crashes recomputed from the probe table."""
    assert record.behaviour is not None
    valued = returned_values(record.behaviour.table)
    raises = {p.candidate_id: raised_names(extract_code(p.content).code or "") for p in record.proposals}
    out = []
    for g in record.behaviour.groups:
        own = set().union(forgiven, *(raises.get(c, set()) for c in g.members))
        out.append(g.model_copy(update={"crashes": crashes(g.outputs, valued, own)}))
    return out


def replay(record: DeliberationRecord, rule: Key, forgiven: set[str]) -> tuple[str, bool]:
    """(the winner under `rule`, whether its lead ties with the next group on the rule's key)."""
    groups = with_crashes(record, forgiven)
    ranked = sorted(range(len(groups)), key=lambda i: rule(groups[i], i))
    lead = groups[ranked[0]]
    assert record.selection is not None
    if record.selection.winner_candidate in lead.members:
        return record.selection.winner_candidate, False
    tied = len(ranked) > 1 and rule(groups[ranked[1]], 0)[:-2] == rule(lead, 0)[:-2]
    return lead.members[0], tied


async def reprobed(record: DeliberationRecord) -> tuple[str, int, int]:
    """The consensus winner when the probes are chosen as fleet chooses them now (`choose_probes`: the
    candidates' own calls added to the visible tests' and the writer's), every candidate rerun on them
    in the sandbox; with the number of probe inputs before and after."""
    assert record.behaviour is not None and record.selection is not None
    written = [p.expression for p in record.behaviour.probes if p.source == "agent"]
    now = await behaviour(record.task, record.proposals, record.scores, written, SandboxLimits())
    lead = now.groups[0]
    winner = record.selection.winner_candidate if record.selection.winner_candidate in lead.members else lead.members[0]
    return winner, len(record.behaviour.probes), len(now.probes)


def main(rows_path: str, records_dir: str, reprobe: bool = False) -> None:
    totals = dict.fromkeys(RULES, 0)
    probed = [0, 0]  # councils with any probe input: as run, as fleet chooses them now
    n = 0
    changed = []
    for line in Path(rows_path).read_text().splitlines():
        row = json.loads(line)
        path = record_path(Path(records_dir), row["problem"], row["strategy"])
        if row["strategy"] != "council" or not path.exists():
            continue
        record = DeliberationRecord.model_validate_json(path.read_text())
        hidden: dict[str, bool] = row["detail"].get("hidden", {})
        if record.selection is None or record.behaviour is None or not hidden:
            continue
        n += 1
        picks = {name: replay(record, *rule) for name, rule in RULES.items()}
        if reprobe:
            winner, before, after = asyncio.run(reprobed(record))
            picks["crashes+draft-probes"] = (winner, False)
            totals.setdefault("crashes+draft-probes", 0)
            probed[0] += before > 0
            probed[1] += after > 0
        for name, (winner, _) in picks.items():
            totals[name] += hidden.get(winner, False)
        if len({w for w, _ in picks.values()}) > 1:
            changed.append((row["problem"], {k: (w, hidden.get(w, False), t) for k, (w, t) in picks.items()}))
    print(f"{n} councils replayed; pass@1 by rule: " + ", ".join(f"{k} {v}/{n}" for k, v in totals.items()))
    if reprobe:
        print(f"councils with a probe input: {probed[0]}/{n} as run, {probed[1]}/{n} with the candidates' own calls")
    for problem, picks in changed:
        print(f"  {problem}: " + "; ".join(f"{k} -> {w} ({'pass' if ok else 'fail'}){'*' if t else ''}"
                                          for k, (w, ok, t) in picks.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], reprobe="--reprobe" in sys.argv[3:])

"""The behaviour step of a code task: run every candidate on the probe inputs (one sandbox run each,
concurrently within the sandbox's own limit) and group them by their outputs.

What this file leaves out: where the inputs come from (`probes.py`) and the ranking rule
(`consensus.py`).
"""

from __future__ import annotations

import asyncio

from fleet.config.scoring import SandboxLimits
from fleet.config.task import Task
from fleet.schemas.record import Proposal
from fleet.schemas.scoring import ScoreCard
from fleet.scoring.extract import PARSE_THREAD, extract_code
from fleet.selection.base import cid, lineage_roots, visible
from fleet.selection.consensus import make_groups
from fleet.selection.models import Behaviour, ProbeInput
from fleet.selection.probes import choose_probes, probe_row, raised_names


async def behaviour(task: Task, proposals: list[Proposal], cards: list[ScoreCard], written: list[str],
                    limits: SandboxLimits) -> Behaviour:
    """The probe table and groups of these candidates (cards: best first, every candidate's)."""
    def parse() -> tuple[list[ProbeInput], dict[str, set[str]]]:
        codes = {p.candidate_id: extract_code(p.content).code or "" for p in proposals}
        probes = choose_probes(task, codes, [p.content for p in proposals], written)
        return probes, {c: raised_names(v) for c, v in codes.items()}

    probes, raises = await asyncio.get_running_loop().run_in_executor(PARSE_THREAD, parse)
    exprs = [p.expression for p in probes]
    table = list(await asyncio.gather(*(probe_row(p.candidate_id, p.content, exprs, limits) for p in proposals)))
    by = {cid(c): c for c in cards}
    vis = {p.candidate_id: visible(by[p.candidate_id]) if p.candidate_id in by else (0, 0) for p in proposals}
    rank = {p.candidate_id: by[p.candidate_id].rank if p.candidate_id in by else len(by) + 1 for p in proposals}
    roots = lineage_roots(proposals)
    return Behaviour(probes=probes, table=table, groups=make_groups(table, vis, roots, rank, raises),
                     lineages=len(set(roots.values())))

"""Sample-and-vote: choose one of N sampled answers by the consensus of their behaviour.

Each answer is run (in the sandbox) on the problem's probe inputs (`humaneval.probe_inputs`); the
answers are grouped by their tuple of outputs and the groups ranked by the council's own consensus
rule (`fleet.selection.consensus`, written once): the visible examples passed, then agreement (each
sample is a lineage of its own), then size. Within a group, and between groups that tie, the
deterministic checks decide, in order: more visible examples passed, no lint findings, the code
parses, then the earliest sample. An answer whose code did not run stands alone and never leads one
that ran. The checks never see the hidden tests.
"""

from __future__ import annotations

from pydantic import Field

from fleet.config._base import StrictModel
from fleet.selection.consensus import make_groups
from fleet.selection.models import ProbeRow


class Ballot(StrictModel):
    """One sampled answer, as the vote sees it."""

    index: int = Field(ge=0, description="its position among the samples")
    outputs: list[str] | None = Field(description="its output on each probe input; None: its code did not run")
    visible_passed: int = Field(default=0, ge=0, description="visible examples its outputs match")
    lint_clean: bool = False
    parses: bool = False


class VoteOutcome(StrictModel):
    chosen: int = Field(description="the index of the chosen ballot")
    group_size: int = Field(description="ballots that agreed with it (itself included)")
    groups: list[int] = Field(description="sizes of the agreement groups, largest first")
    ran: int = Field(description="ballots whose code ran")


def _checks(b: Ballot) -> tuple[int, bool, bool, int]:
    return (b.visible_passed, b.lint_clean, b.parses, -b.index)  # larger is better


def choose(ballots: list[Ballot]) -> VoteOutcome:
    """The vote's choice.

    >>> b = lambda i, out, vis=0: Ballot(index=i, outputs=out, visible_passed=vis, parses=out is not None)
    >>> choose([b(0, ["1"]), b(1, ["2"]), b(2, ["2"]), b(3, None)]).chosen   # agreement
    1
    >>> choose([b(0, ["1"], vis=1), b(1, ["2"]), b(2, ["2"])]).chosen        # visible examples first
    0
    """
    if not ballots:
        raise ValueError("nothing to vote on")
    ids = {str(b.index): b for b in ballots}
    rank = {str(b.index): i for i, b in enumerate(sorted(ballots, key=_checks, reverse=True))}
    rows = [ProbeRow(candidate_id=c, outputs=b.outputs) for c, b in ids.items()]
    groups = make_groups(rows, {c: (b.visible_passed, 0) for c, b in ids.items()}, {c: c for c in ids}, rank)
    lead = groups[0]
    ran = [g for g in groups if g.outputs is not None]
    return VoteOutcome(chosen=ids[lead.members[0]].index, group_size=len(lead.members),
                       groups=sorted((len(g.members) for g in ran), reverse=True),
                       ran=sum(len(g.members) for g in ran))

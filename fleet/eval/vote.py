"""Sample-and-vote: choose one of N sampled answers by the agreement of their outputs.

Each answer is run (in the sandbox) on the problem's probe inputs (`humaneval.probe_inputs`); the
answers whose code ran are grouped by their tuple of outputs, and the largest group wins. Ties, and
the members of the winning group, are decided by the deterministic checks, in order: more visible
examples passed, no lint findings, the code parses, then the earliest sample. When no answer ran at
all, the deterministic checks alone decide. The checks never see the hidden tests.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from fleet.config._base import StrictModel


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
    >>> choose([b(0, ["1"]), b(1, ["2"]), b(2, ["2"]), b(3, None)]).chosen   # agreement first
    1
    >>> choose([b(0, ["1"]), b(1, ["2"], vis=1)]).chosen                      # a tie: the checks decide
    1
    """
    if not ballots:
        raise ValueError("nothing to vote on")
    ran = [b for b in ballots if b.outputs is not None]
    if not ran:
        best = max(ballots, key=_checks)
        return VoteOutcome(chosen=best.index, group_size=1, groups=[], ran=0)
    groups: dict[tuple[str, ...], list[Ballot]] = defaultdict(list)
    for b in ran:
        groups[tuple(b.outputs or [])].append(b)
    # The largest group; among equally large ones, the one whose best member passes the checks best.
    winner = max(groups.values(), key=lambda g: (len(g), max(_checks(b) for b in g)))
    best = max(winner, key=_checks)
    return VoteOutcome(chosen=best.index, group_size=len(winner),
                       groups=sorted((len(g) for g in groups.values()), reverse=True), ran=len(ran))

"""What the record keeps of the candidates' behaviour: the probe inputs, each candidate's outputs on
them (the probe table) and the groups of candidates whose outputs agree.

Plain typed data with no fleet dependency beyond the base model (the record imports it). How the
table is made lives in `probes.py`, how groups are ranked in the selectors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel


class ProbeInput(StrictModel):
    expression: str = Field(description="a call of the code under test, e.g. `f([1, 2])`: inputs only")
    source: Literal["visible", "agent", "draft"] = Field(
        description="visible: from a visible test; agent: the probe writer wrote it; draft: a candidate's answer "
                    "makes this call (its examples, its asserts: the input only)")


class ProbeRow(StrictModel):
    """One candidate on every probe input (one sandbox run)."""

    candidate_id: str
    outputs: list[str] | None = Field(description="each input's repr, or `!ErrorType`; None: the code did not run")
    errors: list[str] = Field(default_factory=list, description="each input's exception message ('' for a value)")
    error: str = Field(default="", description="why the code did not run (no code, does not parse, import crash)")


class BehaviourGroup(StrictModel):
    """Candidates with identical outputs on every probe input (a candidate whose code did not run is
    a group of its own)."""

    members: list[str] = Field(min_length=1, description="candidate ids, best first: the first represents the group")
    outputs: list[str] | None = Field(description="the members' shared outputs; None: did not run")
    visible_passed: int = Field(ge=0, description="visible tests its representative passes")
    visible_total: int = Field(ge=0)
    agreement: int = Field(ge=1, description="distinct lineages among the members (a revision and its parent: one)")
    crashes: int = Field(default=0, ge=0, description="probe inputs on which the members raise an error their code "
                         "does not raise itself while another candidate returns a value there")


class Behaviour(StrictModel):
    probes: list[ProbeInput] = Field(default_factory=list)
    table: list[ProbeRow] = Field(default_factory=list, description="one row per candidate")
    groups: list[BehaviourGroup] = Field(default_factory=list, description="best first (consensus order)")
    lineages: int = Field(default=0, ge=0, description="distinct lineages among the candidates (majority: > half)")

    def group_of(self, candidate_id: str) -> BehaviourGroup | None:
        return next((g for g in self.groups if candidate_id in g.members), None)

    def differing(self, groups: list[BehaviourGroup]) -> list[int]:
        """Indices of the probe inputs on which these groups' outputs are not all the same."""
        outs = [g.outputs for g in groups if g.outputs is not None]
        if len(outs) < len(groups):
            return list(range(len(self.probes)))
        return [i for i in range(len(self.probes)) if len({o[i] for o in outs}) > 1]

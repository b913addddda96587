"""How a deliberation runs: rounds, review topology, quorum, judge, timeouts."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AliasChoices, ConfigDict, Field, model_validator

from fleet.config._base import StrictModel
from fleet.config.council import MAX_AGENTS, CouncilSpec
from fleet.config.roles import RoleName
from fleet.config.scoring import SandboxLimits, ScoreWeights
from fleet.config.task import Task

PromptLayout = Literal["shared_prefix", "persona_first"]

# The rules every entry point (config, HTTP input, CLI, admission, the scheduler) takes from here.
Topology = Literal["all_pairs", "ring"]
"""Who reviews whom in a round (fleet/coordinator/topology.py): all_pairs, every agent every peer; ring, agent i
agent i+1."""
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
MAX_ROUNDS = 10  # critique+revise rounds a deliberation may ask for


def majority(n: int) -> int:
    """The fewest of n that are more than half.

    >>> majority(3), majority(4)
    (2, 3)
    """
    return n // 2 + 1


def default_quorum(council_size: int) -> int:
    """The live agents a deliberation needs to go on when its config names no quorum: a majority."""
    return majority(council_size)


def quorum_error(quorum: int | None, council_size: int) -> str | None:
    """Why this quorum cannot be met by a council of this size (None: it can, or none is set)."""
    if quorum is not None and quorum > council_size:
        return f"quorum {quorum} is larger than the council ({council_size} agents)"
    return None


class Timeouts(StrictModel):
    """Every remote wait in fleet has one of these bounds (seconds)."""

    call_s: float = Field(default=300.0, gt=0, description="one agent or judge call")
    stage_s: float = Field(default=900.0, gt=0, description="one whole stage (all its calls)")
    deliberation_s: float = Field(default=3600.0, gt=0, description="one whole deliberation")


class DeliberationConfig(StrictModel):
    # Merged with StrictModel's. Field names validate as well as aliases: `dataflow` already lists its own
    # name among its aliases, and this lets the pydantic mypy plugin type __init__ by field name.
    model_config = ConfigDict(validate_by_name=True)

    rounds: int = Field(default=1, ge=0, le=MAX_ROUNDS, description="critique+revise rounds; 0 skips review")
    topology: Topology = Field(
        default="all_pairs",
        description="all_pairs: every agent reviews every peer; ring: agent i reviews agent i+1",
    )
    quorum: int | None = Field(
        default=None, ge=1, description="live agents needed to go on; None: more than half the council"
    )
    judge: bool = Field(default=True, description="score with an LLM judge besides the checks")
    judge_max_tokens: int = Field(default=256, ge=16, le=2048, description="the judge's budget (all criteria)")
    weights: ScoreWeights = Field(default_factory=ScoreWeights, description="a total's components (config.scoring)")
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits, description="limits of each test run")
    architect: bool = Field(
        default=True, description="an ARCHITECT agent chooses the winner among the top k (k=1 skips it)")
    early_stop: bool = Field(
        default=True, description="skip the remaining rounds once every live proposal passes its visible tests")
    feedback: bool = Field(
        default=True, description="show authors and critics what the code did (visible tests, lint); False: they "
        "work from the critiques alone, no early stop (the checks still rank the finals)")
    dataflow: bool = Field(  # AliasChoices: records stored with the old name still load
        default=True, validation_alias=AliasChoices("dataflow", "overlap_drafts"),
        description="each call starts once its inputs exist: a critique of round k once the proposal it reviews and "
        "its critic's own are final for round k-1 (a draft's critiques while other drafts are still being written), "
        "so an agent can be a round ahead of a slower one; the pairs are those of the agents live at the start. "
        "False: a barrier after the drafts and after each round (a ring re-pairs the live agents each round). "
        "(Accepted as overlap_drafts too, its name when it covered the drafts only.)")
    critique_max_tokens: int | None = Field(
        default=192, ge=1, le=8192, description="a critique's budget (short reviews are read); None: the agent's own"
    )
    prompt_layout: PromptLayout = Field(
        default="shared_prefix", description="shared_prefix: every prompt starts with the same system message and "
        "task, the persona after them (vLLM's prefix cache reuses that start); persona_first: the persona as the "
        "system message (the layout of the first HumanEval table)")
    selector: Literal["auto", "consensus", "architect", "top_score"] = Field(
        default="auto", description="how the winner is chosen among every candidate (drafts and revisions): "
        "consensus: behaviour groups by visible tests, then agreement (the architect breaks a near-tie); architect: "
        "an ARCHITECT agent among the top k; top_score: the highest total. auto: consensus for code tasks, architect "
        "for prose")
    probe_inputs: bool = Field(
        default=True, description="code tasks: an agent writes inputs (calls, no outputs) that every candidate is "
        "run on beside the visible tests' inputs")
    budget_tokens: int | None = Field(
        default=None, ge=1, description="completion tokens the deliberation may spend in all (agents, probe writer, "
        "judge, architect): a call whose max_tokens the rest cannot cover is not started (a draft: its agent is "
        "out; a critique or revision: skipped; the judge: left out), and the record says where tokens went")
    timeouts: Timeouts = Field(default_factory=Timeouts)


class SamplingOverride(StrictModel):
    """Per-request sampling for every agent of the council; None keeps each agent's own value."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    seed: int | None = Field(default=None, ge=0, le=2**31, description="added to each agent's own base seed: "
                             "another reproducible run of the same council")
    ignore_eos: bool | None = Field(default=None, description="every free-text call generates exactly its max_tokens "
                                    "(benchmarks: equal work in runs that are compared; never for real use)")


class DeliberationRequest(StrictModel):
    """One deliberation as a caller asks for it, validated at the edge.

    The council is either given explicitly (`council`) or resolved by the coordinator from `role`
    (its registered council, resized to `num_agents` when that differs).
    """

    task: Task
    role: RoleName
    num_agents: int | None = Field(default=None, ge=1, le=MAX_AGENTS, description="None: the council's size")
    persona: str | None = Field(default=None, max_length=4000, description="persona for a custom role")
    council: CouncilSpec | None = Field(default=None, description="explicit agents (overrides num_agents)")
    sampling: SamplingOverride | None = Field(default=None, description="sampling for every agent")
    config: DeliberationConfig = Field(default_factory=DeliberationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> DeliberationRequest:
        if self.council is not None:
            if self.council.role != self.role:
                raise ValueError(f"council role {self.council.role} differs from role {self.role}")
            if self.num_agents is not None and self.num_agents != len(self.council.agents):
                raise ValueError("num_agents contradicts the explicit council's size")
        n = len(self.council.agents) if self.council else self.num_agents
        if n is not None and (why := quorum_error(self.config.quorum, n)):
            raise ValueError(why)
        return self


class SampleRequest(StrictModel):
    """`n` independent first drafts of a task from a council's agents, taken in turn (agent i % size
    writes draft i, each draft its own seed), with no review, scoring or selection: the baseline a
    deliberation is measured against (`fleet eval`: one greedy answer, or sample-and-vote)."""

    task: Task
    role: RoleName
    n: int = Field(ge=1, le=256)
    num_agents: int | None = Field(default=None, ge=1, le=MAX_AGENTS, description="None: the council's size")
    persona: str | None = Field(default=None, max_length=4000, description="persona for a custom role")
    council: CouncilSpec | None = Field(default=None, description="explicit agents (overrides num_agents)")
    sampling: SamplingOverride | None = None
    prompt_layout: PromptLayout = "shared_prefix"
    timeouts: Timeouts = Field(default_factory=Timeouts)

    @model_validator(mode="after")
    def _consistent(self) -> SampleRequest:
        if self.council is not None and self.council.role != self.role:
            raise ValueError(f"council role {self.council.role} differs from role {self.role}")
        return self

"""What one eval result is, and the file they are kept in (JSON Lines, appended as they finish).

Resuming reads the file back: a (problem, strategy) already in it is not run again. Every row
carries the settings it ran with; a file written with other settings is refused, not mixed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from fleet.config._base import StrictModel
from fleet.config.deliberation import MAX_ROUNDS, PromptLayout, Topology
from fleet.config.roles import RoleName, is_builtin
from fleet.errors import InvalidRequestError

Strategy = Literal["single", "vote", "council", "council-nofeedback"]
STRATEGIES: tuple[Strategy, ...] = ("single", "vote", "council", "council-nofeedback")


class EvalSettings(StrictModel):
    """What makes two rows comparable: the same model, council, seed and prompt layout."""

    model: str
    role: RoleName = "DEV"
    agents: int = Field(default=3, ge=1, le=32)
    rounds: int = Field(default=1, ge=0, le=MAX_ROUNDS)
    topology: Topology = "all_pairs"
    judge: bool = True
    seed: int = Field(default=0, ge=0, description="added to every agent's seed")
    prompt_layout: PromptLayout = "shared_prefix"
    persona: str | None = Field(default=None, min_length=1, max_length=4000, description="None: the role's own "
                                "council (each agent its persona and lens); else every agent of every strategy has "
                                "this persona and no lens (a prompt ablation; a custom role, so no agent id clashes)")
    budget_tokens: int | None = Field(default=None, ge=1, description="the council's token budget a problem "
                                      "(DeliberationConfig.budget_tokens); None: none. single and vote ignore it")

    @model_validator(mode="after")
    def _own_role(self) -> EvalSettings:
        if self.persona is not None and is_builtin(self.role):
            raise ValueError(f"a persona ablation needs a role of its own (e.g. CODER), not the built-in "
                             f"{self.role}: its registered agents already have their personas")
        return self


class EvalRow(StrictModel):
    """One problem under one strategy."""

    problem: str
    strategy: Strategy
    passed: bool = Field(description="the chosen answer passed the problem's hidden check in the sandbox")
    oracle_pool: bool | None = Field(default=None, description="some answer the strategy produced (every sample, "
                                     "every draft and revision) passes the hidden check: a loss with this true is "
                                     "selection's, with it false generation's; None: not measured (older rows)")
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    calls: int = Field(ge=0, description="engine calls the strategy made")
    wall_s: float = Field(ge=0)
    error: str | None = Field(default=None, description="why the strategy produced no answer (counts as failed)")
    answer: str = Field(default="", description="the graded answer, as the model wrote it")
    grade_output: str = Field(default="", description="the hidden check's failure output, truncated")
    detail: dict[str, Any] = Field(default_factory=dict, description="strategy-specific: winner, vote groups, ...")
    settings: EvalSettings


def read_rows(path: Path, settings: EvalSettings) -> dict[tuple[str, str], EvalRow]:
    """The rows already in `path` (none if it does not exist); refuses another configuration's file."""
    if not path.exists():
        return {}
    rows: dict[tuple[str, str], EvalRow] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = EvalRow.model_validate_json(line)
        except ValidationError as e:
            raise InvalidRequestError(f"{path}:{n} is not an eval row ({e.error_count()} errors): "
                                      "pick another --out") from e
        if row.settings != settings:
            raise InvalidRequestError(
                f"{path} holds results of other settings ({row.settings.model_dump()} vs {settings.model_dump()}): "
                "pick another --out, or rerun with the same settings to resume")
        rows[(row.problem, row.strategy)] = row
    return rows


def append_row(path: Path, row: EvalRow) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(row.model_dump_json() + "\n")

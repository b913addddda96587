"""How proposals are measured: the sandbox's limits and the weights of a total.

A proposal's total is the weighted mean of the components that apply to it (a component that does
not apply, e.g. tests for a task without tests, is left out and the other weights renormalised):

    tests      share of the task's tests (visible and hidden) that pass in the sandbox
    lint       the code parses (0 otherwise), minus 0.1 per ruff finding
    judge      the LLM judge's mean criterion score, 1..10 mapped to 0..1
    structure  the proposal covers approach / implementation / risks and its role's content (text only)

The default weights encode the ranking order: tests passed first, then lint, then the judge, with
the text-only structure check a tie-breaker. Ties on the total go to tests, then lint, then judge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleet.config._base import StrictModel


class SandboxLimits(StrictModel):
    """Limits of one sandboxed run of model-written code (fleet.scoring.sandbox)."""

    wall_s: float = Field(default=30.0, gt=0, le=600, description="wall clock; the whole process tree is killed")
    cpu_s: int = Field(default=20, ge=1, le=600, description="CPU seconds (RLIMIT_CPU)")
    memory_mib: int = Field(default=1024, ge=64, le=65536, description="address space (RLIMIT_AS)")
    max_procs: int = Field(default=32, ge=1, le=4096, description="processes of the sandbox's user (RLIMIT_NPROC)")
    output_kib: int = Field(default=64, ge=1, le=65536, description="stdout+stderr kept; more kills the run")
    file_mib: int = Field(default=16, ge=1, le=4096, description="largest file it may write (RLIMIT_FSIZE)")
    mode: Literal["auto", "bwrap", "rlimit"] = Field(
        default="auto",
        description="bwrap: bubblewrap (no network, read-only system, private /tmp) plus rlimits; rlimit: rlimits "
                    "and a network guard only; auto: bwrap where it runs, else rlimit (the record says which ran)")


class ScoreWeights(StrictModel):
    tests: float = Field(default=0.6, ge=0.0, le=1.0)
    lint: float = Field(default=0.2, ge=0.0, le=1.0)
    judge: float = Field(default=0.15, ge=0.0, le=1.0)
    structure: float = Field(default=0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if not any(self.model_dump().values()):
            raise ValueError("at least one score weight must be positive")
        return self

"""The task a council deliberates on, and the rubric it is judged by."""

from __future__ import annotations

import ast
import uuid
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fleet.config._base import StrictModel

DEFAULT_CRITERIA: dict[str, str] = {
    "correctness": "The proposal solves the task as stated and is technically correct.",
    "completeness": "It covers the approach, the implementation, and the risks with their mitigations.",
    "quality": "It is clear, maintainable and testable, with concrete steps rather than generalities.",
}


class Rubric(StrictModel):
    """Criteria the work is judged by: a name and the text of each criterion.

    The *text* is what reaches the models; `render()` is the one place that formats it:
    >>> Rubric(criteria={"security": "No secrets in logs."}).render()
    '- security: No secrets in logs.'
    """

    criteria: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CRITERIA),
        description="criterion name -> the criterion's text, as the reviewers and the judge read it",
    )

    @field_validator("criteria")
    @classmethod
    def _non_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("a rubric needs at least one criterion")
        for name, text in value.items():
            if not name.strip() or not text.strip():
                raise ValueError(f"rubric criterion {name!r} needs a name and a non-empty text")
        return value

    def render(self) -> str:
        return "\n".join(f"- {name}: {text.strip()}" for name, text in self.criteria.items())


class TestSuite(StrictModel):
    """Tests a task carries. Visible ones are shown to the agents and their results fed back into
    revision; hidden ones only grade (never in any agent's prompt).

    kinds: `pytest` (a test module; the proposal's code is importable as `solution`), `check` (a
    HumanEval-style `check(candidate)` called with the proposal's `entry_point`), `doctest` (`>>>`
    examples run in the proposal's namespace, e.g. a docstring's)."""

    __test__ = False  # not a pytest class, whatever its name

    kind: Literal["pytest", "check", "doctest"] = "pytest"
    source: str = Field(min_length=1, max_length=200_000)
    entry_point: str | None = Field(default=None, description="function under test (kind='check')")
    visible: bool = Field(default=False, description="agents see it and get its results; else grading only")
    name: str = Field(default="", max_length=128)

    @model_validator(mode="after")
    def _valid(self) -> TestSuite:
        if self.kind == "check" and not (self.entry_point and self.entry_point.isidentifier()):
            raise ValueError("a 'check' test suite needs entry_point: the name of the function under test")
        if self.kind in ("pytest", "check"):
            try:
                ast.parse(self.source)
            except SyntaxError as e:
                raise ValueError(f"test source does not parse: line {e.lineno}: {e.msg}") from e
        if self.kind == "doctest" and ">>>" not in self.source:
            raise ValueError("a 'doctest' test suite needs '>>>' examples")
        return self


class Task(StrictModel):
    """One software-engineering task, as a council receives it."""

    task_id: str = Field(
        default_factory=lambda: f"task-{uuid.uuid4().hex[:12]}",
        min_length=1,
        max_length=128,
        description="caller's id for the task; generated when absent",
    )
    story_id: str | None = Field(default=None, max_length=128, description="the user story it belongs to")
    description: str = Field(min_length=1, max_length=20_000, description="what to do, in plain words")
    requirements: list[str] = Field(default_factory=list, max_length=50, description="must-haves")
    rubric: Rubric = Field(default_factory=Rubric, description="what proposals are judged by")
    k: int = Field(default=3, ge=1, le=64, description="how many top candidates the selection considers")
    constraints: dict[str, str] = Field(
        default_factory=dict, description="free-form extra constraints, shown to every agent"
    )
    language: Literal["python"] | None = Field(
        default=None, description="the language of the code asked for; None: python when tests are given")
    tests: list[TestSuite] = Field(default_factory=list, max_length=20, description="visible and hidden tests")

    @model_validator(mode="after")
    def _language(self) -> Task:
        if self.tests and self.language is None:
            self.language = "python"
        return self

    @property
    def visible_tests(self) -> list[TestSuite]:
        return [t for t in self.tests if t.visible]

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task description is empty: say what the council should work on")
        return value.strip()

    def render(self) -> str:
        """The task as the agents read it (shared by every prompt, so it comes first)."""
        lines = [f"Task: {self.description}"]
        if self.requirements:
            lines.append("Requirements:")
            lines += [f"- {r}" for r in self.requirements]
        if self.constraints:
            lines.append("Constraints:")
            lines += [f"- {k}: {v}" for k, v in self.constraints.items()]
        if self.language:
            lines.append(f"Write {self.language} code. It is saved as `solution.py` and run against tests.")
        for t in self.visible_tests:  # hidden tests never reach an agent
            lines.append(f"Visible tests ({t.kind}{f', for {t.entry_point}' if t.entry_point else ''}):")
            lines.append(f"```python\n{t.source.strip()}\n```")
        lines.append("The work is judged by these criteria:")
        lines.append(self.rubric.render())
        return "\n".join(lines)

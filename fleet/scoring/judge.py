"""The LLM judge: one schema-constrained call per proposal, scoring every rubric criterion.

The schema has one property per criterion, each `{"reason": "...", "score": 1..10}` with bounded
strings (a small model otherwise rambles inside a string until max_tokens). The judge reads the
results of running the code first (tests passed, the first failing assertion, lint), then the
proposal, and is told that failing code cannot meet a correctness criterion: without that the
embedded 0.5B model gave 10/10 to a function that always returned True (measured). It never sees a
test's source.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from fleet.agents.prompts import judge_messages
from fleet.config.deliberation import PromptLayout
from fleet.config.task import Task
from fleet.engine.protocol import ChatRequest, EngineClient
from fleet.errors import EngineError
from fleet.schemas.scoring import Check, CriterionScore, JudgeVerdict, ScoreCard
from fleet.schemas.usage import CallUsage

JUDGE_ID = "judge"


def judge_schema(criteria: list[str]) -> dict[str, Any]:
    """
    >>> judge_schema(["security"])["required"]
    ['security']
    """
    entry = {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 160},
                       "score": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["reason", "score"],
        "additionalProperties": False,
    }
    return {"type": "object", "properties": {c: entry for c in criteria}, "required": list(criteria),
            "additionalProperties": False}


def checks_summary(checks: list[Check]) -> str:
    r"""One line per check that applies, as the judge and the architect read it; failed *visible*
    tests add their first failing assertion. Hidden tests give counts only: the architect is an agent.

    >>> checks_summary([Check(name="tests:visible", status="failed", score=0.5, tests_passed=1, tests_total=2,
    ...                       output="E   assert 3 == 4")])
    '- tests:visible: 1 of 2 tests passed (FAILED)\n    E   assert 3 == 4'
    """
    lines = []
    for c in checks:
        if c.status == "skipped":
            continue
        if c.tests_total is None:
            lines.append(f"- {c.name}: {c.status}, {c.detail}")
            continue
        line = f"- {c.name}: {c.tests_passed} of {c.tests_total} tests passed" + (" (FAILED)" if not c.passed else "")
        shown = c.output.splitlines() if c.name == "tests:visible" else []
        asserts = [x.strip() for x in shown if x.strip().startswith("E ") or "assert" in x][:2]
        lines.append(line + "".join(f"\n    {a[:200]}" for a in asserts))
    return "\n".join(lines)


def card_summary(card: ScoreCard) -> str:
    """A score card as the architect reads it: the checks, the judge's mean score, the total and rank."""
    judge = (f"\n- judge: {card.judge.score:.1f}/10" if card.judge else "")
    return f"{checks_summary(card.checks)}{judge}\n- total: {card.total:.3f} (rank {card.rank})"


class Judge:
    def __init__(self, engine: EngineClient, model: str, max_tokens: int = 256, seed: int = 7,
                 layout: PromptLayout = "shared_prefix") -> None:
        self.engine, self.model, self.max_tokens, self.seed, self.layout = engine, model, max_tokens, seed, layout

    async def verdict(self, task: Task, author_id: str, proposal: str, checks: list[Check]) -> JudgeVerdict:
        """Raises `EngineError` when the call fails or the answer is not the schema's JSON."""
        criteria = list(task.rubric.criteria)
        result = await self.engine.chat(
            ChatRequest(
                model=self.model,
                messages=judge_messages(task, proposal, checks_summary(checks), self.layout),
                temperature=0.0,
                max_tokens=self.max_tokens,
                seed=self.seed,
                json_schema=judge_schema(criteria),
                tags={"agent_id": JUDGE_ID, "stage": "judge", "author_id": author_id},
            )
        )
        usage = CallUsage(agent_id=JUDGE_ID, stage="judge", round=0, prompt_tokens=result.prompt_tokens,
                          completion_tokens=result.completion_tokens, latency_ms=result.latency_ms,
                          finish_reason=result.finish_reason, served_by=result.served_by,
                          cached_tokens=result.cached_tokens)
        try:
            data = json.loads(result.text)
            scores = [CriterionScore(criterion=c, score=data[c]["score"], reason=str(data[c]["reason"]))
                      for c in criteria]
            return JudgeVerdict(criteria=scores, usage=usage)
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
            raise EngineError(f"judge answer for {author_id} is not a valid verdict "
                              f"({result.finish_reason}): {result.text[:200]!r}") from e

"""The LLM judge: one schema-constrained call per proposal, answered as {"score": 1-10, "reason"}."""

from __future__ import annotations

import json

from pydantic import ValidationError

from fleet.agents.prompts import JUDGE_SCHEMA, judge_messages
from fleet.config.task import Task
from fleet.engine.protocol import ChatRequest, EngineClient
from fleet.errors import EngineError
from fleet.messages import CallUsage
from fleet.record import JudgeVerdict

JUDGE_ID = "judge"


class Judge:
    def __init__(self, engine: EngineClient, model: str, max_tokens: int = 96, seed: int = 7) -> None:
        self.engine, self.model, self.max_tokens, self.seed = engine, model, max_tokens, seed

    async def verdict(self, task: Task, author_id: str, proposal: str) -> JudgeVerdict:
        """Raises `EngineError` when the call fails or the answer is not the schema's JSON."""
        result = await self.engine.chat(
            ChatRequest(
                model=self.model,
                messages=judge_messages(task, proposal),
                temperature=0.0,
                max_tokens=self.max_tokens,
                seed=self.seed,
                json_schema=JUDGE_SCHEMA,
                tags={"agent_id": JUDGE_ID, "stage": "judge", "author_id": author_id},
            )
        )
        usage = CallUsage(agent_id=JUDGE_ID, stage="judge", round=0, prompt_tokens=result.prompt_tokens,
                          completion_tokens=result.completion_tokens, latency_ms=result.latency_ms,
                          finish_reason=result.finish_reason, served_by=result.served_by)
        try:
            data = json.loads(result.text)
            return JudgeVerdict(score=data["score"], reason=str(data["reason"]), usage=usage)
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
            raise EngineError(f"judge answer for {author_id} is not valid JSON verdict: {result.text[:200]!r}") from e

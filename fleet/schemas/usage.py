"""What calls cost: each engine call's usage (tokens, cache hits, latency) by stage, and totals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleet.config._base import StrictModel

Stage = Literal["setup", "generate", "critique", "revise", "judge", "select", "probe"]


class CallUsage(StrictModel):
    """Tokens and time of one engine call."""

    agent_id: str
    stage: Stage
    round: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    finish_reason: Literal["stop", "length", "abort"]
    served_by: str = ""
    retries: int = Field(default=0, ge=0, description="re-sent because the engine had died and restarted")
    cached_tokens: int | None = Field(default=None, ge=0, description="of prompt_tokens, those vLLM's prefix "
                                      "cache supplied (not recomputed); None: the engine does not report it")
    start_ms: float | None = Field(default=None, ge=0, description="when the coordinator sent the call, in ms "
                                   "after the deliberation started (with end_ms: the call's span)")
    end_ms: float | None = Field(default=None, ge=0, description="when its reply was back, ms after the start")


class TokenTotals(StrictModel):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = Field(default=None, description="of prompt_tokens, those the engine's "
                                             "prefix cache supplied; None: no call reported it")

    @classmethod
    def of(cls, usage: list[CallUsage]) -> TokenTotals:
        reported = [u.cached_tokens for u in usage if u.cached_tokens is not None]
        return cls(calls=len(usage), prompt_tokens=sum(u.prompt_tokens for u in usage),
                   completion_tokens=sum(u.completion_tokens for u in usage),
                   cached_prompt_tokens=sum(reported) if reported else None)

    @property
    def prefix_hit_rate(self) -> float | None:
        """Share of prompt tokens served from the prefix cache (None: not reported)."""
        if self.cached_prompt_tokens is None or not self.prompt_tokens:
            return None
        return self.cached_prompt_tokens / self.prompt_tokens

    def cache_text(self) -> str:
        """', 62% of prompt tokens from the prefix cache', or '' when the engine does not say."""
        rate = self.prefix_hit_rate
        return "" if rate is None else f", {rate:.0%} of prompt tokens from the prefix cache"

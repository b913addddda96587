"""A deterministic fake engine: a complete implementation of `EngineClient` for logic tests.

Output depends only on (seed, messages, tags), so the same seeds give the same transcript in any
process. It writes role-shaped proposals (sections, a Python block), honours `max_tokens` (one
word = one token), answers JSON for `json_schema` requests, sleeps `latency_s` per call, and fails
on purpose for the agents or stages named in its config. Like vLLM's prefix cache it keeps the
blocks of every finished call (prompt and answer) and reports, per call, how many prompt tokens
whole cached blocks supplied; calls in flight together share nothing (as in one engine step). It
leaves out everything a model knows, and Ray: `fleet.engine.fake_deployment` serves it from a Serve
replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from fleet.config.engine import FakeEngineConfig
from fleet.engine.protocol import ChatRequest, ChatResult, EngineClient
from fleet.errors import EngineError

_CODE_VARIANTS = (
    "def rate_limit(key, store, limit=5, window=60):\n    count = store.incr(key, ttl=window)\n"
    "    return count <= limit",
    "class TokenBucket:\n    def __init__(self, rate, burst):\n        self.rate, self.tokens = rate, burst\n\n"
    "    def allow(self):\n        if self.tokens < 1:\n            return False\n"
    "        self.tokens -= 1\n        return True",
    "import time\n\n\ndef sliding_window(events, now=None, window=60):\n    now = now or time.time()\n"
    "    return [t for t in events if now - t < window]",
)
_ROLE_WORDS = {
    "QA": "test cases edge case regression bug boundary pytest assert",
    "ARCHITECT": "design component interface scalability trade-off pattern service boundary",
    "DEVOPS": "deploy CI/CD pipeline monitoring alert rollback infrastructure reliability",
    "DATA": "pipeline schema ETL migration data quality table index",
}


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


class FakeEngine(EngineClient):
    def __init__(self, config: FakeEngineConfig | None = None) -> None:
        self.config = config or FakeEngineConfig()
        self.calls: list[ChatRequest] = []  # every request seen, in arrival order
        self._blocks: set[int] = set()  # chained hashes of cached blocks

    def _block_hashes(self, tokens: Sequence[tuple[str, str]]) -> list[int]:
        size, hashes, h = self.config.prefix_block, [], 0
        for i in range(0, len(tokens) - size + 1, size) if size else ():
            h = _digest(h, tokens[i:i + size])
            hashes.append(h)
        return hashes

    def _cached(self, tokens: Sequence[tuple[str, str]]) -> int:
        """Prompt tokens whole cached blocks supply (never all: the last token is always computed)."""
        n = 0
        for h in self._block_hashes(tokens[:-1]):
            if h not in self._blocks:
                break
            n += self.config.prefix_block
        return n

    def delay_s(self, agent: str, call_hash: int) -> float:
        """How long a call sleeps: the fixed latency, the agent's extra, and the call's jitter."""
        c = self.config
        return c.latency_s + c.agent_latency_s.get(agent, 0.0) + c.latency_jitter_s * (call_hash % 1000) / 1000

    async def chat(self, request: ChatRequest) -> ChatResult:
        self.calls.append(request)
        start = time.perf_counter()
        prompt = [(m.role, w) for m in request.messages for w in m.content.split()]
        cached = self._cached(prompt)
        agent, stage = request.tags.get("agent_id", ""), request.tags.get("stage", "")
        h = _digest(request.seed, [(m.role, m.content) for m in request.messages], sorted(request.tags.items()))
        delay = self.delay_s(agent, h)
        if delay:
            await asyncio.sleep(delay)
        if agent in self.config.fail_agents or stage in self.config.fail_stages:
            raise EngineError(f"fake engine: injected failure for agent={agent!r} stage={stage!r}")
        if request.json_schema:
            text = self._json(request.json_schema, h)
        elif stage == "probe":
            text = self.config.probe_answer
        elif stage in ("generate", "revise") and agent in self.config.answers and self.config.answers[agent]:
            given = self.config.answers[agent]
            text = given[min(int(request.tags.get("round", "0")), len(given) - 1)]
        else:
            text = self._prose(request, h)
        words = text.split(" ")
        if request.ignore_eos and len(words) < request.max_tokens:
            words += ["pad"] * (request.max_tokens - len(words))
            text = " ".join(words)
        finish: Literal["stop", "length"] = "stop"
        if not request.json_schema and len(words) > request.max_tokens:
            text, finish = " ".join(words[: request.max_tokens]), "length"
        self._blocks.update(self._block_hashes(prompt + [("assistant", w) for w in text.split()]))
        return ChatResult(
            text=text,
            prompt_tokens=len(prompt),
            completion_tokens=min(len(words), request.max_tokens),
            finish_reason=finish,
            latency_ms=(time.perf_counter() - start) * 1000,
            served_by=self.config.fingerprint,
            cached_tokens=cached if self.config.prefix_block else None,
        )

    @staticmethod
    def _prose(request: ChatRequest, h: int) -> str:
        stage, role = request.tags.get("stage", "generate"), request.tags.get("role", "DEV")
        if stage == "critique":
            return (
                f"Review {h % 997}: the approach is plausible, but the proposal should handle bad input, "
                "add tests for the edge cases, and explain the failure modes against the rubric."
            )
        code = _CODE_VARIANTS[h % len(_CODE_VARIANTS)]
        revised = "Revised after review: added input validation and tests.\n\n" if stage == "revise" else ""
        return (
            f"{revised}## Analysis\nThe task needs a bounded, observable change (variant {h % 101}). "
            f"{_ROLE_WORDS.get(role, 'implementation tests')}\n\n## Approach\nStep 1 then step 2.\n\n"
            f"## Implementation\n```python\n{code}\n```\n\n"
            "## Risks\nClock skew and shared state; mitigate with a central store and tests."
        )

    @staticmethod
    def _json(schema: dict[str, Any], h: int) -> str:
        return json.dumps(_fill(schema, h))


def _fill(schema: dict[str, Any], h: int) -> Any:
    """A value that satisfies `schema` (objects, enums, bounded integers/numbers, strings)."""
    if "enum" in schema:
        return schema["enum"][h % len(schema["enum"])]
    kind = schema.get("type")
    if kind == "object":
        return {name: _fill(prop, _digest(h, name)) for name, prop in schema.get("properties", {}).items()}
    if kind == "integer":
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 10)
        return lo + h % (hi - lo + 1)
    if kind == "number":
        return float(schema.get("minimum", 0))
    return f"fake verdict {h % 97}"[: schema.get("maxLength", 200)]

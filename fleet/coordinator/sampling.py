"""Sampling: `n` first drafts from a council's agents, all at once, without deliberating.

The drafts go round the council's agents (sample i is agent i % n's draft number i // n) and run in
one deliberation slot. Each failed call is a failure in the result; none is retried or replaced.
What this file leaves out: critiques, scores, selection, the store (a sample is not tracked).
"""

from __future__ import annotations

import asyncio
import time

from fleet.config.deliberation import SampleRequest
from fleet.coordinator.actors import AgentActors
from fleet.coordinator.councils import CouncilRegistry
from fleet.coordinator.ledger import agent_failure
from fleet.messages import GenerateRequest
from fleet.schemas.record import Proposal, SampleResult
from fleet.schemas.usage import TokenTotals


async def sample(request: SampleRequest, councils: CouncilRegistry, agents: AgentActors,
                 slots: asyncio.Semaphore) -> SampleResult:
    """`request.n` first drafts from the council's agents in turn, all at once (one slot)."""
    council = councils.resolve(request)
    members = council.agents
    started = time.perf_counter()
    async with slots:
        pool, _ = agents.pool(members)
        calls = [(members[i % len(members)].agent_id,
                  GenerateRequest(task=request.task, sampling=request.sampling, sample=i // len(members),
                                  layout=request.prompt_layout))
                 for i in range(request.n)]
        replies = await asyncio.gather(*(asyncio.wait_for(pool.agent(a).generate(req), request.timeouts.call_s)
                                         for a, req in calls), return_exceptions=True)
    result = SampleResult(wall_ms=(time.perf_counter() - started) * 1000)
    for (agent_id, _), reply in zip(calls, replies, strict=True):
        if isinstance(reply, asyncio.CancelledError):
            raise reply
        if isinstance(reply, BaseException):
            result.failures.append(agent_failure(agent_id, "generate", 0, reply, request.timeouts.call_s))
            continue
        result.drafts.append(Proposal(author_id=agent_id, role=council.role, round=0, content=reply.content,
                                      usage=reply.usage))
    result.tokens = TokenTotals.of([d.usage for d in result.drafts])
    return result

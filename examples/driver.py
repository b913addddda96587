"""A driver script: start (or join) a fleet on the embedded CPU default and run one deliberation.

    .venv/bin/python examples/driver.py
"""

import asyncio

from fleet import Fleet, Rubric, Task


async def main():
    # Starts a local Ray and SmolLM2 on vLLM's CPU build; joins them if they are already running.
    async with await Fleet.start() as fleet:
        task = Task(
            description="Add rate limiting to the login endpoint",
            requirements=["Return HTTP 429 with a Retry-After header"],
            rubric=Rubric(criteria={
                "security": "Stops brute-force guessing without locking out legitimate users.",
                "operability": "Limits are configurable and every rejection is logged.",
            }),
            k=2,
        )
        record = await fleet.deliberate(task, role="DEV", num_agents=3, rounds=1)
        for card in record.scores:
            print(card.rank, card.candidate_id or card.author_id, f"{card.total:.3f}")
        print("winner:", record.winner_id, "-", record.selection.reason)
        return record


if __name__ == "__main__":
    asyncio.run(main())

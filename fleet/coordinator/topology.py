"""Who reviews whom in a critique round.

>>> review_pairs(["a", "b", "c"], "ring")
[('a', 'b'), ('b', 'c'), ('c', 'a')]
>>> len(review_pairs(["a", "b", "c"], "all_pairs"))
6
>>> critics_per_author(3, "all_pairs"), critics_per_author(3, "ring")
(2, 1)
"""

from __future__ import annotations

from fleet.config.deliberation import Topology


def review_pairs(agents: list[str], topology: Topology) -> list[tuple[str, str]]:
    """(critic, author) pairs among the live agents; nobody reviews themselves."""
    n = len(agents)
    if n < 2:
        return []
    if topology == "ring":
        return [(agents[i], agents[(i + 1) % n]) for i in range(n)]
    return [(c, a) for c in agents for a in agents if c != a]


def critics_per_author(n: int, topology: Topology) -> int:
    """How many critiques each author receives in a round among n live agents (as `review_pairs`)."""
    if n < 2:
        return 0
    return 1 if topology == "ring" else n - 1

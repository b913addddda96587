"""The score-and-select stage's pieces, as the deliberation runs them: score every candidate, rank
the cards (a regressing revision never above its parent), the probe table for code, the selector
the config asks for, oracle@pool.

    >>> from fleet.config.deliberation import DeliberationConfig
    >>> from fleet.config.task import Task
    >>> make_selector(DeliberationConfig(), Task(description="d", language="python"), None, None).name
    'consensus'
"""

from __future__ import annotations

from fleet.config.deliberation import DeliberationConfig
from fleet.config.task import Task
from fleet.schemas.record import Proposal
from fleet.schemas.scoring import ScoreCard
from fleet.scoring.ranking import rank
from fleet.scoring.scorer import Scorer, ScoringOutcome
from fleet.selection.architect import Architect, Ask
from fleet.selection.base import Selector, demote_regressions
from fleet.selection.consensus import Consensus
from fleet.selection.top_score import TopScore


def is_code(task: Task) -> bool:
    """Code tasks (a language, e.g. given by tests) are chosen by behaviour; the rest by judge and architect."""
    return task.language is not None


async def score_all(scorer: Scorer, task: Task, role: str, proposals: list[Proposal], cfg: DeliberationConfig,
                    ) -> tuple[ScoringOutcome, list[ScoreCard], list[str]]:
    """Every candidate scored; the cards best first, with a note per regressing revision."""
    outcome = await scorer.score(task, role, {p.candidate_id: p.content for p in proposals}, cfg.timeouts.call_s)
    author = {p.candidate_id: p.author_id for p in proposals}
    cards = rank({s.author_id: (s.checks, s.judge) for s in outcome.scored}, cfg.weights)
    cards = [c.model_copy(update={"author_id": author[c.author_id], "candidate_id": c.author_id}) for c in cards]
    cards, notes = demote_regressions(cards, {p.candidate_id: p for p in proposals})
    return outcome, cards, notes


def oracle(cards: list[ScoreCard]) -> bool | None:
    """Whether some candidate passes every hidden test (None: the task has none)."""
    hidden = [c for card in cards for c in card.checks if c.name == "tests:hidden" and c.status != "skipped"]
    return None if not hidden else any(c.passed for c in hidden)


def make_selector(cfg: DeliberationConfig, task: Task, ask: Ask | None, architect_id: str | None) -> Selector:
    """The config's selector. auto: a code task's consensus with the architect breaking near-ties; a
    prose task's architect among the top k. No architect (config, k=1, none in the pool): the
    consensus alone, or the top total."""
    kind = cfg.selector
    if kind == "auto":
        kind = "consensus" if is_code(task) else "architect"
    if kind == "top_score":
        return TopScore()
    if kind == "consensus":
        return Consensus(_architect(cfg, task, ask, architect_id, Consensus()))
    architect = _architect(cfg, task, ask, architect_id, TopScore())
    if architect is None:
        return TopScore("k=1: the top total wins" if task.k == 1 else "no architect: the top total wins")
    return architect


def _architect(cfg: DeliberationConfig, task: Task, ask: Ask | None, architect_id: str | None,
               fallback: Selector) -> Architect | None:
    """The architect choosing (`fallback` when it cannot), or None: none is asked (config, k=1, none in the pool)."""
    if ask is None or architect_id is None or not cfg.architect or task.k <= 1:
        return None
    return Architect(ask, fallback, architect_id, cfg.prompt_layout)

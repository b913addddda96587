"""Where review rounds spend their calls, and when they stop: the rules, apart from the scheduler.

- `worth_revising`: whether the checks alone give an author something to fix (prose and code).
- `needs_repair`: code tasks aim critique and revision only at candidates that fail: a visible test,
  a crash on import or on a visible test's input, a counterexample, code that is missing, cut off
  or does not parse, or an undefined name (ruff F821). One that passes keeps its proposal.
- `disagreement`: a passing code candidate that answers a probe input unlike the leading group of
  the others is repaired too, shown that input, their output and its own (never when theirs is a crash).
- `consensus_stop`: stop once the leading behaviour group (identical outputs on the visible tests'
  inputs) passes every visible test and holds a majority of the live agents; `may_still_stop` says
  whether the outputs in so far still allow that (the scheduler then waits to open a round).

`RepairPolicy` applies these rules to a deliberation's ledger (its live agents and current proposals).

What this file leaves out: which call starts when (rounds.py).
"""

from __future__ import annotations

from collections import Counter
from typing import TypeGuard

from fleet.config.deliberation import majority
from fleet.coordinator.ledger import Ledger
from fleet.schemas.record import ExecutionFeedback
from fleet.selection.stage import is_code


def worth_revising(feedback: ExecutionFeedback | None) -> bool:
    """Whether the checks alone give an author something to fix."""
    if feedback is None:
        return False
    return (not feedback.code_found or feedback.truncated or feedback.parse_error is not None
            or bool(feedback.lint) or feedback.failing or bool(feedback.disagreement))


def needs_repair(feedback: ExecutionFeedback | None) -> bool:
    """A code candidate that fails (see the module docstring); None (nothing measured): it does."""
    if feedback is None:
        return True
    return (not feedback.code_found or feedback.truncated or feedback.parse_error is not None or feedback.failing
            or any(f.startswith("F821") for f in feedback.lint))


def _passes(f: ExecutionFeedback | None) -> TypeGuard[ExecutionFeedback]:
    return f is not None and f.all_passed and not f.failing and f.outputs is not None


def consensus_stop(feedbacks: list[ExecutionFeedback | None]) -> int:
    """The size of the leading group when it passes every visible test and holds a majority of
    these (the live agents' current proposals); 0 when it does not.

    >>> ok = lambda out: ExecutionFeedback(code_found=True, tests_passed=2, tests_total=2, outputs=out)
    >>> bad = ExecutionFeedback(code_found=True, tests_passed=1, tests_total=2, outputs=["1"])
    >>> consensus_stop([ok(["3"]), ok(["3"]), bad]), consensus_stop([ok(["3"]), ok(["4"]), bad])
    (2, 0)
    """
    groups = Counter(tuple(f.outputs or []) for f in feedbacks if _passes(f))
    lead = max(groups.values(), default=0)
    return lead if lead >= majority(len(feedbacks)) else 0


def disagreement(mine: ExecutionFeedback | None, others: list[ExecutionFeedback | None]) -> str:
    """Where `mine` (passing) differs from the leading group of the passing proposals (`others`, its
    own included): the first such input, their output and its own ('' when it is in that group, or no
    group of two or more leads alone).

    >>> f = lambda out: ExecutionFeedback(code_found=True, tests_passed=1, tests_total=1, outputs=out,
    ...                                   inputs=["f(0)", "f(-1)"])
    >>> print(disagreement(f(["0", "1"]), [f(["0", "1"]), f(["0", "-1"]), f(["0", "-1"])]))
    Input: f(-1)
    Most candidates return: -1
    This code returned: 1
    >>> disagreement(f(["0", "1"]), [f(["0", "1"]), f(["0", "!IndexError"]), f(["0", "!IndexError"])])
    ''
    """
    if not _passes(mine):
        return ""
    groups = Counter(tuple(zip(f.inputs, f.outputs or [], strict=False)) for f in others if _passes(f))
    ranked = groups.most_common(2)
    if not ranked or ranked[0][1] < 2 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return ""
    lead = dict(ranked[0][0])
    own = dict(zip(mine.inputs, mine.outputs or [], strict=False))
    for expr, out in own.items():
        # A crash is never the answer to steer toward: code that returns where most raise keeps it.
        if expr in lead and lead[expr] != out and not lead[expr].startswith("!"):
            return f"Input: {expr}\nMost candidates return: {lead[expr]}\nThis code returned: {out}"
    return ""


def may_still_stop(settled: list[ExecutionFeedback | None], live: int) -> bool:
    """Whether a consensus stop is still possible with these outputs in (of `live`): not once more
    of them fail than a majority can spare."""
    failing = sum(not _passes(f) for f in settled)
    return failing <= live - majority(live)


class RepairPolicy:
    """The rules above, read against one deliberation's ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.cfg, self.task = ledger.cfg, ledger.request.task

    def shown(self, author: str) -> ExecutionFeedback | None:
        """What the agents are told about `author`'s code (nothing with `feedback=False`)."""
        return self.ledger.current[author].feedback if self.cfg.feedback else None

    def shown_for_repair(self, author: str, k: int) -> ExecutionFeedback | None:
        """What an author and its critics are shown in round k, with where it differs from the leading
        group of the live agents' proposals of round k-1 when it passes (code tasks)."""
        fb = self.shown(author)
        if fb is None or not is_code(self.task) or fb.failing:
            return fb
        latest = {p.author_id: p for p in self.ledger.record.proposals if p.round < k}  # (in order: the last wins)
        others = [latest[a].feedback for a in self.ledger.live if a in latest]
        return fb.model_copy(update={"disagreement": disagreement(fb, others)})

    def aimed_at(self, author: str) -> bool:
        """Whether `author`'s proposal gets critiques and a revision: on a code task with feedback on,
        only one that fails; otherwise every one."""
        if not (self.cfg.feedback and is_code(self.task)):
            return True
        return needs_repair(self.ledger.current[author].feedback)

    def stops_early(self) -> str:
        """Why review stops here ('' when it goes on): every live proposal passes all its visible tests,
        or (code) the leading behaviour group passes them all and holds a majority."""
        fbs = [self.ledger.current[a].feedback for a in self.ledger.live]
        if not (self.cfg.early_stop and self.cfg.feedback and fbs):
            return ""
        if all(f is not None and f.all_passed for f in fbs):
            return "every live proposal passes all visible tests"
        if is_code(self.task) and (lead := consensus_stop(fbs)):
            return f"on consensus, {lead} of {len(fbs)} live proposals agree and pass all visible tests"
        return ""

    def may_stop_early(self, settled: list[str]) -> bool:
        """Whether the outputs of a round still in flight could end in an early stop: while every one
        in so far (`settled`: their authors) passes all its visible tests, or (code) while no more fail
        than a majority can spare."""
        if not (self.cfg.early_stop and self.cfg.feedback and self.task.visible_tests):
            return False
        fbs = [self.ledger.current[a].feedback for a in settled if a in self.ledger.live]
        if is_code(self.task):
            return may_still_stop(fbs, len(self.ledger.live))
        return all(f is not None and f.all_passed for f in fbs)

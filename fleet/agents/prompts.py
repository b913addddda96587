"""Prompts for the agent stages, the judge and the architect. The one place prompt text lives.

Layout: the system message is the agent's persona and lens; the user message starts with the task
block (`Task.render()`: description, requirements, constraints, visible tests and the rubric's
criteria *text*; hidden tests never) and ends with a short, direct instruction. Short instructions
matter on the small embedded models (measured; see README "Model quality"). A code task (one with
a `language`) asks for the whole solution in one fenced block, since that block is what runs.
"""

from __future__ import annotations

from typing import Any

from fleet.config.council import AgentSpec
from fleet.config.task import Task
from fleet.engine.protocol import ChatMessage
from fleet.messages import Candidate, ExecutionFeedback, ReceivedCritique

_GENERATE = (
    "Write your proposal. Explain your approach briefly, show the implementation (code in a "
    "```python block where code helps), then name the main risk and how you would mitigate it."
)
_GENERATE_CODE = (
    "Write your solution: the complete code in one ```python block (the solution only: no tests, asserts "
    "or example calls in it), then one sentence on the main risk. Keep it short."
)
# "A colleague proposed" and reviews-before-own-solution keep small models from confusing whose
# text is whose (they otherwise review "the review" or rewrite prose about writing style).
_CRITIQUE = (
    "A colleague ({author}) proposed this solution:\n\n{proposal}\n\n{feedback}"
    "Review the colleague's solution against the criteria above. List two weaknesses and one concrete "
    "improvement. Be brief."
)
_REVISE = (
    "Reviews of your solution:\n\n{critiques}\n\nYour solution:\n\n{proposal}\n\n{feedback}"
    "Write an improved solution that fixes the weaknesses above. Explain the approach, show the "
    "code, and name the main risk with its mitigation."
)
# Code first: asked for prose first, the coder model restates the reviews and runs out of tokens
# before its code block closes (measured on the demo task).
_REVISE_CODE = (
    "{critiques}Your solution:\n\n{proposal}\n\n{feedback}"
    "Reply with the improved solution, fixing every failure and weakness above: start directly with the "
    "complete code in one ```python block (the solution only: no tests, asserts or example calls), then "
    "at most one sentence on what you changed."
)
_JUDGE = (
    "{checks}The proposal:\n\n{proposal}\n\n"
    "Score the proposal on each criterion from 1 (fails it) to 10 (fully meets it), with a one-sentence "
    "reason. Code that fails tests is wrong: it scores at most 4 on correctness. Answer in JSON."
)
_SELECT = (
    "Your council's best candidates, with the results of their automatic checks:\n\n{candidates}\n\n"
    "Choose the candidate to ship: the one that best solves the task and meets the criteria, trusting "
    "test results over claims. Answer in JSON: winner and runner_up (candidate ids) and two sentences of "
    "reasons."
)


def _system(agent: AgentSpec) -> ChatMessage:
    return ChatMessage(role="system", content=f"{agent.persona} {agent.lens}".strip())


def _user(task: Task, instruction: str) -> ChatMessage:
    return ChatMessage(role="user", content=f"{task.render()}\n\n{instruction}")


def _feedback(feedback: ExecutionFeedback | None, whose: str) -> str:
    return f"Automatic checks of {whose} code:\n{feedback.render()}\n\n" if feedback is not None else ""


def generate_messages(agent: AgentSpec, task: Task) -> list[ChatMessage]:
    return [_system(agent), _user(task, _GENERATE_CODE if task.language else _GENERATE)]


def critique_messages(agent: AgentSpec, task: Task, author_id: str, proposal: str,
                      feedback: ExecutionFeedback | None = None) -> list[ChatMessage]:
    text = _CRITIQUE.format(author=author_id, proposal=proposal, feedback=_feedback(feedback, "its"))
    return [_system(agent), _user(task, text)]


def revise_messages(agent: AgentSpec, task: Task, proposal: str, critiques: list[ReceivedCritique],
                    feedback: ExecutionFeedback | None = None) -> list[ChatMessage]:
    reviews = "\n\n".join(f"{c.critic_id}: {c.content}" for c in critiques)
    if task.language:
        head = f"Reviews of your solution:\n\n{reviews}\n\n" if reviews else ""
        text = _REVISE_CODE.format(critiques=head, proposal=proposal, feedback=_feedback(feedback, "your"))
    else:
        text = _REVISE.format(critiques=reviews, proposal=proposal, feedback=_feedback(feedback, "your"))
    return [_system(agent), _user(task, text)]


def judge_messages(task: Task, proposal: str, checks: str = "") -> list[ChatMessage]:
    checks = f"Results of running the proposal's code against the task's tests:\n{checks}\n\n" if checks else ""
    return [
        ChatMessage(role="system", content="You are a strict, fair reviewer of engineering proposals."),
        _user(task, _JUDGE.format(proposal=proposal, checks=checks)),
    ]


def select_messages(agent: AgentSpec, task: Task, candidates: list[Candidate]) -> list[ChatMessage]:
    blocks = "\n\n".join(f"### Candidate {c.author_id}\nChecks:\n{c.summary}\n\n{c.content}" for c in candidates)
    return [_system(agent), _user(task, _SELECT.format(candidates=blocks))]


def select_schema(candidate_ids: list[str]) -> dict[str, Any]:
    """The architect's answer: ids constrained to the candidates, reasons bounded."""
    return {
        "type": "object",
        "properties": {"winner": {"type": "string", "enum": candidate_ids},
                       "runner_up": {"type": "string", "enum": candidate_ids},
                       "reasons": {"type": "string", "maxLength": 400}},
        "required": ["winner", "runner_up", "reasons"],
        "additionalProperties": False,
    }

"""Prompts for the three agent stages and the judge. The one place prompt text lives.

Layout: the system message is the agent's persona and lens; the user message starts with the task
block (`Task.render()`: description, requirements, constraints and the rubric's criteria *text*)
and ends with a short, direct instruction. Short instructions matter: the embedded 135M model
drifts off-topic under long multi-part instructions (measured; see README "Model quality").
"""

from __future__ import annotations

from fleet.config.council import AgentSpec
from fleet.config.task import Task
from fleet.engine.protocol import ChatMessage
from fleet.messages import ReceivedCritique

_GENERATE = (
    "Write your proposal. Explain your approach briefly, show the implementation (code in a "
    "```python block where code helps), then name the main risk and how you would mitigate it."
)
# "A colleague proposed" and reviews-before-own-solution keep the 135M model from confusing whose
# text is whose (it otherwise reviews "the review" or rewrites prose about writing style).
_CRITIQUE = (
    "A colleague ({author}) proposed this solution:\n\n{proposal}\n\n"
    "Review the colleague's solution against the criteria above. List two weaknesses and one concrete "
    "improvement."
)
_REVISE = (
    "Reviews of your solution:\n\n{critiques}\n\nYour solution:\n\n{proposal}\n\n"
    "Write an improved solution that fixes the weaknesses in the reviews. Explain the approach, show the "
    "code, and name the main risk with its mitigation."
)
_JUDGE = (
    "Here is a proposal for this task:\n\n{proposal}\n\n"
    "Rate it from 1 (useless) to 10 (excellent) against the criteria above. Answer in JSON with a "
    "score and a one-sentence reason."
)

# Bounded so a small model cannot ramble inside a string until max_tokens (ENGINE_NOTES).
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def _system(agent: AgentSpec) -> ChatMessage:
    return ChatMessage(role="system", content=f"{agent.persona} {agent.lens}".strip())


def _user(task: Task, instruction: str) -> ChatMessage:
    return ChatMessage(role="user", content=f"{task.render()}\n\n{instruction}")


def generate_messages(agent: AgentSpec, task: Task) -> list[ChatMessage]:
    return [_system(agent), _user(task, _GENERATE)]


def critique_messages(agent: AgentSpec, task: Task, author_id: str, proposal: str) -> list[ChatMessage]:
    return [_system(agent), _user(task, _CRITIQUE.format(author=author_id, proposal=proposal))]


def revise_messages(
    agent: AgentSpec, task: Task, proposal: str, critiques: list[ReceivedCritique]
) -> list[ChatMessage]:
    reviews = "\n\n".join(f"{c.critic_id}: {c.content}" for c in critiques)
    return [_system(agent), _user(task, _REVISE.format(proposal=proposal, critiques=reviews))]


def judge_messages(task: Task, proposal: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a strict, fair reviewer of engineering proposals."),
        _user(task, _JUDGE.format(proposal=proposal)),
    ]

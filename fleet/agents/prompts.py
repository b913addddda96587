"""Prompts for the agent stages, the judge and the architect. The one place prompt text lives.

Every prompt carries the task block (`Task.render()`: description, requirements, constraints,
visible tests and the rubric's criteria *text*; hidden tests never) and ends with a short, direct
instruction. Short instructions matter on the small embedded models (measured; see README "Model
quality"). A code task (one with a `language`) asks for the whole solution in one fenced block,
since that block is what runs.

Two layouts (`DeliberationConfig.prompt_layout`), same words, different order:
- `shared_prefix` (default): one system message for every agent and the judge, then the task
  block, then what differs (a colleague's proposal, the agent's persona and lens, the instruction).
  Every call of a deliberation starts with the same tokens, so vLLM's prefix cache computes them
  once. A revision continues the author's own draft conversation (its draft is the assistant turn),
  so the draft call's prompt and output are reused too.
- `persona_first`: the agent's persona and lens as the system message, each stage a fresh user
  message. The layout of fleet's first HumanEval table (bench/results/humaneval-cpu.md).
"""

from __future__ import annotations

from typing import Any

from fleet.config.council import AgentSpec
from fleet.config.deliberation import PromptLayout as Layout
from fleet.config.task import Task
from fleet.engine.protocol import ChatMessage
from fleet.messages import Candidate, ReceivedCritique
from fleet.schemas.record import ExecutionFeedback

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
# Templates are split where shared_prefix puts the persona: after the text other calls share.
_CRITIQUE_CONTEXT = "A colleague ({author}) proposed this solution:\n\n{proposal}\n\n{feedback}"
_CRITIQUE_ASK = (
    "Review the colleague's solution against the criteria above. List two weaknesses and one concrete "
    "improvement. Be brief."
)
_CRITIQUE_FIX_ASK = (
    "Explain in two or three sentences why the colleague's code gives that result, and the smallest change "
    "that fixes it. Nothing else."
)
_REVISE_ASK = (
    "Write an improved solution that fixes the weaknesses above. Explain the approach, show the "
    "code, and name the main risk with its mitigation."
)
_REVISE = "Reviews of your solution:\n\n{critiques}\n\nYour solution:\n\n{proposal}\n\n{feedback}" + _REVISE_ASK
# Code first: asked for prose first, the coder model restates the reviews and runs out of tokens
# before its code block closes (measured on the demo task).
_REVISE_CODE_ASK = (
    "Reply with the improved solution, fixing every failure and weakness above: start directly with the "
    "complete code in one ```python block (the solution only: no tests, asserts or example calls), then "
    "at most one sentence on what you changed."
)
_REVISE_CODE = "{critiques}Your solution:\n\n{proposal}\n\n{feedback}" + _REVISE_CODE_ASK
# Inputs only: an expected output written by a small model is often wrong, and candidates are compared
# with each other on these inputs, never against a model's answer.
_PROBE_ASK = (
    "Write up to 8 calls of the function the task asks for, with inputs that test it: typical cases, edge "
    "cases (empty, zero, one element, negative, duplicates) and inputs where a careless solution would go "
    "wrong. One call per line, like `name(arguments)`, literal arguments only, no expected outputs, no "
    "asserts, nothing else."
)
_JUDGE_CONTEXT = "{checks}The proposal:\n\n{proposal}\n\n"
_JUDGE_ASK = (
    "Score the proposal on each criterion from 1 (fails it) to 10 (fully meets it), with a one-sentence "
    "reason. Code that fails tests is wrong: it scores at most 4 on correctness. Answer in JSON."
)
_SELECT_CONTEXT = "Your council's best candidates, with the results of their automatic checks:\n\n{candidates}\n\n"
_SELECT_ASK = (
    "Choose the candidate to ship: the one that best solves the task and meets the criteria, trusting "
    "test results over claims. Answer in JSON: winner and runner_up (candidate ids) and two sentences of "
    "reasons."
)


# shared_prefix's one system message: the same for every agent, stage and the judge.
_SHARED_SYSTEM = ("You are an engineer on a council: colleagues answer the same task, review each other's "
                  "answers and improve their own.")
_JUDGE_PERSONA = "You are a strict, fair reviewer of engineering proposals."


def _system(agent: AgentSpec) -> ChatMessage:
    return ChatMessage(role="system", content=f"{agent.persona} {agent.lens}".strip())


def _user(task: Task, instruction: str) -> ChatMessage:
    return ChatMessage(role="user", content=f"{task.render()}\n\n{instruction}")


def _feedback(feedback: ExecutionFeedback | None, whose: str) -> str:
    return f"Automatic checks of {whose} code:\n{feedback.render()}\n\n" if feedback is not None else ""


def _persona(agent: AgentSpec) -> str:
    return f"{agent.persona} {agent.lens}".strip()


def _shared(task: Task, context: str, persona: str, instruction: str) -> list[ChatMessage]:
    """shared_prefix: system, then task, then `context` (text other calls may share, e.g. the
    proposal under review), then the caller's own persona and instruction."""
    return [ChatMessage(role="system", content=_SHARED_SYSTEM),
            ChatMessage(role="user", content=f"{task.render()}\n\n{context}Your perspective: {persona}\n\n"
                                             f"{instruction}")]


def generate_messages(agent: AgentSpec, task: Task, layout: Layout = "shared_prefix") -> list[ChatMessage]:
    instruction = _GENERATE_CODE if task.language else _GENERATE
    if layout == "shared_prefix":
        return _shared(task, "", _persona(agent), instruction)
    return [_system(agent), _user(task, instruction)]


def critique_messages(agent: AgentSpec, task: Task, author_id: str, proposal: str,
                      feedback: ExecutionFeedback | None = None,
                      layout: Layout = "shared_prefix") -> list[ChatMessage]:
    context = _CRITIQUE_CONTEXT.format(author=author_id, proposal=proposal, feedback=_feedback(feedback, "its"))
    if feedback is not None and (feedback.crash or feedback.counterexample or feedback.disagreement):
        # The concrete failure first, before the proposal and any prose: reviews of small models
        # otherwise drift to style and "edge cases" the task never asked for (measured on the demo).
        what = (f"Importing {author_id}'s code fails: {feedback.crash}" if feedback.crash
                else f"{author_id}'s code fails on this input:\n{feedback.counterexample}" if feedback.counterexample
                else f"{author_id}'s code answers this input unlike most candidates:\n{feedback.disagreement}")
        context = f"{what}\n\n{context}"
        return (_shared(task, context, _persona(agent), _CRITIQUE_FIX_ASK) if layout == "shared_prefix"
                else [_system(agent), _user(task, context + _CRITIQUE_FIX_ASK)])
    if layout == "shared_prefix":
        return _shared(task, context, _persona(agent), _CRITIQUE_ASK)
    return [_system(agent), _user(task, context + _CRITIQUE_ASK)]


def revise_messages(agent: AgentSpec, task: Task, proposal: str, critiques: list[ReceivedCritique],
                    feedback: ExecutionFeedback | None = None,
                    layout: Layout = "shared_prefix") -> list[ChatMessage]:
    reviews = "\n\n".join(f"{c.critic_id}: {c.content}" for c in critiques)
    if layout == "shared_prefix":
        # The author's own draft conversation, continued: its prompt and the proposal are a prefix
        # the engine has already computed (exactly so for round 1's revision of the draft).
        head = f"Reviews of your solution:\n\n{reviews}\n\n" if reviews else ""
        ask = _REVISE_CODE_ASK if task.language else _REVISE_ASK
        return [*generate_messages(agent, task, layout), ChatMessage(role="assistant", content=proposal),
                ChatMessage(role="user", content=f"{head}{_feedback(feedback, 'your')}{ask}")]
    if task.language:
        head = f"Reviews of your solution:\n\n{reviews}\n\n" if reviews else ""
        text = _REVISE_CODE.format(critiques=head, proposal=proposal, feedback=_feedback(feedback, "your"))
    else:
        text = _REVISE.format(critiques=reviews, proposal=proposal, feedback=_feedback(feedback, "your"))
    return [_system(agent), _user(task, text)]


def probe_messages(agent: AgentSpec, task: Task, layout: Layout = "shared_prefix") -> list[ChatMessage]:
    if layout == "shared_prefix":
        return _shared(task, "", _persona(agent), _PROBE_ASK)
    return [_system(agent), _user(task, _PROBE_ASK)]


def judge_messages(task: Task, proposal: str, checks: str = "", layout: Layout = "shared_prefix") -> list[ChatMessage]:
    checks = f"Results of running the proposal's code against the task's tests:\n{checks}\n\n" if checks else ""
    context = _JUDGE_CONTEXT.format(proposal=proposal, checks=checks)
    if layout == "shared_prefix":
        return _shared(task, context, _JUDGE_PERSONA, _JUDGE_ASK)
    return [ChatMessage(role="system", content=_JUDGE_PERSONA), _user(task, context + _JUDGE_ASK)]


def select_messages(agent: AgentSpec, task: Task, candidates: list[Candidate],
                    layout: Layout = "shared_prefix") -> list[ChatMessage]:
    blocks = "\n\n".join(f"### Candidate {c.author_id}\nChecks:\n{c.summary}\n\n{c.content}" for c in candidates)
    context = _SELECT_CONTEXT.format(candidates=blocks)
    if layout == "shared_prefix":
        return _shared(task, context, _persona(agent), _SELECT_ASK)
    return [_system(agent), _user(task, context + _SELECT_ASK)]


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

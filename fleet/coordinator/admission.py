"""The door: what a deliberation must pass before it is accepted, and the slots it then waits for.

`Admission` refuses, before anything is stored: a quorum larger than the council that would run or a
prompt that can outgrow the engine's context window (`InvalidRequestError`), a full queue
(`OverloadedError`: `max_queued` waiting). Accepted runs wait for one of `max_concurrent` slots.

The prompt-length check: will every prompt this deliberation can send fit the engine's context
window? Checked before a request is accepted, so a task too long for the model is a 422 with numbers,
not three failed agents minutes later.

Tokens are counted with the engine's own tokenizer (`tokenizer.json` beside its weights). The fixed
part of each prompt (persona, task, instructions) is counted exactly, as the agents would render it;
what is only known later is bounded from above: a proposal by its author's `max_tokens`, a critique by
`critique_max_tokens`, execution feedback by `FEEDBACK_TOKENS`, the chat template by
`TEMPLATE_TOKENS` per prompt. A prompt that fits these bounds always fits the engine. Not checked:
the architect's selection (k candidates side by side); when its prompt does not fit, its call fails
and the top total wins, as the record says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from fleet.agents import prompts
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationRequest
from fleet.config.engine import EngineSpec
from fleet.config.fleet import FleetConfig
from fleet.coordinator.topology import critics_per_author
from fleet.engine.protocol import ChatMessage
from fleet.errors import InvalidRequestError, OverloadedError
from fleet.messages import ReceivedCritique

FEEDBACK_TOKENS = 600  # ExecutionFeedback.render(): counts, the first failure (cut), up to 8 lint findings
TEMPLATE_TOKENS = 32  # role markers and separators the chat template adds around the messages


class TokenCounter(Protocol):
    def __call__(self, text: str) -> int: ...


class Admission:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.slots = asyncio.Semaphore(config.max_concurrent)  # one per deliberation (or sample) running
        self.prompt_check: str | None = None  # how prompt lengths are checked (None: not yet known)
        self._tokens: TokenCounter | None = None
        self._tokenizer_lock = asyncio.Lock()

    async def token_counter(self) -> TokenCounter | None:
        """The engine's tokenizer, loaded once (in a thread); None: prompt lengths are not checked."""
        async with self._tokenizer_lock:
            if self.prompt_check is None:
                try:
                    self._tokens = await asyncio.to_thread(engine_tokenizer, self.config.engine)
                    self.prompt_check = ("on: the engine's tokenizer" if self._tokens else
                                         "off: no tokenizer for this engine on the coordinator's node")
                except Exception as e:  # reported by status(); requests are still served
                    self.prompt_check = f"off: loading the tokenizer failed: {type(e).__name__}: {e}"
        return self._tokens

    def check_request(self, request: DeliberationRequest, council: CouncilSpec, count: TokenCounter | None) -> None:
        """`InvalidRequestError` for a quorum the council cannot meet or a prompt too long for the engine."""
        quorum, n = request.config.quorum, len(council.agents)
        if quorum is not None and quorum > n:
            raise InvalidRequestError(f"config.quorum: {quorum} is larger than the council that would run "
                                      f"({council.role}: {n} agents)")
        if count is not None:
            check_prompt_budget(request, council, count, self.config.engine.max_model_len)

    def check_queue(self, queued: int) -> None:
        """`OverloadedError` when `queued` deliberations already wait for a slot (`max_queued`)."""
        if queued >= self.config.max_queued:
            raise OverloadedError(f"{queued} deliberations are waiting for a slot (max_queued="
                                  f"{self.config.max_queued}, {self.config.max_concurrent} run at once): retry "
                                  f"in {OverloadedError.retry_after_s}s")


def engine_tokenizer(spec: EngineSpec) -> TokenCounter | None:
    """The engine's tokenizer as a counter, from the weights folder on this node; None when there is
    none here (fake engines, a hub model not in this node's cache). Blocking: call it in a thread."""
    if spec.kind != "vllm":
        return None
    folder: Path | None = None
    if spec.model_source is not None and Path(spec.model_source).expanduser().is_dir():
        folder = Path(spec.model_source).expanduser()
    elif spec.model_source is None:
        from fleet.engine.model_prep import prepared_folder

        folder = prepared_folder(spec.model_id, spec.weights_dtype)
    path = folder / "tokenizer.json" if folder is not None else None
    if path is None or not path.is_file():
        if spec.model_source is None or folder is not None:
            return None
        try:  # a hub id: its tokenizer in this node's cache, if the engine was loaded here
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(spec.model_source, "tokenizer.json")
        except Exception:
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _tokens(count: TokenCounter, messages: list[ChatMessage]) -> int:
    return sum(count(m.content) for m in messages) + TEMPLATE_TOKENS


def check_prompt_budget(request: DeliberationRequest, council: CouncilSpec, count: TokenCounter,
                        max_model_len: int) -> None:
    """Raise `InvalidRequestError` naming the first stage whose prompt plus completion can exceed
    `max_model_len` tokens (the engine's context window)."""
    cfg, task, layout = request.config, request.task, request.config.prompt_layout
    override = request.sampling.max_tokens if request.sampling and request.sampling.max_tokens else None
    n = len(council.agents)
    critics = 0 if cfg.rounds == 0 else critics_per_author(n, cfg.topology)
    feedback = FEEDBACK_TOKENS if task.language and cfg.feedback else 0
    for agent in council.agents:
        out = override or agent.sampling.max_tokens
        critique_out = cfg.critique_max_tokens or out
        # (stage, fixed prompt tokens, bounded additions, completion budget)
        stages = [("generate", _tokens(count, prompts.generate_messages(agent, task, layout)), 0, out)]
        if critics:
            critique = prompts.critique_messages(agent, task, agent.agent_id, "", layout=layout)
            stages.append(("critique", _tokens(count, critique), out + feedback, critique_out))
            empty = [ReceivedCritique(critic_id=agent.agent_id, content="") for _ in range(critics)]
            stages.append(("revise", _tokens(count, prompts.revise_messages(agent, task, "", empty, layout=layout)),
                           out + critics * critique_out + feedback, out))
        if cfg.judge:
            stages.append(("judge", _tokens(count, prompts.judge_messages(task, "", layout=layout)), out + feedback,
                           cfg.judge_max_tokens))
        for stage, fixed, bounded, completion in stages:
            need = fixed + bounded + completion
            if need > max_model_len:
                hint = ("shorten the task (its description, requirements, rubric or visible tests)"
                        + (", lower max_tokens" if bounded or stage == "generate" else "")
                        + (", critique_max_tokens, or use rounds=0" if stage in ("critique", "revise") else ""))
                raise InvalidRequestError(
                    f"task: too long for the engine's context window: a {stage} prompt of {agent.agent_id} is "
                    f"{fixed} tokens as written" + (f", up to {fixed + bounded} with the proposal, critiques and "
                                                    f"test results it can carry" if bounded else "")
                    + f", plus {completion} to answer = {need} > max_model_len {max_model_len}: {hint}")

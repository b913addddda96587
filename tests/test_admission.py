"""The door's prompt-length check, with a real engine tokenizer (the embedded SmolLM2's, which setup
prepares): exact counts of what agents would send, upper bounds for what they add later."""

from __future__ import annotations

import pytest

from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest, SamplingOverride
from fleet.config.engine import EngineSpec, FakeEngineConfig
from fleet.config.task import Task, TestSuite
from fleet.coordinator.admission import check_prompt_budget, engine_tokenizer
from fleet.engine.model_prep import prepare_model
from fleet.errors import InvalidRequestError

pytestmark = pytest.mark.unit

COUNCIL = CouncilSpec.default("DEV", 3)  # max_tokens 256 each; critiques 192 by default


@pytest.fixture(scope="module")
def count():
    prepare_model("smollm2")  # converted once by setup; a no-op then
    counter = engine_tokenizer(EngineSpec(model_id="smollm2"))
    assert counter is not None
    return counter


def request(task: Task | None = None, **config) -> DeliberationRequest:
    return DeliberationRequest(task=task or Task(description="Add rate limiting to the login endpoint"), role="DEV",
                               config=DeliberationConfig(**config))


def test_the_engine_tokenizer_counts_tokens_not_characters(count):
    assert count("") == 0
    assert 1 <= count("def add(a, b): return a + b") < len("def add(a, b): return a + b")
    assert count("word " * 1000) >= 900


def test_engines_without_a_local_tokenizer_are_not_checked(tmp_path):
    assert engine_tokenizer(EngineSpec(kind="inproc_fake", fake=FakeEngineConfig())) is None
    assert engine_tokenizer(EngineSpec(model_id="big", model_source=str(tmp_path))) is None  # a folder, no tokenizer
    assert engine_tokenizer(EngineSpec(model_id="big", model_source="org/not-in-this-cache")) is None


def test_an_ordinary_task_fits(count):
    check_prompt_budget(request(rounds=2), COUNCIL, count, 4096)


def test_a_task_too_long_to_draft_is_refused_with_numbers(count):
    tests = TestSuite(kind="pytest", visible=True, source="def test_x():\n    assert 1 == 1\n" * 600)
    task = Task(description="Make the tests pass", language="python", tests=[tests])
    with pytest.raises(InvalidRequestError, match=r"a generate prompt of agent-dev-001 is (\d+) tokens") as err:
        check_prompt_budget(request(task, rounds=0), COUNCIL, count, 4096)
    assert "> max_model_len 4096" in str(err.value) and "shorten the task" in str(err.value)


def test_a_task_that_only_outgrows_the_window_in_revision_names_revise_and_fits_with_rounds_0(count):
    with pytest.raises(InvalidRequestError, match="a revise prompt of agent-dev-001") as err:
        check_prompt_budget(request(rounds=1), COUNCIL, count, 1000)  # 2 critiques of 192 + 2 x 256 + the task
    assert "rounds=0" in str(err.value) and "critique_max_tokens" in str(err.value)
    check_prompt_budget(request(rounds=0), COUNCIL, count, 1000)
    check_prompt_budget(request(rounds=1, topology="ring"), COUNCIL, count, 1000)  # one critique each


def test_the_request_s_max_tokens_counts(count):
    check_prompt_budget(request(rounds=0, judge=False), COUNCIL, count, 600)
    big = DeliberationRequest(task=Task(description="Add rate limiting"), role="DEV",
                              config=DeliberationConfig(rounds=0, judge=False),
                              sampling=SamplingOverride(max_tokens=500))
    with pytest.raises(InvalidRequestError, match=r"plus 500 to answer"):
        check_prompt_budget(big, COUNCIL, count, 600)

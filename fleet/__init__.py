"""fleet: councils of LLM agents deliberating on software-engineering tasks, on Ray Serve + vLLM.

What a driver script needs:

    from fleet import Fleet, Task
    async with await Fleet.start() as fleet:
        record = await fleet.deliberate(Task(description="..."), role="DEV", num_agents=3, rounds=1)
"""

from fleet.config.council import AgentSpec, CouncilSpec, NewAgent, NewCouncil, Sampling
from fleet.config.deliberation import DeliberationConfig, DeliberationRequest, SamplingOverride, Timeouts
from fleet.config.engine import EngineSpec, FakeEngineConfig
from fleet.config.fleet import FleetConfig, RayOptions
from fleet.config.task import Rubric, Task
from fleet.driver import Fleet
from fleet.errors import (
    AgentCallError,
    ConflictError,
    DeliberationFailedError,
    EngineError,
    EngineNotReadyError,
    EngineTimeoutError,
    FleetError,
    InvalidRequestError,
    NotFoundError,
    UserError,
)
from fleet.schemas.api import DeliberationEvent, DeliberationInput, DeliberationState, PlanApproved, PlanDispatch
from fleet.schemas.record import DeliberationRecord

__all__ = [
    "AgentCallError",
    "AgentSpec",
    "ConflictError",
    "CouncilSpec",
    "DeliberationConfig",
    "DeliberationEvent",
    "DeliberationFailedError",
    "DeliberationInput",
    "DeliberationRecord",
    "DeliberationRequest",
    "DeliberationState",
    "EngineError",
    "EngineNotReadyError",
    "EngineSpec",
    "EngineTimeoutError",
    "FakeEngineConfig",
    "Fleet",
    "FleetConfig",
    "FleetError",
    "InvalidRequestError",
    "NewAgent",
    "NewCouncil",
    "NotFoundError",
    "PlanApproved",
    "PlanDispatch",
    "RayOptions",
    "Rubric",
    "Sampling",
    "SamplingOverride",
    "Task",
    "Timeouts",
    "UserError",
]

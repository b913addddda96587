"""The strict base model every fleet config and message derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are an error, values are validated on assignment, instances are hashable-free
    plain data that pickles across Ray actors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

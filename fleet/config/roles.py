"""Roles and their personas.

A role's persona is what every agent of that role is asked to be; a *lens* is what makes one agent
of a council differ from its peers (together with its own seed and temperature). Custom roles bring
their own persona. What this file leaves out: per-agent prompts (see `fleet/agents/prompts.py`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

BUILTIN_ROLES = ("DEV", "QA", "ARCHITECT", "DEVOPS", "DATA")

ROLE_PERSONAS: dict[str, str] = {
    "DEV": (
        "You are a senior software developer. You write clean, maintainable, well-tested code, "
        "and you show the code."
    ),
    "QA": (
        "You are a senior QA engineer. You think in test strategies, edge cases and the bugs that are "
        "likely to hide in a change, and you write the tests."
    ),
    "ARCHITECT": (
        "You are a software architect. You think in system design, components and their interfaces, "
        "scalability, trade-offs and proven patterns."
    ),
    "DEVOPS": (
        "You are a DevOps engineer. You think in deployment, CI/CD, infrastructure as code, "
        "monitoring and reliability."
    ),
    "DATA": (
        "You are a data engineer. You think in data pipelines, ETL, database schemas, migrations "
        "and data quality."
    ),
}

# Distinct viewpoints handed out round-robin to a council's agents, so that proposals differ in
# substance and not only through sampling noise.
LENSES: tuple[str, ...] = (
    "You favour the simplest design that fully works, and you say what you leave out.",
    "You are defensive: you look first for failure modes, security holes and bad input.",
    "You care about performance and operability under real production load.",
    "You optimise for readability and for the next engineer who maintains this.",
    "You prefer proven, boring technology and incremental rollout.",
)

_ROLE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


def _check_role(value: str) -> str:
    value = value.strip().upper()
    if not _ROLE_RE.match(value):
        raise ValueError(
            f"role {value!r} must be 1-32 characters of A-Z, 0-9 or _, starting with a letter"
        )
    return value


RoleName = Annotated[str, AfterValidator(_check_role)]
"""A role name, normalised to upper case: 'dev' -> 'DEV'."""


def is_builtin(role: str) -> bool:
    return role in ROLE_PERSONAS

"""The whole fleet's configuration: engine, Ray connection, councils. Parsed once at the edge.

The same model is the `args:` of the Serve application builder, so `serve_configs/*.yaml` and the
CLI's `--config` read one schema.
"""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, model_validator

from fleet.config._base import StrictModel
from fleet.config.bus import NatsConfig
from fleet.config.council import CouncilSpec
from fleet.config.deliberation import DeliberationConfig
from fleet.config.engine import EngineSpec
from fleet.config.roles import BUILTIN_ROLES


class RayOptions(StrictModel):
    address: str | None = Field(default=None, description="None: RAY_ADDRESS if set, else start a local Ray")
    num_cpus: int | None = Field(default=None, ge=1, description="logical CPUs of a local Ray (None: all)")
    namespace: str = "fleet"
    log_to_driver: bool = Field(default=False, description="stream actor logs (vLLM's are long) to the driver")


class FleetConfig(StrictModel):
    engine: EngineSpec = Field(default_factory=EngineSpec)
    ray: RayOptions = Field(default_factory=RayOptions)
    deliberation: DeliberationConfig = Field(default_factory=DeliberationConfig,
                                             description="defaults for every deliberation")
    council_size: int = Field(default=3, ge=1, le=32, description="agents per default council")
    max_tokens: int = Field(default=320, ge=16, le=8192, description="default completion budget per agent call")
    councils: list[CouncilSpec] = Field(default_factory=list,
                                        description="councils at start-up; empty: one per built-in role")
    coordinator_name: str = Field(default="fleet-coordinator", description="named actor, for connect()")
    warm_roles: list[str] = Field(
        default_factory=list, description="councils whose agent actors (and their architect) the coordinator starts "
        "as it starts, so no deliberation waits for them; a council created later starts its agents at once")
    ingress_replicas: int = Field(default=1, ge=1, le=64, description="HTTP ingress replicas (serve_app)")
    max_concurrent: int = Field(default=4, ge=1, le=256, description="deliberations running at once; more queue")
    max_queued: int = Field(default=64, ge=0, le=100_000,
                            description="accepted deliberations waiting for a slot; beyond it: 503 + Retry-After")
    ingress_max_ongoing_requests: int = Field(
        default=256, ge=1, le=100_000, description="requests one ingress replica holds at once (SSE streams "
                                                   "stay open for a deliberation's length)")
    api_token: SecretStr | None = Field(
        default=None, description="bearer token every HTTP route but /v1/health requires; None: the "
                                  "FLEET_API_TOKEN environment variable, else no authentication")
    allow_unauthenticated: bool = Field(
        default=False, description="serve a non-loopback address without api_token (only behind a proxy that "
                                   "authenticates); otherwise the ingress refuses to start")
    state_path: str | None = Field(
        default=None, description="SQLite file keeping councils, deliberations and events across restarts "
                                  "(the coordinator then stays on the head node, beside its file); None: "
                                  "memory only, unless state_url is set")
    state_url: SecretStr | None = Field(
        default=None, description="database URL for the same state instead of state_path: "
                                  "postgresql://user:password@host:port/db (clusters: the state does not live "
                                  "on the coordinator's node) or sqlite:///path")
    max_tracked: int = Field(default=1000, ge=10, description="finished deliberations kept for get/list")
    nats: NatsConfig | None = Field(
        default=None, description="consume plan-approved events from NATS JetStream and publish results there "
                                  "(fleet/bus/); None: off")

    @model_validator(mode="after")
    def _unique_roles(self) -> FleetConfig:
        roles = [c.role for c in self.councils]
        if len(set(roles)) != len(roles):
            raise ValueError(f"one council per role, got {roles}")
        return self

    @model_validator(mode="after")
    def _one_state_location(self) -> FleetConfig:
        if self.state_url is not None:
            url = self.state_url.get_secret_value()
            if self.state_path is not None:
                raise ValueError("give state_path (a SQLite file) or state_url (a database URL), not both")
            if not url.startswith(("postgresql://", "postgresql+psycopg://", "sqlite:///")):
                raise ValueError("state_url: expected postgresql://user:password@host:port/db or sqlite:///path")
        return self

    def state_location(self) -> str | None:
        """Where the coordinator keeps its state: a database URL or a SQLite path (None: memory only)."""
        return self.state_url.get_secret_value() if self.state_url is not None else self.state_path

    def state_on_node(self) -> bool:
        """Whether the state is a file on the coordinator's own node (SQLite), not a database server."""
        location = self.state_location()
        return location is not None and not location.startswith("postgresql")

    def same_fleet(self, other: FleetConfig) -> bool:
        """Whether two configs describe the same fleet; how one connects to Ray, the HTTP edge's
        token and the bus edge's settings do not count (the coordinator reads none of them)."""
        edges = {"ray", "api_token", "nats"}
        return self.model_dump(exclude=edges) == other.model_dump(exclude=edges)

    def resolved_token(self) -> str | None:
        """The HTTP bearer token: the config's, else FLEET_API_TOKEN, else None (no authentication)."""
        if self.api_token is not None:
            return self.api_token.get_secret_value() or None
        return os.environ.get("FLEET_API_TOKEN") or None

    def startup_councils(self) -> list[CouncilSpec]:
        return self.councils or [
            CouncilSpec.default(r, self.council_size, max_tokens=self.max_tokens) for r in BUILTIN_ROLES
        ]


def load_fleet_config(path: str) -> FleetConfig:
    """A `FleetConfig` from YAML: either the model itself, or a Serve config whose first application
    has `import_path: fleet...:build_app` and the model as `args`."""
    import yaml  # type: ignore[import-untyped]  # PyYAML has no inline types (types-PyYAML is not installed)

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if "applications" in data:
        apps = [a for a in data["applications"] if str(a.get("import_path", "")).startswith("fleet.")]
        if not apps:
            raise ValueError(f"{path}: no application with a fleet import_path")
        data = apps[0].get("args") or {}
    return FleetConfig.model_validate(data)

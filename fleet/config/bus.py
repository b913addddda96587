"""The `nats` block of a FleetConfig: fleet as a consumer of `planning.plan.approved` on NATS JetStream.

Off unless a config has the block (`serve_configs/cpu_nats.yaml`). What the block leaves out: the
wire types (`fleet/bus/envelope.py`) and TLS settings (loopback and trusted networks only for now).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, model_validator

from fleet.config._base import StrictModel


class NatsConfig(StrictModel):
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1,
                               description="NATS server URLs; the client reconnects to any of them, forever")
    plan_stream: str = Field(default="PLANNING", min_length=1, description="the JetStream stream the planning "
                             "service publishes plan-approved events to")
    plan_subject: str = Field(default="planning.plan.approved", min_length=1,
                              description="the subject fleet consumes (its consumer's filter)")
    durable: str = Field(default="fleet-dispatch", min_length=1, pattern=r"^[A-Za-z0-9_-]+$",
                         description="durable pull consumer name; the result watcher uses '<durable>-watch'")
    result_stream: str = Field(default="ORCHESTRATION", min_length=1,
                               description="the stream fleet publishes its results to (subjects '<result_prefix>.>')")
    result_prefix: str = Field(default="orchestration", min_length=1,
                               description="subjects: <prefix>.deliberation.{started,completed,failed}, "
                                           "<prefix>.dispatch.{accepted,rejected}")
    create_streams: bool = Field(default=True, description="create either stream if it is missing (file storage); "
                                 "false: they must exist (owned by the planning side)")
    max_ack_pending: int = Field(default=64, ge=1, le=100_000,
                                 description="plan events delivered and not yet acked, at most")
    ack_wait_s: float = Field(default=30.0, gt=0, le=3600, description="an unacked delivery is redelivered after "
                              "this long (a consumer that died before acking)")
    nak_delay_s: float = Field(default=10.0, ge=0, le=3600,
                               description="redelivery delay of an event fleet's full queue refused")
    fetch_batch: int = Field(default=8, ge=1, le=256, description="messages asked for per pull")
    dedupe_window_s: float = Field(default=86_400.0, gt=0, description="the result stream's duplicate window: a "
                                   "result re-published within it (same Nats-Msg-Id) is stored once")
    public_url: str = Field(default="http://127.0.0.1:8000", description="base of the deliberation URLs in "
                            "result events (the HTTP API's address as the listeners reach it)")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    user: str | None = Field(default=None, description="user name (with password)")
    password: SecretStr | None = Field(default=None, description="password for user; redacted in /v1/status")
    token: SecretStr | None = Field(default=None, description="auth token; redacted in /v1/status")
    creds_file: str | None = Field(default=None, description="path of a .creds file (JWT + nkey seed) on the "
                                   "consumer's node")

    @model_validator(mode="after")
    def _one_auth(self) -> NatsConfig:
        if (self.user is None) != (self.password is None):
            raise ValueError("nats: give user and password together")
        if self.token is not None and self.user is not None:
            raise ValueError("nats: give a token or user/password, not both")
        return self

    def subject(self, kind: str) -> str:
        """'deliberation.completed' -> 'orchestration.deliberation.completed'."""
        return f"{self.result_prefix}.{kind}"

    def connect_options(self) -> dict[str, Any]:
        """nats.connect() keyword arguments, secrets revealed (only ever passed to the client)."""
        options: dict[str, Any] = {"servers": self.servers, "connect_timeout": self.connect_timeout_s,
                                   "max_reconnect_attempts": -1, "reconnect_time_wait": 0.5,
                                   "allow_reconnect": True}
        if self.user is not None and self.password is not None:
            options.update(user=self.user, password=self.password.get_secret_value())
        if self.token is not None:
            options["token"] = self.token.get_secret_value()
        if self.creds_file is not None:
            options["user_credentials"] = self.creds_file
        return options

    def reveal(self) -> dict[str, Any]:
        """The block as JSON with its secrets in clear: what a Serve deployment's args must carry
        (a plain JSON dump masks SecretStr as '**********')."""
        data = self.model_dump(mode="json")
        for name in ("password", "token"):
            secret = getattr(self, name)
            data[name] = secret.get_secret_value() if secret is not None else None
        return data

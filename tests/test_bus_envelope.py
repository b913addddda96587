"""The bus's wire types and config without a server: what is refused and why, what stays secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from fleet.bus.envelope import DeliberationCompleted, DeliberationFailed, DispatchAccepted, outcome, parse_plan
from fleet.bus.service import BusService
from fleet.config.bus import NatsConfig
from fleet.config.fleet import FleetConfig
from fleet.coordinator.deliberation import plan_deliberation_id
from fleet.schemas.api import DeliberationState, PlanApproved, PlanDispatch, RoleDispatch

pytestmark = pytest.mark.unit

GOOD = {"version": 1, "event_id": "evt-1", "plan_id": "plan-1", "story_id": "story-1", "roles": ["DEV", "QA"],
        "task": {"task_id": "task-1", "description": "Add password reset"},
        "approved_at": "2026-11-30T21:00:00+00:00"}


def encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def test_a_good_envelope_is_the_http_routes_event_plus_version_and_times():
    event = parse_plan(encode(GOOD))
    assert not isinstance(event, str)
    assert event.plan() == PlanApproved.model_validate({k: v for k, v in GOOD.items()
                                                        if k not in ("version", "approved_at")})
    assert event.approved_at == datetime(2026, 11, 30, 21, tzinfo=UTC)


@pytest.mark.parametrize(("data", "says"), [
    (b"{not json", "not JSON: Expecting property name"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object: list"),
    (encode({**GOOD, "version": 2}), "version: Value error, unknown envelope version 2"),
    (encode({k: v for k, v in GOOD.items() if k != "version"}), "version: Field required"),
    (encode({**GOOD, "approved_at": "2026-11-30T21:00:00"}), "approved_at: Input should have timezone info"),
    (encode({**GOOD, "roles": ["DEV", "DEV"]}), "roles must be unique"),
    (encode({**GOOD, "roles": []}), "roles: List should have at least 1 item"),
    (encode({**GOOD, "tasks": []}), "tasks: Extra inputs are not permitted"),
    (encode({**GOOD, "task": {}}), "task.description: Field required"),
])
def test_refused_envelopes_say_why(data, says):
    reason = parse_plan(data)
    assert isinstance(reason, str) and says in reason, reason


def test_each_role_of_an_event_has_one_deliberation_id_whatever_the_repeat():
    a = plan_deliberation_id("evt-1", "DEV")
    assert a == plan_deliberation_id("evt-1", "DEV") and a.startswith("delib-") and len(a) == len("delib-") + 16
    assert len({a, plan_deliberation_id("evt-1", "QA"), plan_deliberation_id("evt-2", "DEV")}) == 3


def test_a_dispatch_names_the_roles_the_full_queue_refused():
    answer = PlanDispatch(event_id="e", plan_id="p", story_id="s", total=3, started=1, failed=2, results=[
        RoleDispatch(role="DEV", deliberation_id="delib-1"),
        RoleDispatch(role="QA", error_type="OverloadedError", error="64 deliberations are waiting"),
        RoleDispatch(role="NOPE", error_type="NotFoundError", error="no council")])
    assert answer.refused() == ["QA"]  # NOPE is final: a repeat would not help


def test_nats_credentials_are_secrets_redacted_in_the_status_and_revealed_only_to_the_client():
    config = NatsConfig(user="fleet", password="pw-123")
    assert config.connect_options()["password"] == "pw-123"
    assert "pw-123" not in json.dumps(config.model_dump(mode="json")) and "pw-123" not in repr(config)
    assert NatsConfig.model_validate(config.reveal()) == config  # what a Serve deployment's args carry
    with pytest.raises(ValidationError, match="user and password together"):
        NatsConfig(user="fleet")
    with pytest.raises(ValidationError, match="token or user/password"):
        NatsConfig(token="t", user="fleet", password="pw")
    with pytest.raises(ValidationError, match="Extra inputs"):
        NatsConfig(sever=["nats://x"])


async def test_the_status_of_a_service_not_yet_connected_shows_its_config_redacted():
    service = BusService(NatsConfig(token="tok-456"), fleet=None)
    state = await service.state()
    assert (state["running"], state["connected"], state["pending"], state["acked"]) == (False, False, None, 0)
    assert state["config"]["token"] == "**********" and "tok-456" not in json.dumps(state)


def test_the_bus_is_off_by_default_and_its_settings_are_not_the_coordinators():
    assert FleetConfig().nats is None
    assert FleetConfig().same_fleet(FleetConfig(nats=NatsConfig()))


def _state(status: str, **kw) -> DeliberationState:
    return DeliberationState(deliberation_id="delib-1", role="DEV", task_id="t", status=status,
                             created_at=datetime.now(UTC), **kw)


def test_a_finished_deliberation_becomes_completed_or_failed():
    ref = DispatchAccepted(event_id="e", plan_id="p", story_id="s", role="DEV", deliberation_id="delib-1")
    failed = outcome(ref, _state("failed", error="quorum lost after generate"), "http://x/v1/deliberations/delib-1")
    assert isinstance(failed, DeliberationFailed)
    assert (failed.error_type, failed.error, failed.url) == ("DeliberationFailedError", "quorum lost after generate",
                                                             "http://x/v1/deliberations/delib-1")
    cancelled = outcome(ref, _state("cancelled", error="cancelled"), "u")
    assert isinstance(cancelled, DeliberationFailed) and cancelled.error_type == "Cancelled"
    assert not isinstance(cancelled, DeliberationCompleted)

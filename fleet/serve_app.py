"""The Serve application builder: `import_path: fleet.serve_app:build_app`, `args:` = `FleetConfig`.

One application: the engine deployment (vLLM via `ray.serve.llm`, or the fake) and the HTTP ingress
(`fleet.ingress.app.FleetIngress`: fleet's API plus ray.serve.llm's OpenAI routes) bound to it; with
a `nats` block, also the NATS JetStream consumer (`fleet.bus.deployment.FleetBus`), whose state the
ingress shows in /v1/status.
`serve run serve_configs/cpu.yaml` brings the whole fleet up; drivers, the CLI and jobs attach to
the same engine and coordinator. The args are parsed here, once, into the driver's `FleetConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve.llm.ingress import make_fastapi_ingress

from fleet.bootstrap import resolve_model_source
from fleet.config.fleet import FleetConfig
from fleet.engine.deploy import build_engine_app, model_card
from fleet.errors import InvalidRequestError
from fleet.ingress.app import FLEET_ENDPOINTS, FleetIngress, make_app

if TYPE_CHECKING:
    from ray.serve.deployment import Application


def build_app(args: dict[str, Any]) -> Application:
    config = FleetConfig.model_validate(args)
    if config.engine.kind == "inproc_fake":
        raise InvalidRequestError("engine kind 'inproc_fake' has nothing to deploy; use 'vllm' or 'fake'")
    source = resolve_model_source(config.engine)
    engine = build_engine_app(config.engine, source)
    token = config.resolved_token()
    ingress = make_fastapi_ingress(FleetIngress, endpoint_map=FLEET_ENDPOINTS, app=make_app(api_token=token))
    args = config.model_dump(mode="json", exclude={"api_token", "nats"})  # the token stays in the middleware ...
    if config.state_url is not None:  # ... the database URL goes to the coordinator (JSON would mask it)
        args["state_url"] = config.state_url.get_secret_value()
    bus = None
    if config.nats is not None:  # the NATS consumer: a deployment of its own, its secrets only there
        from fleet.bus.deployment import FleetBus

        bus = serve.deployment()(FleetBus).options(
            name="FleetBus", num_replicas=1, ray_actor_options={"num_cpus": 0}, health_check_period_s=5,
        ).bind(fleet_config={**args, "nats": config.nats.reveal()})
    # num_cpus=0: on a 2-CPU node the engine's placement group holds the CPUs; an ingress that asks
    # for one is never scheduled and the app hangs (seen on the 2-core machines).
    # serve.deployment()(cls), not serve.deployment(cls): the same Deployment, in the form Ray's types describe.
    return serve.deployment()(ingress).options(
        name="FleetIngress", num_replicas=config.ingress_replicas, ray_actor_options={"num_cpus": 0},
        # Serve's default (5) let six open SSE streams starve /v1/health.
        max_ongoing_requests=config.ingress_max_ongoing_requests,
    ).bind(
        llm_deployments={config.engine.model_id: engine},
        model_cards={config.engine.model_id: model_card(config.engine, source)},
        fleet_config=args, authenticated=token is not None, bus=bus,
    )

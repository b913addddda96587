"""fleet's Prometheus metrics, through Ray's metrics API (exported by each node's metrics agent with the
`ray_` prefix, beside ray.serve.llm's engine metrics when `engine.engine_metrics` is on; scrape the port
`ray start --metrics-export-port` names, or read them in Ray's dashboard and Grafana).

    fleet_deliberations_started{role}            counter
    fleet_deliberations_finished{role,status}    counter: completed, degraded, failed, cancelled
    fleet_deliberations_in_flight                gauge: queued + running
    fleet_deliberations_queued                   gauge: waiting for a slot
    fleet_stage_seconds{role,stage}              histogram: wall time of each stage (setup ... select)
    fleet_call_seconds{role,stage}               histogram: each engine call an agent made
    fleet_tokens{role,stage,kind}                counter: prompt, completion and cached_prompt tokens
                                                 (cached_prompt / prompt: the prefix-cache hit rate)

Recorded by the coordinator as deliberations start and end (stages and calls from the record, so a
metric and the record never disagree). A local laptop session turns Ray's metrics collection off
(fleet/driver.py), where these cost nothing.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

from fleet.schemas.record import DeliberationRecord

_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000]


class FleetMetrics:
    def __init__(self) -> None:
        self.started = Counter("fleet_deliberations_started", "deliberations accepted", tag_keys=("role",))
        self.finished = Counter("fleet_deliberations_finished", "deliberations ended, by outcome",
                                tag_keys=("role", "status"))
        self.in_flight = Gauge("fleet_deliberations_in_flight", "deliberations queued or running")
        self.queued = Gauge("fleet_deliberations_queued", "deliberations waiting for a slot")
        self.stage_seconds = Histogram("fleet_stage_seconds", "wall time of a deliberation stage", _SECONDS,
                                       tag_keys=("role", "stage"))
        self.call_seconds = Histogram("fleet_call_seconds", "latency of one agent's engine call", _SECONDS,
                                      tag_keys=("role", "stage"))
        self.tokens = Counter("fleet_tokens", "engine tokens spent", tag_keys=("role", "stage", "kind"))

    def load(self, in_flight: int, queued: int) -> None:
        self.in_flight.set(in_flight)
        self.queued.set(queued)

    def ended(self, role: str, outcome: str, record: DeliberationRecord | None) -> None:
        """A deliberation ended with `outcome` (the record's status, or the lifecycle's when there is
        no record); its stages, calls and tokens come from the record."""
        self.finished.inc(tags={"role": role, "status": outcome})
        if record is None:
            return
        for t in record.timings:
            self.stage_seconds.observe(t.wall_ms / 1000, tags={"role": role, "stage": t.phase})
        for u in record.usage:
            tags = {"role": role, "stage": u.stage}
            self.call_seconds.observe(u.latency_ms / 1000, tags=tags)
            for kind, n in (("prompt", u.prompt_tokens), ("completion", u.completion_tokens),
                            ("cached_prompt", u.cached_tokens or 0)):
                if n:  # Ray's counters refuse an increment of 0
                    self.tokens.inc(n, tags={**tags, "kind": kind})

"""The planning service's side of the bus: publish one plan-approved event, print fleet's answers.

    .venv/bin/nats-server -js -a 127.0.0.1 -p 4222 -sd ~/.cache/fleet/jetstream &
    .venv/bin/serve run serve_configs/cpu_nats.yaml          # in another terminal
    .venv/bin/python examples/nats_plan.py --roles DEV QA

It listens first (an ordered consumer on `orchestration.>` from now on), then publishes the event on
`planning.plan.approved`, and prints each `orchestration.*` message about that event as it arrives:
the dispatch, `deliberation.started`, then `deliberation.completed` (winner, scores, tokens, wall,
URL) or `.failed`, until every role has ended. Nothing here imports fleet: it speaks the wire format
(`fleet/bus/envelope.py`).
"""

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime

import nats
from nats.js.api import DeliverPolicy


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="nats://127.0.0.1:4222")
    parser.add_argument("--roles", nargs="+", default=["DEV", "QA"])
    parser.add_argument("--task", default="Add rate limiting to the login endpoint: at most 5 attempts per "
                                          "minute per account, then HTTP 429 with a Retry-After header.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every role")
    args = parser.parse_args()

    nc = await nats.connect(args.server)
    js = nc.jetstream()
    event_id = f"evt-{uuid.uuid4().hex[:12]}"
    ended: set[str] = set()
    done = asyncio.Event()

    async def on_result(msg) -> None:
        body = json.loads(msg.data)
        if msg.subject.endswith(".dispatch.rejected") and event_id in body.get("raw", ""):
            print(f"rejected: {body['reason']}", flush=True)  # our event did not validate
            done.set()
            return
        if body.get("event_id") != event_id:
            return
        kind = msg.subject.split(".", 1)[1]
        print(f"{kind:<24} {body.get('role', ''):<6} {json.dumps(summary(kind, body))}", flush=True)
        if kind in ("deliberation.completed", "deliberation.failed"):
            ended.add(body["role"])
            if ended >= set(args.roles):
                done.set()

    # Subscribe before publishing (only what arrives from now on), so no answer is missed.
    sub = await js.subscribe("orchestration.>", ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                             cb=on_result)
    event = {"version": 1, "event_id": event_id, "plan_id": "plan-demo", "story_id": "story-demo",
             "roles": args.roles, "task": {"description": args.task}, "config": {"rounds": args.rounds},
             "approved_at": datetime.now(UTC).isoformat(), "published_at": datetime.now(UTC).isoformat()}
    ack = await js.publish("planning.plan.approved", json.dumps(event).encode())
    print(f"published {event_id} (stream {ack.stream} #{ack.seq}); waiting for {args.roles}", flush=True)
    try:
        await asyncio.wait_for(done.wait(), args.timeout)
        return 0
    except TimeoutError:
        print(f"timed out after {args.timeout:.0f}s; ended: {sorted(ended)}")
        return 1
    finally:
        await sub.unsubscribe()
        await nc.close()


def summary(kind: str, body: dict) -> dict:
    """The fields worth a line on a terminal."""
    keep = {"dispatch.accepted": ("deliberation_id", "error"),
            "dispatch.rejected": ("reason",),
            "deliberation.started": ("deliberation_id", "url"),
            "deliberation.completed": ("deliberation_id", "status", "winner_id", "scores", "wall_ms", "url"),
            "deliberation.failed": ("deliberation_id", "error_type", "error", "url")}.get(kind, tuple(body))
    out = {k: body.get(k) for k in keep}
    if "scores" in out:
        out["scores"] = {a: round(s, 3) for a, s in (out["scores"] or {}).items()}
    if kind == "deliberation.completed":
        out["tokens"] = body["tokens"]["completion_tokens"]
    return out


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

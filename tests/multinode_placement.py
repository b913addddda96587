"""Placement on a multi-node cluster, as a script (it needs its own Ray cluster; see test_placement.py).

A head node without the engine resource and two engine nodes (custom resource `fleet_engine`), two
fake engine replicas spread one per engine node. Prints a JSON report: where each agent runs and which
replica served each of its calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_enable_metrics_collection", "0")
# Serve's router probes the same-node replica's queue with a 0.1 s deadline and falls back to any
# replica when it misses; three raylets on two busy cores miss it now and then. Workers inherit this.
os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")


async def run() -> dict:
    from fleet import DeliberationConfig, EngineSpec, Fleet, FleetConfig

    config = FleetConfig(engine=EngineSpec(kind="fake", num_replicas=2, max_replicas_per_node=1),
                         coordinator_name="placement-check")
    fleet = await Fleet.start(config)
    record = await fleet.deliberate("Add rate limiting to the login endpoint", role="DEV", num_agents=6,
                                    rounds=1, config=DeliberationConfig(judge=False))
    nodes = await fleet.coordinator.agent_nodes.remote()
    return {
        "status": record.status,
        "agent_nodes": nodes,
        "calls": [(u.agent_id, u.stage, u.served_by) for u in record.usage],
    }


def main() -> int:
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    engine_nodes = [cluster.add_node(num_cpus=1, resources={"fleet_engine": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="fleet", log_to_driver=False)
    try:
        serve.start(proxy_location="Disabled")  # several "nodes" on one host: no HTTP proxies to collide
        report = asyncio.run(run())  # this script is a sync edge, like the CLI
        report["head_node"] = cluster.head_node.node_id
        report["engine_nodes"] = [n.node_id for n in engine_nodes]
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""fleet on NATS JetStream: plan-approved events in, deliberation results out, exactly once.

The request path: `envelope.py` (wire types) -> `consumer.py` (plan events -> the coordinator's
plan dispatch, the same call as `POST /v1/events/plan-approved`) -> `watcher.py` (each dispatched
deliberation to its end -> result events) over `publisher.py` (the connection, streams, de-duplicated
publishing); `service.py` supervises both loops, `deployment.py` is its Serve deployment.
"""

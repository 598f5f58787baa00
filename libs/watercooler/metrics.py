"""Prometheus metrics shared by every process; each process serves /metrics on its own port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

GRPC_REQUESTS = Counter("wc_grpc_requests_total", "gRPC requests handled", ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "wc_grpc_request_seconds",
    "gRPC request latency",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GRPC_IN_FLIGHT = Gauge("wc_grpc_requests_in_flight", "gRPC requests in progress in this process", ["service"])
GRPC_SHED = Counter("wc_grpc_shed_total", "gRPC requests refused with RESOURCE_EXHAUSTED because WC_MAX_IN_FLIGHT were in progress", ["service", "method"])
EVENTS_STORED = Counter("wc_events_stored_total", "Events stored in a service's event store", ["service"])
GROUP_COMMIT_SIZE = Histogram(
    "wc_store_group_commit_commands", "Commands saved per store transaction (group commit)", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
GROUP_COMMIT_SPLITS = Counter("wc_store_group_commit_splits_total", "Grouped transactions that failed and were saved command by command", ["service"])
EVENTS_PUBLISHED = Counter("wc_events_published_total", "Events published to Kafka by the relay", ["service"])
RELAY_LAG = Gauge("wc_relay_lag_events", "Stored events not yet published", ["service"])
PROCESSED = Counter("wc_processor_events_total", "Events handled by a processor", ["processor", "outcome"])
# cause: bad_event (undecodable, or its projection raised on it) or kept_failing (its batch
# failed every attempt and the record was found to be the one at fault).
# Bulk writes the projections asked for, and the requests that carried them (JoinedBulks).
BULKS_ASKED = Counter("wc_processor_bulks_total", "Bulk writes the projections asked for", [])
BULK_REQUESTS = Counter("wc_processor_bulk_requests_total", "Bulk requests sent to Elasticsearch for them", [])
DEAD_LETTERED = Counter("wc_processor_dead_lettered_total", "Records parked in the dead-letter topic", ["processor", "cause"])
CONSUMER_LAG = Gauge("wc_consumer_lag", "Records behind the end of the partition", ["processor", "topic", "partition"])


def serve(port: int) -> None:
    """Expose /metrics; port 0 disables it (tests run many processes)."""
    if port:
        start_http_server(port, addr="0.0.0.0")

"""Watercooler's shared platform package: what every service, relay and processor uses.

- config      settings by environment
- eventstore  event-sourced applications on the `eventsourcing` library (store, outbox, idempotency)
- envelope    the EventEnvelope every published event travels in
- relay       stored events -> Kafka
- projection  Elasticsearch documents kept from events, and their rebuild
- processor   faust-streaming workers that run projections
- grpc_server gRPC bootstrap: auth, errors, metrics, health, reflection
- auth        JWT principals
- infra       Kafka / Elasticsearch / PostgreSQL as local processes, containers or external
The `*/v1/` sub-packages are generated from protos/ by `make protos`.
"""

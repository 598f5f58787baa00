"""The end-to-end slice (gRPC command, event store, relay, Kafka, projection, Elasticsearch, search), run against the cluster topology: the tests of tests/integration/test_pipeline.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_pipeline import *  # noqa: F403  (the module's tests and fixtures)

pytestmark = pytest.mark.cluster

"""The visibility matrix: every read x every level x every principal kind, run against the cluster topology: the tests of tests/integration/test_visibility_matrix.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_visibility_matrix import *  # noqa: F403  (the module's tests and fixtures)

pytestmark = pytest.mark.cluster

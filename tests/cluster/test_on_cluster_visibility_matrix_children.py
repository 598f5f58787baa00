"""The visibility matrix: children follow their parent's current visibility, run against the cluster topology: the tests of tests/integration/test_visibility_matrix_children.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_visibility_matrix_children import *  # noqa: F403  (the module's tests and fixtures)

pytestmark = pytest.mark.cluster

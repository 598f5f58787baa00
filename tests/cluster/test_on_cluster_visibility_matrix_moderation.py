"""The visibility matrix: items hidden by flags and by moderators, run against the cluster topology: the tests of tests/integration/test_visibility_matrix_moderation.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_visibility_matrix_moderation import *  # noqa: F403  (the module's tests and fixtures)

pytestmark = pytest.mark.cluster

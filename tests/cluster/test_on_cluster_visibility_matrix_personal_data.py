"""The visibility matrix: the personal data export, run against the cluster topology: the tests of tests/integration/test_visibility_matrix_personal_data.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_visibility_matrix_personal_data import *  # noqa: F403  (the module's tests and fixtures)

pytestmark = pytest.mark.cluster

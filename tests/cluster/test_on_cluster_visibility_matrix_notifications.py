"""The visibility matrix: notifications, run against the cluster topology: the tests of tests/integration/test_visibility_matrix_notifications.py, unchanged,
with ``platform`` backed by the cluster (conftest.py): every call balanced over two replicas."""

import pytest

from tests.integration.test_visibility_matrix_notifications import *  # noqa: F403  (the module's tests and fixtures)
from tests.integration.test_visibility_matrix_notifications import World

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def notified(platform) -> World:
    """The people of test_notifications.py's ``notified``, made once for this module: that one is
    session-scoped (shared with test_notifications.py), wider than the cluster's ``platform``."""
    return World(platform)

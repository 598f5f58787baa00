"""Per-principal rate limits: RESOURCE_EXHAUSTED with a RetryInfo saying when to come back."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import free_port
from tools.runner import ROOT
from watercooler.client import wait_serving
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg

pytestmark = pytest.mark.integration


@pytest.fixture()
def limited_profiles(platform):
    """A second profiles process on the same store, limited to 5 requests/s per person."""
    port = free_port()
    env = {**os.environ, "WC_PROFILES_PORT": str(port), "WC_PROFILES_METRICS_PORT": "0", "WC_RATE_LIMIT": "5", "WC_RATE_BURST": "5"}
    proc = subprocess.Popen([sys.executable, "-m", "services.profiles"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_serving(f"127.0.0.1:{port}", 60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pg.ProfileServiceStub(channel)
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_person_over_the_limit_is_told_when_to_retry(platform, limited_profiles):
    person = platform.metadata("e-eager", "employee")
    request = pp.GetProfileRequest(name="profiles/e-eager")
    codes, retry_delays = [], []
    for _ in range(20):
        try:
            limited_profiles.GetProfile(request, metadata=person, timeout=10)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                for detail in rpc_status.from_call(error).details:
                    if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                        info = error_details_pb2.RetryInfo()
                        detail.Unpack(info)
                        retry_delays.append(info.retry_delay.ToNanoseconds() / 1e9)
    limited = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert codes.count(grpc.StatusCode.NOT_FOUND) >= 5  # the burst went through (the profile does not exist)
    assert limited >= 10
    assert len(retry_delays) == limited and all(0 < d <= 1.0 for d in retry_delays)

    time.sleep(max(retry_delays) + 0.1)
    with pytest.raises(grpc.RpcError) as after_wait:
        limited_profiles.GetProfile(request, metadata=person, timeout=10)
    assert after_wait.value.code() == grpc.StatusCode.NOT_FOUND

    # Someone else is not slowed down by the eager one, and services are not limited.
    with pytest.raises(grpc.RpcError) as other:
        limited_profiles.GetProfile(request, metadata=platform.metadata("e-calm", "employee"), timeout=10)
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
    service = platform.metadata("batch-job", "service")
    for _ in range(30):
        with pytest.raises(grpc.RpcError) as unlimited:
            limited_profiles.GetProfile(request, metadata=service, timeout=10)
        assert unlimited.value.code() == grpc.StatusCode.NOT_FOUND

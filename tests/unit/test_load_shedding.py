"""Overload: a service refuses what it cannot take with RESOURCE_EXHAUSTED and says why.

The server is the one every service runs (grpc_server.new_server, with PlatformInterceptor), in a
process of its own, as in production: its event loop can be busy while clients keep sending."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from watercooler import auth, config
from watercooler.client import bearer_metadata

ROOT = Path(__file__).resolve().parents[2]

# A tiny service behind the platform's server: Hold sleeps for the seconds it is sent (without
# blocking the loop), Block blocks the whole process for them (as a CPU-bound service would),
# HoldAnnounced is Hold that first prints a line, so a test knows the call is in progress.
SERVER = r"""
import asyncio, sys, time, grpc
from watercooler import config
from watercooler.grpc_server import new_server

async def hold(request, context):
    await asyncio.sleep(float(request.decode()))
    return request

async def hold_announced(request, context):
    print("in progress", flush=True)
    return await hold(request, context)

async def block(request, context):
    time.sleep(float(request.decode()))  # holds the event loop, as CPU-bound work would
    return request

def engine_error(status):
    import elasticsearch
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "localhost", 9200))
    return elasticsearch.ApiError("search refused", meta=meta, body={"error": {"type": "es_rejected_execution_exception"}})

async def engine_busy(request, context):
    raise engine_error(429)  # Elasticsearch's search queue full

async def engine_refused(request, context):
    raise engine_error(400)  # a query Elasticsearch cannot parse: a defect of ours

async def main():
    server = new_server("overload", config.load())
    handlers = {name: grpc.unary_unary_rpc_method_handler(behaviour)
                for name, behaviour in (("Hold", hold), ("HoldAnnounced", hold_announced), ("Block", block),
                                        ("EngineBusy", engine_busy), ("EngineRefused", engine_refused))}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Overload", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


@pytest.fixture()
def start_server(tmp_path):
    started = []

    def start(max_in_flight: int) -> tuple[str, tuple, subprocess.Popen]:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}", "WC_DATA_DIR": str(tmp_path), "WC_MAX_IN_FLIGHT": str(max_in_flight),
               "WC_RATE_LIMIT": "0", "WC_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=env)
        started.append(proc)
        port = proc.stdout.readline().strip()
        assert port.isdigit(), "the test server did not start"
        settings = dataclasses.replace(config.load(), data_dir=tmp_path)
        auth.ensure_dev_keys(settings)
        return f"127.0.0.1:{port}", bearer_metadata(auth.issue_token(settings, "tester", "service")), proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_calls_beyond_the_in_flight_limit_are_refused_with_a_reason_and_retry_info(start_server):
    address, metadata, server = start_server(max_in_flight=2)

    async def scenario():
        async with grpc.aio.insecure_channel(address) as channel:
            hold, hold_announced = channel.unary_unary("/test.Overload/Hold"), channel.unary_unary("/test.Overload/HoldAnnounced")
            holding = []
            for _ in range(2):  # one at a time, each confirmed in progress by the server before the next
                holding.append(asyncio.ensure_future(hold_announced(b"3", metadata=metadata, timeout=30)))
                assert await asyncio.to_thread(server.stdout.readline) == "in progress\n"
            refused = None
            try:
                await hold(b"0", metadata=metadata, timeout=10)
            except grpc.RpcError as error:
                refused = error
            assert await asyncio.gather(*holding) == [b"3", b"3"]
            after = await hold(b"0", metadata=metadata, timeout=10)  # the count went back down
            return refused, after

    refused, after = asyncio.run(scenario())
    assert refused is not None, "a third call while two were in progress was not refused"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "WC_MAX_IN_FLIGHT" in refused.details() and "retry with the same request_id" in refused.details()
    status = rpc_status.from_call(refused)
    retry = error_details_pb2.RetryInfo()
    assert [d.Unpack(retry) for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)] == [True]
    assert retry.retry_delay.ToNanoseconds() > 0
    assert after == b"0"


def test_a_burst_sent_while_the_service_is_busy_is_answered_not_cancelled(start_server):
    """2,500 calls arrive while the process is blocked: more than gRPC's core holds by default
    (1,000 before it starts refusing, as a bare CANCELLED). Each must end OK or, past the
    in-flight limit, RESOURCE_EXHAUSTED."""
    address, metadata, _ = start_server(max_in_flight=100)

    async def scenario():
        async with grpc.aio.insecure_channel(address) as channel:
            block, hold = channel.unary_unary("/test.Overload/Block"), channel.unary_unary("/test.Overload/Hold")
            await hold(b"0", metadata=metadata, timeout=10)  # connected
            blocked = asyncio.ensure_future(block(b"3", metadata=metadata, timeout=30))
            await asyncio.sleep(0.5)
            outcomes = collections.Counter()

            async def one():
                try:
                    await hold(b"0.2", metadata=metadata, timeout=60)
                    outcomes["OK"] += 1
                except grpc.RpcError as error:
                    outcomes[error.code().name] += 1

            await asyncio.gather(*(one() for _ in range(2500)))
            await blocked
            return outcomes

    outcomes = asyncio.run(scenario())
    assert sum(outcomes.values()) == 2500
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["OK"] >= 100, outcomes


def test_a_search_engine_that_cannot_answer_now_is_unavailable_and_one_that_refuses_our_query_is_internal(start_server):
    """Elasticsearch's 429 (queue full) or 503 (a shard away) is the caller's to retry: UNAVAILABLE,
    not INTERNAL with a reference as for a defect; a refused query (400) stays INTERNAL."""
    target, metadata, _ = start_server(max_in_flight=100)

    async def call(method: str) -> grpc.aio.AioRpcError:
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary(f"/test.Overload/{method}")(b"", metadata=metadata, timeout=10)
        return raised.value

    busy, refused = asyncio.run(call("EngineBusy")), asyncio.run(call("EngineRefused"))
    assert busy.code() == grpc.StatusCode.UNAVAILABLE and "retry" in busy.details()
    assert refused.code() == grpc.StatusCode.INTERNAL and "reference" in refused.details()

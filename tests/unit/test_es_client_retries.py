"""The Elasticsearch client every process makes (watercooler.projection.es_client): the transport
retries at once only where another node or a fresh connection could answer; waiting out an
outage is left to our paced loops (watercooler.retries)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from elastic_transport import ConnectionError as TransportConnectionError

from watercooler.config import Settings
from watercooler.projection import es_client


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("nodes", "retries"), [(1, 1), (2, 1), (3, 2)])
def test_a_call_to_nodes_that_are_down_is_retried_once_on_each_other_node(nodes, retries, caplog):
    urls = ",".join(f"http://127.0.0.1:{closed_port()}" for _ in range(nodes))

    async def call() -> None:
        es = es_client(Settings(es_url=urls))
        try:
            with pytest.raises(TransportConnectionError):
                await es.info()
        finally:
            await es.close()

    with caplog.at_level(logging.WARNING, logger="elastic_transport.transport"):
        asyncio.run(call())
    assert [r.getMessage() for r in caplog.records if r.name == "elastic_transport.transport"] == [
        f"Retrying request after failure (attempt {n} of {retries})" for n in range(retries)]


def test_a_timeout_is_retried_only_on_another_node():
    async def options(urls: str) -> bool:
        es = es_client(Settings(es_url=urls))
        try:
            return es._retry_on_timeout
        finally:
            await es.close()

    assert asyncio.run(options("http://127.0.0.1:9")) is False
    assert asyncio.run(options("http://127.0.0.1:9,http://127.0.0.1:10")) is True

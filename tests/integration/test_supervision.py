"""The platform supervisor (tools/runner.py) brings back a crashed processor, relay
and service by itself, and nothing they acknowledged is lost or counted twice."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from tests.conftest import eventually
from tests.integration.test_view_retries import reader_and_page
from tests.integration.test_views import counts
from watercooler.client import wait_serving
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration

CRASHED = ("stats", "relay-posts", "posts")


def supervisor_messages(platform) -> list[str]:
    path = platform.platform.log_dir / "platform.log"
    return [json.loads(line)["msg"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_sigkilled_processor_relay_and_service_come_back_and_views_count_exactly_once(platform):
    runner = platform.platform
    search = platform.stub(sg.SearchServiceStub, "search")
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    _, md, page = reader_and_page(platform, "sv")
    views = [wp.PageView(page=page.name, client="web")] * 100
    assert wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=views, request_id=str(uuid.uuid4())), metadata=md).recorded == 100
    eventually(lambda: counts(search, md, page.name).total >= 100, message="the views before the crash counted")

    crashed = {name: runner.procs[name] for name in CRASHED}
    for proc in crashed.values():
        os.kill(proc.pid, signal.SIGKILL)  # a crash, not a stop by hand: the supervisor's business

    def all_back() -> bool:
        return all(runner.procs[name] is not proc and runner.procs[name].poll() is None for name, proc in crashed.items())

    eventually(all_back, timeout=120, message="the crashed processes restarted")
    messages = supervisor_messages(platform)
    for name in CRASHED:
        assert any(m.startswith(f"{name} exited with code -9; restarting in") for m in messages), (name, messages)
        assert any(m.startswith(f"{name} restarted (pid {runner.procs[name].pid})") for m in messages), (name, messages)
    assert not runner.gave_up.is_set()
    wait_serving(platform.settings.grpc_address("posts"), 60)

    # Recorded through the restarted service, counted by the restarted processor; the request
    # id makes a retry of a call that timed out during the restart count once.
    after = wp.BatchRecordPageViewsRequest(views=views[:50], request_id=str(uuid.uuid4()))
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    assert eventually(lambda: wiki.BatchRecordPageViews(after, metadata=md, timeout=10).recorded == 50, timeout=60, message="views recorded again")
    # A page created now reaches search only through the restarted relay.
    title = f"Supervised {uuid.uuid4().hex[:8]}"
    created = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=page.space, title=title, body="back")), metadata=md)
    eventually(lambda: created.name in {h.name for h in search.Search(sp.SearchRequest(query=title), metadata=md).hits}, timeout=120, message="the new page searchable")

    eventually(lambda: counts(search, md, page.name).total >= 150, timeout=120, message="the views after the crash counted")
    assert counts(search, md, page.name).total == 150

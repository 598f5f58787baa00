"""The dashboard in headless Chromium (Debian's chromium package, installed here when
missing and running as root): the page served by the search service loads, every chart
shows the data seeded in this test, and a screenshot is saved to test-artifacts/dashboard.png.
Also the JSON-over-HTTP view it reads: auth, parameters, errors naming the field."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, eventually
from tests.integration.test_stats import seed_company, stats

pytestmark = pytest.mark.integration

CHARTS = ("chart-posts", "chart-views", "chart-top-pages", "chart-downloads", "chart-trending", "chart-active-blogs",
          "chart-leaderboard", "chart-jam-votes", "chart-jam-participants", "chart-jam-tone")


def chromium() -> str:
    """The chromium binary; installed with apt-get when missing and we are root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and could not be installed (needs root and apt-get: apt-get install -y chromium)")
    return found


def browse(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,1300",
             "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw", *extra, url],
            capture_output=True, text=True, timeout=120,
        )


def base_url() -> str:
    return f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}"


def get(path: str, token: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(base_url() + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def company(platform):
    seeded = seed_company(platform)
    s, md = seeded["s"], seeded["as_ana"]
    eventually(lambda: stats(s, md, metric="jam_votes", jam=seeded["jam"]).total == 4, timeout=90, message="jam stats")
    eventually(lambda: stats(s, md, metric="wiki_views", target=seeded["page"]).total == 4, timeout=60, message="views counted")
    eventually(lambda: stats(s, md, metric="media_downloads", target=seeded["video"]).total == 2, timeout=60, message="downloads counted")
    seeded["token"] = md[0][1].split()[-1]  # the bearer JWT of the seeded employee
    return seeded


def test_http_view_answers_the_same_queries_with_the_same_rules(platform, company):
    token = company["token"]
    status, body = get(f"/api/v1/stats?metric=wiki_views&target={company['page']}", token)
    assert status == 200 and body["total"] == 4

    def searched() -> bool:
        # The fixture waited for the counts, not for the last page to be indexed: search is eventual.
        status, body = get(f"/api/v1/search?query={company['tag']}&kinds=post,wiki_page&page_size=50", token)
        assert status == 200 and {h["name"] for h in body["hits"]} == {*company["posts"], company["page"], company["other"]}
        return True

    eventually(searched, timeout=30, message="the seeded posts and pages found over HTTP")
    status, body = get(f"/api/v1/suggest?prefix={company['tag'][:5]}&kinds=tags", token)
    assert status == 200 and body["suggestions"][0]["text"] == company["tag"]
    status, body = get(f"/api/v1/jams/{company['jam'].split('/')[1]}/leaderboard", token)
    assert status == 200 and int(body["rows"][0]["votes"]) == 3  # int64 is a JSON string (proto3 JSON)
    assert get("/api/v1/stats?metric=posts", None)[0] == 401
    status, body = get("/api/v1/search?colour=red", token)
    assert status == 400 and body["error"]["field"] == "colour" and body["error"]["status"] == "INVALID_ARGUMENT"
    status, body = get("/api/v1/search?page_size=500", token)
    assert status == 400 and body["error"]["field"] == "page_size"
    status, body = get("/api/v1/stats?metric=posts&start_time=yesterday", token)
    assert status == 400 and body["error"]["field"] == "start_time"
    # A guest of no jam gets NOT_FOUND for the jam's board, as over gRPC.
    assert get(f"/api/v1/jams/{company['jam'].split('/')[1]}/leaderboard", platform.token("g1", "guest"))[0] == 404


def test_dashboard_draws_every_chart_from_the_seeded_data(platform, company):
    binary = chromium()
    url = f"{base_url()}/dashboard/?jam={company['jam']}&refresh=60#token={company['token']}"
    dom = browse(binary, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for chart in CHARTS:
        match = re.search(rf'id="{chart}"[^>]*data-points="(\d+)"[^>]*data-state="ready"', html)
        assert match, f"{chart} not drawn: {html[:3000]}"
        assert int(match.group(1)) > 0, f"{chart} shows no data"
    assert company["page_title"] in html  # top pages
    assert company["tag"] in html  # trending tags
    assert "Project 0" in html  # the leaderboard's first idea
    assert 'class="status error"' not in html
    ARTIFACTS.mkdir(exist_ok=True)
    target = Path(ARTIFACTS) / "dashboard.png"
    shot = browse(binary, url, f"--screenshot={target}")
    assert shot.returncode == 0 and target.exists() and target.stat().st_size > 20_000, shot.stderr[-2000:]

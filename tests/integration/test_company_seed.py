"""`watercooler seed --company`: the synthetic company written through the public APIs.

A tiny company (40 people) is written twice under a tag of its own: the second run stores
no new event and records no view (request ids derived from the seed), and what search
counts matches what the writer says the company holds."""

from __future__ import annotations

import secrets
import time

from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from services.posts.library.viewlog import DOWNLOADS, VIEWS
from tests.conftest import eventually
from tools.cli import app
from tools.company import KINDS, write_company
from watercooler.search.v1 import search_pb2, search_pb2_grpc

SIZE = 40


def _end_offsets(settings, topics: list[str]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        out = {}
        for topic in topics:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            out[topic] = sum(consumer.end_offsets(partitions).values()) if partitions else 0
        return out
    finally:
        consumer.close()


def _count(platform, projection: str, *filters: dict) -> int:
    query = {"bool": {"filter": list(filters)}}
    platform.es.indices.refresh(index=platform.alias(projection))
    return platform.es.count(index=platform.alias(projection), query=query)["count"]


def test_company_seed_is_idempotent_and_searchable(platform) -> None:
    tag = f"t{secrets.token_hex(3)}"
    first = write_company(platform.settings, SIZE, seed=7, tag=tag, concurrency=8)
    held = first.present
    assert held["profiles"] == SIZE and held["blogs"] >= 1 and held["posts"] == 10 * held["blogs"]
    assert held["comments"] > 0 and held["ratings"] > 0 and held["microposts"] > 0 and held["bookmarks"] > 0
    assert held["wiki pages"] >= 10 and first.views_recorded == held["page views"] == SIZE
    assert held["jam ideas"] >= 10 and held["jam votes"] > 0
    assert held["communities"] >= 3 and held["community members"] > 0
    assert held["media items"] >= 10 and first.downloads_recorded == held["downloads"] == SIZE // 2

    prefix = lambda field: {"prefix": {field: tag}}  # noqa: E731
    search = platform.stub(search_pb2_grpc.SearchServiceStub, "search")
    service = platform.metadata()
    space_id = f"{tag}company-7"

    def counts() -> dict[str, int]:
        views = sum(search.GetViewCounts(search_pb2.GetViewCountsRequest(name=page), metadata=service, timeout=30).total for page in first.names["pages"])
        downloads = sum(search.GetViewCounts(search_pb2.GetViewCountsRequest(name=item), metadata=service, timeout=30).total for item in first.names["media"])
        platform.es.indices.refresh(index=platform.alias("communities"))
        communities = platform.es.search(index=platform.alias("communities"), query={"prefix": {"community_id": tag}}, size=100, _source=["member_count"])["hits"]["hits"]
        board = search.GetJamLeaderboard(search_pb2.GetJamLeaderboardRequest(jam=first.names["jam"], page_size=100), metadata=service, timeout=30)
        return {
            "profiles": _count(platform, "people", prefix("employee_id")),
            "blogs": _count(platform, "blogs", prefix("owner_id")),
            "posts": _count(platform, "posts", {"term": {"kind": "blog"}}, prefix("author_id")),
            "microposts": _count(platform, "posts", {"term": {"kind": "micro"}}, prefix("author_id")),
            "comments": _count(platform, "comments", prefix("author_id")),
            "ratings": _count(platform, "reactions", {"term": {"kind": "rating"}}, prefix("person_id")),
            "bookmarks": _count(platform, "bookmarks", prefix("owner_id")),
            "wiki pages": _count(platform, "wiki", {"term": {"kind": "page"}}, {"term": {"space_id": space_id}}),
            "page views": views,
            "communities": len(communities),
            "community members": sum(c["_source"]["member_count"] for c in communities) - len(communities),  # less each first owner
            "media items": _count(platform, "media", {"prefix": {"owner": f"profiles/{tag}"}}),
            "downloads": downloads,
            "jam ideas": board.ideas,
            "jam votes": board.votes,
        }

    expected = {
        kind: held[kind]
        for kind in ("profiles", "blogs", "posts", "microposts", "comments", "ratings", "bookmarks", "wiki pages", "page views", "communities", "community members",
                     "media items", "downloads", "jam ideas", "jam votes")
    }

    def settled() -> dict[str, int]:
        got = counts()
        assert got == expected, {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
        return got

    eventually(settled, timeout=60, interval=1.0)
    topics = [platform.topic("profiles"), platform.topic("posts"), platform.topic("jams"), platform.settings.fact_topic(VIEWS), platform.settings.fact_topic(DOWNLOADS)]
    before = _end_offsets(platform.settings, topics)

    second = write_company(platform.settings, SIZE, seed=7, tag=tag, concurrency=8)
    assert second.present == first.present and second.views_recorded == second.downloads_recorded == 0
    assert second.names["posts"] == first.names["posts"] and second.names["ideas"] == first.names["ideas"] and second.names["pages"] == first.names["pages"]
    assert second.names["media"] == first.names["media"] and second.names["communities"] == first.names["communities"]
    time.sleep(2.0)  # the relays poll the stores: anything new would reach Kafka by now
    assert _end_offsets(platform.settings, topics) == before
    assert counts() == expected


def test_seed_company_command_writes_and_reports_each_kind(platform) -> None:
    tag = f"t{secrets.token_hex(3)}"
    result = CliRunner().invoke(app, ["seed", "--company", "--size", "12", "--seed", "3", "--tag", tag, "--concurrency", "4"])
    assert result.exit_code == 0, result.output
    reported = dict(line.rsplit(": ", 1) for line in result.output.splitlines() if any(line.startswith(f"{kind}: ") for kind in KINDS))
    assert set(reported) == set(KINDS) and reported["profiles"] == "12" and reported["page views"] == "12"

    def indexed() -> bool:
        assert _count(platform, "people", {"prefix": {"employee_id": tag}}) == 12
        assert _count(platform, "posts", {"term": {"kind": "blog"}}, {"prefix": {"author_id": tag}}) == int(reported["posts"].replace(",", ""))
        return True

    eventually(indexed, timeout=60, interval=1.0)

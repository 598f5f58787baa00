"""`watercooler reindex` of the counters: the view/download counts and the jam statistics are
rebuilt from the log into a new index behind their alias, with the same counts as before (a
retried copy of a view still counted once), while the live counters keep running."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer

from services.posts.library.viewlog import view_id_of
from tests.conftest import eventually
from tests.integration.helpers import read_topic
from tests.integration.test_cli import cli
from tests.integration.test_jams_api import open_jam
from tests.integration.test_jams_stats import leaderboard_of
from tests.integration.test_view_retries import a_video, reader_and_page
from tests.integration.test_views import counts, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import library_events_pb2 as le
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def concrete(platform, name: str) -> set[str]:
    return set(platform.es.indices.get_alias(name=platform.alias(name)).body)


def count_documents(platform, targets: list[str]) -> dict[str, int]:
    """The counter's own documents for ``targets``: {doc id: count} (ids name kind, target, day,
    department and partition, so equal maps mean the same counts in the same places)."""
    platform.es.indices.refresh(index=platform.alias("view-counts"))
    hits = platform.es.search(index=platform.alias("view-counts"), query={"terms": {"target": targets}}, size=1000)["hits"]["hits"]
    return {h["_id"]: h["_source"]["count"] for h in hits}


def test_view_counts_are_rebuilt_by_replay_behind_their_alias(platform):
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    media = platform.stub(mg.MediaServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    reader, md, page = reader_and_page(platform, "rb")
    video = a_video(platform, md, "Rebuilt")
    request_id = str(uuid.uuid4())
    wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="web")] * 3, request_id=request_id), metadata=md)
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=md)
    media.BatchRecordDownloads(mp.BatchRecordDownloadsRequest(downloads=[mp.Download(media_item=video.name)] * 2), metadata=md)
    # A retried copy of the first batch reaches Kafka again (as after a posts service restart):
    # the rebuild must skip it as the live counter does.
    topic = platform.settings.fact_topic("views")
    originals = [r for r in read_topic(platform.settings, topic) if le.ViewFact.FromString(r.value).view_id in {view_id_of(reader, request_id, i) for i in range(3)}]
    assert len(originals) == 3
    producer = KafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap, acks="all")
    for record in originals:
        producer.send(topic, key=record.key, value=record.value, partition=record.partition).get(30)
    producer.close()
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name, client="after")), metadata=md)  # counted after the copies

    eventually(lambda: counts(search, md, page.name).total == 5 and counts(search, md, video.name).total == 2, timeout=60, message="5 views and 2 downloads counted")
    before = count_documents(platform, [page.name, video.name])
    assert sum(before.values()) == 7
    old = concrete(platform, "view-counts")

    result = cli("reindex", "view-counts")
    assert result.returncode == 0, result.stderr
    assert "rebuilt view-counts" in result.stdout

    new = concrete(platform, "view-counts")
    assert new and new.isdisjoint(old), "the alias points at a new index"
    assert all(name.startswith(platform.alias("view-counts") + "-v") for name in new)
    assert count_documents(platform, [page.name, video.name]) == before
    assert counts(search, md, page.name).total == 5 and counts(search, md, video.name).total == 2
    # The live counter writes through the alias into the new index.
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name, client="later")), metadata=md)
    eventually(lambda: counts(search, md, page.name).total == 6, timeout=60, message="a view after the rebuild counted")
    # The rebuild's own store of seen view ids is gone; the live one is untouched.
    assert not platform.es.indices.get(index=platform.alias("rebuild-*"), allow_no_indices=True, expand_wildcards="open").body


def test_jam_stats_are_rebuilt_by_replay_behind_their_alias(platform):
    jams = platform.stub(jg.JamServiceStub, "jams")
    search = platform.stub(sg.SearchServiceStub, "search")
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, budget=3, ideas=3)
    jam_name = f"jams/{jam_id}"
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)
    people = [platform.author(unique("emp")) for _ in range(3)]
    for person, picks in zip(people, ((0, 1), (1, 2), (0,)), strict=True):
        for pick in picks:
            jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=ideas[pick]), metadata=person)
    jams.MergeIdeas(jp.MergeIdeasRequest(name=ideas[1], into=ideas[0]), metadata=host)  # person 0 voted both: counts once

    def board():
        response = leaderboard_of(search, jam_name, people[0])
        assert [(r.idea, r.votes) for r in response.rows] == [(ideas[0], 3), (ideas[2], 1)], response
        return response

    eventually(board, timeout=60, message="leaderboard")

    def counted() -> sp.JamLeaderboard:
        response = board()
        response.ClearField("update_time")  # when the snapshot was written
        return response

    def stats_document() -> dict:
        source = platform.es.get(index=platform.alias("jam-stats"), id=jam_id)["_source"]
        return {k: v for k, v in source.items() if k != "updated_at"}  # when the snapshot was written

    before, before_board = stats_document(), counted()
    old = concrete(platform, "jam-stats")

    result = cli("reindex", "jam-stats")
    assert result.returncode == 0, result.stderr
    assert "rebuilt jam-stats" in result.stdout

    new = concrete(platform, "jam-stats")
    assert new and new.isdisjoint(old), "the alias points at a new index"
    assert stats_document() == before
    assert counted() == before_board
    jams.WithdrawVote(jp.WithdrawVoteRequest(jam=jam_name, idea=ideas[2]), metadata=people[1])
    eventually(lambda: [(r.idea, r.votes) for r in leaderboard_of(search, jam_name, people[0]).rows] == [(ideas[0], 3)], timeout=60,
               message="a withdrawal after the rebuild counted")

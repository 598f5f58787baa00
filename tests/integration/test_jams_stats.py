"""The jam's live leaderboard and pulse kept by the stats processor, the idea and thread
projections, and the exports — through the real gRPC APIs, Kafka and Elasticsearch,
including a SIGKILL of the stats worker while votes keep arriving."""

from __future__ import annotations

import csv
import io
import json
import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_jams_api import open_jam, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


@pytest.fixture()
def jams(platform):
    return platform.stub(jg.JamServiceStub, "jams")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def leaderboard_of(search, jam_name: str, metadata) -> sp.JamLeaderboard:
    """The leaderboard, or an AssertionError while the processor has not written it yet."""
    try:
        return search.GetJamLeaderboard(sp.GetJamLeaderboardRequest(jam=jam_name), metadata=metadata)
    except grpc.RpcError as error:
        assert error.code() != grpc.StatusCode.NOT_FOUND, "no statistics yet"
        raise


def test_pulse_tone_leaderboard_and_exports(platform, jams, search):
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, budget=3, ideas=3)
    jam_name = f"jams/{jam_id}"
    for forum_id, title in (("gripes", "Gripes"), ("hopes", "Hopes")):
        jams.CreateForum(jp.CreateForumRequest(parent=jam_name, forum_id=forum_id, forum=jp.Forum(title=title)), metadata=host)
    people = [platform.author(unique("emp")) for _ in range(3)]
    angry = jams.CreateThread(jp.CreateThreadRequest(parent=jam_name, thread=jp.Thread(forum=f"{jam_name}/forums/gripes", title="This is awful",
                              body="Terrible process, nobody listens, I hate these useless meetings.")), metadata=people[0])
    jams.CreateReply(jp.CreateReplyRequest(parent=angry.name, reply=jp.Reply(body="Awful and sad. Worst tooling ever.")), metadata=people[1])
    jams.CreateThread(jp.CreateThreadRequest(parent=jam_name, thread=jp.Thread(forum=f"{jam_name}/forums/hopes", title="Great ideas",
                      body="I love this, wonderful colleagues and a great, happy future!")), metadata=people[2])
    proposed = jams.CreateIdea(jp.CreateIdeaRequest(parent=jam_name, idea=jp.Idea(title="Café for remote teams", forum=f"{jam_name}/forums/hopes")), metadata=people[1])
    about_idea = jams.CreateThread(jp.CreateThreadRequest(parent=jam_name, thread=jp.Thread(idea=ideas[0], title="Discussing project 0", body="Useful project.")), metadata=people[2])
    assert about_idea.idea == ideas[0] and about_idea.forum == ""
    both = rpc_error(jams.CreateThread, jp.CreateThreadRequest(parent=jam_name, thread=jp.Thread(idea=ideas[0], forum=f"{jam_name}/forums/hopes", title="t", body="b")), metadata=people[0])
    assert both.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(both) == ["thread.forum"]
    no_forum = rpc_error(jams.CreateThread, jp.CreateThreadRequest(parent=jam_name, thread=jp.Thread(forum=f"{jam_name}/forums/nope", title="t", body="b")), metadata=people[0])
    assert no_forum.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(no_forum) == ["thread.forum"]
    empty = rpc_error(jams.CreateReply, jp.CreateReplyRequest(parent=angry.name, reply=jp.Reply(body="  ")), metadata=people[0])
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(empty) == ["reply.body"]

    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)
    all_ideas = [*ideas, proposed.name]
    for person, picks in zip(people, ((0, 1, 3), (1, 3), (3,)), strict=True):
        for pick in picks:
            jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=all_ideas[pick]), metadata=person)
    jams.MergeIdeas(jp.MergeIdeasRequest(name=all_ideas[1], into=all_ideas[3]), metadata=host)  # people 0 and 1 voted both

    def board():
        response = leaderboard_of(search, jam_name, people[0])
        assert [(r.idea, r.votes) for r in response.rows] == [(all_ideas[3], 3), (all_ideas[0], 1)], response
        return response

    leaderboard = eventually(board, timeout=60, message="leaderboard")
    assert leaderboard.participants == 4 and leaderboard.voters == 3 and leaderboard.votes == 4 and leaderboard.posts == 8

    pulse = search.GetJamPulse(sp.GetJamPulseRequest(jam=jam_name), metadata=people[0])
    forums = {f.key.rsplit("/", 1)[1]: f for f in pulse.forums}
    assert forums["gripes"].posts == 2 and forums["gripes"].tone < -0.3
    assert forums["hopes"].posts == 2 and forums["hopes"].tone > 0.3
    assert sum(h.posts for h in pulse.hours) == 8 and sum(h.votes for h in pulse.hours) == 6
    assert max(h.active_participants for h in pulse.hours) >= 3

    exported = search.ExportJamStats(sp.ExportJamStatsRequest(jam=jam_name, format="csv"), metadata=people[0])
    rows = list(csv.DictReader(io.StringIO(exported.data.decode())))
    assert [(r["key"], r["votes"]) for r in rows if r["section"] == "leaderboard"] == [(all_ideas[3].rsplit("/", 1)[1], "3"), (all_ideas[0].rsplit("/", 1)[1], "1")]
    assert {r["key"] for r in rows if r["section"] == "forum"} == {"gripes", "hopes"}
    as_json = json.loads(search.ExportJamStats(sp.ExportJamStatsRequest(jam=jam_name, format="json"), metadata=people[0]).data)
    assert as_json["votes"] == 4 and as_json["forums"]["gripes"]["tone"] < 0
    bad = rpc_error(search.ExportJamStats, sp.ExportJamStatsRequest(jam=jam_name, format="pdf"), metadata=people[0])
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad) == ["format"]

    # Ideas are searchable without accents; the merged-away one only on request.
    def found(query, include_merged=False):
        return [i.idea for i in search.SearchJamIdeas(sp.SearchJamIdeasRequest(jam=jam_name, query=query, include_merged=include_merged), metadata=people[0]).ideas]

    eventually(lambda: found("cafe remote") == [proposed.name], message="idea search")
    eventually(lambda: all_ideas[1] not in found("") and all_ideas[1] in found("", include_merged=True), message="merged idea hidden")
    def indexed_threads():
        hits = platform.es.search(index=platform.alias("jam-threads"), query={"term": {"jam_id": jam_id}})["hits"]["hits"]
        return hits if len(hits) == 4 else None

    threads = eventually(indexed_threads, message="threads and replies indexed")
    assert sorted(h["_source"]["kind"] for h in threads) == ["reply", "thread", "thread", "thread"]
    gripes = search.ListJamDiscussion(sp.ListJamDiscussionRequest(jam=jam_name, forum=f"{jam_name}/forums/gripes"), metadata=people[0])
    assert [p.name for p in gripes.posts] == [angry.name] and gripes.posts[0].kind == "thread"
    conversation = search.ListJamDiscussion(sp.ListJamDiscussionRequest(jam=jam_name, thread=angry.name), metadata=people[0])
    assert [p.kind for p in conversation.posts] == ["thread", "reply"] and conversation.posts[1].name.startswith(f"{angry.name}/replies/")
    on_idea = search.ListJamDiscussion(sp.ListJamDiscussionRequest(jam=jam_name, idea=ideas[0], query="useful"), metadata=people[0])
    assert [p.name for p in on_idea.posts] == [about_idea.name]
    wrong = rpc_error(search.ListJamDiscussion, sp.ListJamDiscussionRequest(jam=jam_name, forum="jams/other/forums/x"), metadata=people[0])
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(wrong) == ["forum"]

    # A guest of another jam sees nothing of this one.
    other_id, _ = open_jam(jams, host, ideas=1)
    code = jams.CreateInvitation(jp.CreateInvitationRequest(parent=f"jams/{other_id}"), metadata=host).code
    token = jams.RedeemInvitation(jp.RedeemInvitationRequest(code=code, jam=f"jams/{other_id}"), metadata=platform.metadata(unique("guest"), "guest")).token
    guest = (("authorization", f"Bearer {token}"),)
    hidden = rpc_error(search.GetJamLeaderboard, sp.GetJamLeaderboardRequest(jam=jam_name), metadata=guest)
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(search.SearchJamIdeas, sp.SearchJamIdeasRequest(jam=jam_name), metadata=guest).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(search.ListJamDiscussion, sp.ListJamDiscussionRequest(jam=jam_name), metadata=guest).code() == grpc.StatusCode.NOT_FOUND


def test_leaderboard_stays_exact_when_the_stats_worker_is_killed(platform, jams, search):
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, budget=2, ideas=3)
    jam_name = f"jams/{jam_id}"
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)
    voters = [platform.metadata(unique("emp"), "employee") for _ in range(12)]
    for n, voter in enumerate(voters[:6]):
        jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=ideas[n % 3]), metadata=voter)

    def votes_are(expected):
        def check():
            rows = leaderboard_of(search, jam_name, host).rows
            assert {r.idea: r.votes for r in rows} == expected
            return True

        return check

    eventually(votes_are({ideas[0]: 2, ideas[1]: 2, ideas[2]: 2}), timeout=60, message="first votes counted")
    platform.platform.kill("stats")
    try:
        for voter in voters[6:]:
            jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=ideas[0], request_id=str(uuid.uuid4())), metadata=voter)
        jams.ChangeVote(jp.ChangeVoteRequest(jam=jam_name, from_idea=ideas[1], to_idea=ideas[2]), metadata=voters[1])
        jams.WithdrawVote(jp.WithdrawVoteRequest(jam=jam_name, idea=ideas[2]), metadata=voters[2])
    finally:
        platform.platform.restart("stats")
    # Replayed from the log: every vote once, none lost, none twice.
    eventually(votes_are({ideas[0]: 8, ideas[1]: 1, ideas[2]: 2}), timeout=90, message="exact after SIGKILL")



def test_the_jam_board_lists_the_jams_a_guest_may_see_however_many_newer_ones_they_may_not(infra):
    """The board (GET /api/v1/jams) shows the most recently active jams the caller may see. It
    read the 50 most recent and filtered them afterwards, so a guest whose jam was the 51st saw
    an empty board. With a board of two over three jams (their stats documents as the stats
    worker writes them, in an index namespace of their own), a guest invited to the oldest
    sees it, and the public one; an employee the two newest."""
    import asyncio
    import dataclasses

    from services.search import jams as jam_queries
    from services.search.readmodels.counters import jams as jam_counters
    from watercooler import config
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
    oldest, public, newest = (unique("jam-") for _ in range(3))
    rows = [(oldest, "INTERNAL", "2026-12-01T10:00:00+00:00"), (public, "PUBLIC", "2026-12-02T10:00:00+00:00"), (newest, "INTERNAL", "2026-12-03T10:00:00+00:00")]

    async def boards() -> list[list[str]]:
        es = es_client(settings)
        try:
            await jam_counters.ensure_index(es, settings)
            alias = jam_counters.index_alias(settings)
            for jam_id, visibility, updated in rows:
                await es.index(index=alias, id=jam_id, document={"jam_id": jam_id, "title": "Jam", "visibility": visibility, "participants": 1, "updated_at": updated})
            await es.indices.refresh(index=alias)
            callers = [Principal("g1", "guest", jams=(oldest,)), Principal("e1", "employee"), Principal("g2", "guest", jams=(unique("elsewhere"),))]
            return [[doc["jam_id"] for doc in await jam_queries.board(es, settings, caller, size=2)] for caller in callers]
        finally:
            await es.indices.delete(index=f"{settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
            await es.close()

    guest, employee, stranger = asyncio.run(boards())
    assert guest == [public, oldest]  # the newest, INTERNAL, does not take a place of the two
    assert employee == [newest, public]
    assert stranger == [public]

"""Jams through the real gRPC API, the store, the relay and Kafka: phases on schedule
(also across a restart), votes with a budget, change and withdrawal, merges, frozen
results equal to a recount of the raw vote events in Kafka, the tie-break, and guests."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import Counter

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg

pytestmark = pytest.mark.integration


def unique(prefix: str = "jam") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ts(seconds_from_now: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)).replace(tzinfo=None))
    return stamp


@pytest.fixture()
def jams(platform):
    return platform.stub(jg.JamServiceStub, "jams")


def jam_events(platform, jam_id: str, names: tuple[str, ...] = ()) -> list:
    out = []
    for event in read_events(platform.settings, "jams"):
        payload = event.payload
        jam = getattr(payload, "jam_id", None)
        if jam is None and event.type_name in ("JamScheduled", "JamPhaseChanged", "ForumCreated", "IdeasMerged"):
            jam = _jam_of_aggregate(event.aggregate_id, jam_id)
        if jam == jam_id and (not names or event.type_name in names):
            out.append(event)
    return out


def _jam_of_aggregate(aggregate_id: str, jam_id: str) -> str:
    from services.jams.domainmodel import jam_id_of

    return jam_id if str(jam_id_of(jam_id)) == aggregate_id else ""


def open_jam(jams, host, budget: int = 3, top_n: int = 10, ideas: int = 4) -> tuple[str, list[str]]:
    """A jam advanced by its host to OPEN, with seeded ideas (far-future schedule, so only the host moves it)."""
    jam_id = unique()
    jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Innovation Jam", vote_budget=budget, top_n=top_n,
                                                                  open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=host)
    names = [jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=f"Project {n}")), metadata=host).name for n in range(ideas)]
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=jp.SCHEDULED), metadata=host)
    return jam_id, names


def published_results(jams, jam_name: str, metadata) -> jp.JamResults:
    eventually(lambda: jams.GetJam(jp.GetJamRequest(name=jam_name), metadata=metadata).phase == jp.RESULTS_PUBLISHED, timeout=30, message="results published")
    return jams.GetJamResults(jp.GetJamResultsRequest(name=jam_name), metadata=metadata)


def recount(platform, jam_id: str, closed_at: dt.datetime) -> Counter:
    """An independent recount from the raw events in Kafka: per participant the set of
    surviving ideas they voted for before the close, each counted once."""
    events = jam_events(platform, jam_id, ("VoteCast", "VoteWithdrawn", "IdeasMerged"))
    events.sort(key=lambda e: e.envelope.sequence)  # store order (Kafka keeps it per aggregate)
    merges: dict[str, str] = {}
    ballots: dict[str, list[str]] = {}
    for event in events:
        p = event.payload
        if event.type_name == "IdeasMerged":
            merges[p.merged_idea_id] = p.into_idea_id
        elif event.type_name == "VoteCast" and dt.datetime.fromisoformat(p.cast_at.replace("Z", "+00:00")) < closed_at:
            ballots.setdefault(p.participant, []).append(p.idea_id)
        elif event.type_name == "VoteWithdrawn":
            ballots[p.participant].remove(p.idea_id)

    def canon(idea: str) -> str:
        while idea in merges:
            idea = merges[idea]
        return idea

    counts: Counter = Counter()
    for votes in ballots.values():
        counts.update({canon(v) for v in votes})
    return counts


def test_phases_move_on_schedule_even_across_a_restart(platform, jams):
    host = platform.author(unique("host"))
    jam_id = unique()
    created = jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Schedule", open_time=ts(3), voting_time=ts(6), close_time=ts(16))), metadata=host)
    assert created.phase == jp.SCHEDULED and created.vote_budget == 10 and created.top_n == 10
    idea = jams.CreateIdea(jp.CreateIdeaRequest(parent=created.name, idea=jp.Idea(title="Seeded by the host")), metadata=host)
    participant = platform.metadata(unique("emp"), "employee")
    early = rpc_error(jams.CreateIdea, jp.CreateIdeaRequest(parent=created.name, idea=jp.Idea(title="Too early")), metadata=participant)
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(early) == ["parent"]
    vote_early = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=created.name, idea=idea.name), metadata=participant)
    assert vote_early.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(vote_early) == ["idea"]

    # The service is down across the open and voting times; on restart it records both, late,
    # with their scheduled times, and answers in the right phase meanwhile.
    platform.platform.kill("jams")
    try:
        voting_at = created.voting_time.ToDatetime(tzinfo=dt.UTC)
        time.sleep(max(0.0, (voting_at - dt.datetime.now(dt.UTC)).total_seconds() + 0.3))
    finally:
        platform.platform.restart("jams")
    jams = platform.stub(jg.JamServiceStub, "jams")
    assert jams.GetJam(jp.GetJamRequest(name=created.name), metadata=participant).phase == jp.VOTING
    ballot = jams.CastVote(jp.CastVoteRequest(jam=created.name, idea=idea.name), metadata=participant)
    assert list(ballot.ideas) == [idea.name] and ballot.votes_left == 9
    thread = rpc_error(jams.CreateThread, jp.CreateThreadRequest(parent=created.name, thread=jp.Thread(idea=idea.name, title="t", body="b")), metadata=participant)
    assert thread.code() == grpc.StatusCode.FAILED_PRECONDITION  # discussion ended with OPEN

    final = eventually(lambda: (j := jams.GetJam(jp.GetJamRequest(name=created.name), metadata=participant)).phase == jp.RESULTS_PUBLISHED and j, timeout=30, message="results published")
    assert final.phase == jp.RESULTS_PUBLISHED
    late = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=created.name, idea=idea.name), metadata=platform.metadata(unique("emp"), "employee"))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION

    changes = eventually(lambda: len(e := jam_events(platform, jam_id, ("JamPhaseChanged",))) >= 3 and e, message="phase events in Kafka")
    scheduled = {"OPEN": created.open_time, "VOTING": created.voting_time, "CLOSED": created.close_time}
    assert [c.payload.to_phase for c in changes] == ["OPEN", "VOTING", "CLOSED"]
    for change in changes:
        assert change.payload.trigger == "schedule"
        assert dt.datetime.fromisoformat(change.payload.at.replace("Z", "+00:00")) == scheduled[change.payload.to_phase].ToDatetime(tzinfo=dt.UTC)
    results = jams.GetJamResults(jp.GetJamResultsRequest(name=created.name), metadata=participant)
    assert [(r.idea, r.votes) for r in results.rows] == [(idea.name, 1)]


def test_host_moves_every_phase_and_actions_outside_their_phase_fail(platform, jams):
    host_id = unique("host")
    host = platform.author(host_id)
    jam_id = unique()
    draft = jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Draft first")), metadata=host)
    assert draft.phase == jp.DRAFT and list(draft.hosts) == [host_id]
    stranger = platform.metadata(unique("emp"), "employee")
    denied = rpc_error(jams.ScheduleJam, jp.ScheduleJamRequest(name=draft.name, open_time=ts(60), voting_time=ts(120), close_time=ts(180)), metadata=stranger)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = rpc_error(jams.ScheduleJam, jp.ScheduleJamRequest(name=draft.name, open_time=ts(60), voting_time=ts(30), close_time=ts(180)), metadata=host)
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad) == ["voting_time"]
    no_schedule = rpc_error(jams.AdvanceJamPhase, jp.AdvanceJamPhaseRequest(name=draft.name, phase=jp.DRAFT), metadata=host)
    assert no_schedule.code() == grpc.StatusCode.FAILED_PRECONDITION
    scheduled = jams.ScheduleJam(jp.ScheduleJamRequest(name=draft.name, open_time=ts(600), voting_time=ts(1200), close_time=ts(1800)), metadata=host)
    assert scheduled.phase == jp.SCHEDULED
    jams.CreateForum(jp.CreateForumRequest(parent=draft.name, forum_id="health", forum=jp.Forum(title="Health")), metadata=host)
    wrong_phase = rpc_error(jams.AdvanceJamPhase, jp.AdvanceJamPhaseRequest(name=draft.name, phase=jp.OPEN), metadata=host)
    assert wrong_phase.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(wrong_phase) == ["phase"]
    phases = []
    for expected in (jp.SCHEDULED, jp.OPEN, jp.VOTING):
        phases.append(jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=draft.name, phase=expected, request_id=str(uuid.uuid4())), metadata=host).phase)
    assert phases == [jp.OPEN, jp.VOTING, jp.CLOSED]
    closed_forum = rpc_error(jams.CreateForum, jp.CreateForumRequest(parent=draft.name, forum_id="late", forum=jp.Forum(title="Late")), metadata=host)
    assert closed_forum.code() == grpc.StatusCode.FAILED_PRECONDITION
    no_results_yet_or_published = eventually(lambda: jams.GetJam(jp.GetJamRequest(name=draft.name), metadata=host).phase == jp.RESULTS_PUBLISHED, timeout=20)
    assert no_results_yet_or_published
    events = eventually(lambda: len(e := jam_events(platform, jam_id, ("JamPhaseChanged", "ResultsPublished"))) == 4 and e, message="phase events")
    assert [(e.type_name, getattr(e.payload, "to_phase", ""), getattr(e.payload, "trigger", "")) for e in events] == [
        ("JamPhaseChanged", "OPEN", "host"), ("JamPhaseChanged", "VOTING", "host"), ("JamPhaseChanged", "CLOSED", "host"), ("ResultsPublished", "", "")]


def test_votes_budget_change_withdraw_and_results_equal_a_recount_from_kafka(platform, jams):
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, budget=2, top_n=3, ideas=5)
    jam_name = f"jams/{jam_id}"
    voters = [platform.metadata(unique("emp"), "employee") for _ in range(6)]
    not_yet = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=ideas[0]), metadata=voters[0])
    assert not_yet.code() == grpc.StatusCode.FAILED_PRECONDITION
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)

    # Ideas 0 and 1 tie at 3 votes, idea 2 has 2, idea 3 has 1, idea 4 none.
    plan = [(0, 1), (0, 1), (0, 2), (1, 2), (3,), ()]
    for voter, picks in zip(voters, plan, strict=True):
        for pick in picks:
            jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=ideas[pick], request_id=str(uuid.uuid4())), metadata=voter)
    # Bad input: nothing is stored for any of these.
    twice = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=ideas[0]), metadata=voters[0])
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(twice) == ["idea"]
    over = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=ideas[4]), metadata=voters[0])
    assert over.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(over) == ["idea"]
    unknown = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=f"{jam_name}/ideas/{uuid.uuid4()}"), metadata=voters[0])
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(unknown) == ["idea"]
    malformed = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea="ideas/1"), metadata=voters[0])
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(malformed) == ["idea"]
    alumni = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=ideas[4]), metadata=platform.metadata(unique("alum"), "alumni"))
    assert alumni.code() == grpc.StatusCode.NOT_FOUND  # an INTERNAL jam is not theirs to see

    # Change (atomic) and withdraw; the retry of a change with its request id changes nothing more.
    change = jp.ChangeVoteRequest(jam=jam_name, from_idea=ideas[1], to_idea=ideas[4], request_id=str(uuid.uuid4()))
    changed = jams.ChangeVote(change, metadata=voters[3])
    assert list(changed.ideas) == [ideas[2], ideas[4]]
    assert jams.ChangeVote(change, metadata=voters[3]) == changed
    bad_change = rpc_error(jams.ChangeVote, jp.ChangeVoteRequest(jam=jam_name, from_idea=ideas[3], to_idea=ideas[0]), metadata=voters[3])
    assert bad_change.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(bad_change) == ["from_idea"]
    withdrawn = jams.WithdrawVote(jp.WithdrawVoteRequest(jam=jam_name, idea=ideas[3]), metadata=voters[4])
    assert list(withdrawn.ideas) == [] and withdrawn.votes_left == 2
    jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=ideas[1]), metadata=voters[5])
    ballot = jams.GetBallot(jp.GetBallotRequest(name=f"{jam_name}/ballots/-"), metadata=voters[0])
    assert list(ballot.ideas) == [ideas[0], ideas[1]] and ballot.votes_left == 0
    other = rpc_error(jams.GetBallot, jp.GetBallotRequest(name=ballot.name), metadata=voters[1])
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED
    # Now: idea 0 -> 3, idea 1 -> 3 (v0, v1, v5), idea 2 -> 2, idea 4 -> 1, idea 3 -> 0.
    early = rpc_error(jams.GetJamResults, jp.GetJamResultsRequest(name=jam_name), metadata=voters[0])
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION

    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.VOTING), metadata=host)
    after = rpc_error(jams.WithdrawVote, jp.WithdrawVoteRequest(jam=jam_name, idea=ideas[0]), metadata=voters[0])
    assert after.code() == grpc.StatusCode.FAILED_PRECONDITION
    results = published_results(jams, jam_name, voters[0])
    rows = [(r.rank, r.idea, r.votes) for r in results.rows]
    # Tie-break: equal votes -> the earlier-proposed idea (smaller time-ordered id) first; top 3 only.
    assert rows == [(1, ideas[0], 3), (2, ideas[1], 3), (3, ideas[2], 2)]
    assert results.votes_counted == 9 and results.participants_counted == 5 and "earlier" in results.tie_break

    # Replaying the raw vote events from Kafka gives exactly the published counts.
    closed_at = results.closed_at.ToDatetime(tzinfo=dt.UTC)
    counts = eventually(lambda: (c := recount(platform, jam_id, closed_at)) and sum(c.values()) == 9 and c, message="votes in Kafka")
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(f"{jam_name}/ideas/{i}", n) for i, n in expected] == [(r.idea, r.votes) for r in results.rows]
    published = eventually(lambda: jam_events(platform, jam_id, ("ResultsPublished",)), message="ResultsPublished in Kafka")
    assert [(e.idea_id, e.votes) for e in published[0].payload.entries] == [(i, n) for i, n in expected]

    exported = jams.ExportJamResults(jp.ExportJamResultsRequest(name=jam_name, format="csv"), metadata=voters[0])
    lines = exported.data.decode().splitlines()
    assert lines[0] == "rank,idea,title,votes" and lines[1] == f"1,{ideas[0]},Project 0,3" and len(lines) == 4
    as_json = json.loads(jams.ExportJamResults(jp.ExportJamResultsRequest(name=jam_name, format="json"), metadata=voters[0]).data)
    assert [r["votes"] for r in as_json["results"]] == [3, 3, 2]
    bad_format = rpc_error(jams.ExportJamResults, jp.ExportJamResultsRequest(name=jam_name, format="xlsx"), metadata=voters[0])
    assert bad_format.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad_format) == ["format"]


def test_merged_votes_carry_over_without_counting_anyone_twice(platform, jams):
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, budget=2, ideas=3)
    jam_name = f"jams/{jam_id}"
    a, b, c = ideas
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)
    both, only_b, only_a = (platform.metadata(unique("emp"), "employee") for _ in range(3))
    for voter, picks in ((both, (a, b)), (only_b, (b,)), (only_a, (a,))):
        for pick in picks:
            jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=pick), metadata=voter)
    not_host = rpc_error(jams.MergeIdeas, jp.MergeIdeasRequest(name=b, into=a), metadata=only_a)
    assert not_host.code() == grpc.StatusCode.PERMISSION_DENIED
    merged = jams.MergeIdeas(jp.MergeIdeasRequest(name=b, into=a), metadata=host)
    assert merged.merged_into == a
    # The participant who voted for both counts once, and got a vote back.
    ballot = jams.GetBallot(jp.GetBallotRequest(name=f"{jam_name}/ballots/-"), metadata=both)
    assert list(ballot.ideas) == [a] and ballot.votes_left == 1
    jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=c), metadata=both)
    for_merged = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=b), metadata=platform.metadata(unique("emp"), "employee"))
    assert for_merged.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(for_merged) == ["idea"]
    again = rpc_error(jams.CastVote, jp.CastVoteRequest(jam=jam_name, idea=a), metadata=only_b)
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    twice = rpc_error(jams.MergeIdeas, jp.MergeIdeasRequest(name=b, into=c), metadata=host)
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION

    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.VOTING), metadata=host)
    results = published_results(jams, jam_name, host)
    assert [(r.idea, r.votes) for r in results.rows] == [(a, 3), (c, 1)]
    closed_at = results.closed_at.ToDatetime(tzinfo=dt.UTC)
    counts = eventually(lambda: (n := recount(platform, jam_id, closed_at)) and sum(n.values()) == 4 and n, message="votes in Kafka")
    assert counts == Counter({a.rsplit("/", 1)[1]: 3, c.rsplit("/", 1)[1]: 1})


def test_guests_redeem_single_use_codes_and_reach_only_their_jam(platform, jams):
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(jams, host, ideas=1)
    other_id, _ = open_jam(jams, host, ideas=1)
    jam_name = f"jams/{jam_id}"
    invitation = jams.CreateInvitation(jp.CreateInvitationRequest(parent=jam_name, label="partner at ACME"), metadata=host)
    assert len(invitation.code) >= 20
    employee_cannot = rpc_error(jams.CreateInvitation, jp.CreateInvitationRequest(parent=jam_name), metadata=platform.metadata(unique("emp"), "employee"))
    assert employee_cannot.code() == grpc.StatusCode.PERMISSION_DENIED

    guest_subject = unique("guest")
    guest_identity = platform.metadata(guest_subject, "guest")
    wrong_jam = rpc_error(jams.RedeemInvitation, jp.RedeemInvitationRequest(code=invitation.code, jam=f"jams/{other_id}"), metadata=guest_identity)
    assert wrong_jam.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(wrong_jam) == ["code"]
    no_code = rpc_error(jams.RedeemInvitation, jp.RedeemInvitationRequest(code="made-up-code", jam=jam_name), metadata=guest_identity)
    assert no_code.code() == grpc.StatusCode.PERMISSION_DENIED
    redeemed = jams.RedeemInvitation(jp.RedeemInvitationRequest(code=invitation.code, jam=jam_name), metadata=guest_identity)
    assert list(redeemed.jams) == [jam_name]
    used = rpc_error(jams.RedeemInvitation, jp.RedeemInvitationRequest(code=invitation.code, jam=jam_name), metadata=platform.metadata(unique("guest"), "guest"))
    assert used.code() == grpc.StatusCode.FAILED_PRECONDITION and bad_request_fields(used) == ["code"]

    guest = (("authorization", f"Bearer {redeemed.token}"),)
    assert jams.GetJam(jp.GetJamRequest(name=jam_name), metadata=guest).title == "Innovation Jam"
    platform.accept_guest_guidelines(guest_subject)  # they write what the jam reads
    idea = jams.CreateIdea(jp.CreateIdeaRequest(parent=jam_name, idea=jp.Idea(title="From a client")), metadata=guest)
    assert idea.author == guest_subject and not idea.seeded
    hidden = rpc_error(jams.GetJam, jp.GetJamRequest(name=f"jams/{other_id}"), metadata=guest)
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    write_elsewhere = rpc_error(jams.CreateIdea, jp.CreateIdeaRequest(parent=f"jams/{other_id}", idea=jp.Idea(title="x")), metadata=guest)
    assert write_elsewhere.code() == grpc.StatusCode.NOT_FOUND
    jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam_name, phase=jp.OPEN), metadata=host)
    assert list(jams.CastVote(jp.CastVoteRequest(jam=jam_name, idea=idea.name), metadata=guest).ideas) == [idea.name]
    # The code itself never leaves the service: only its hash names the invitation.
    events = eventually(lambda: jam_events(platform, jam_id, ("InvitationCreated", "InvitationRedeemed")), message="invitation events")
    assert all(invitation.code not in str(e.envelope) for e in events)


def test_demo_jam_seeds_once(platform, jams):
    from tools.seed import seed_jam, seed_profiles

    seed = int(uuid.uuid4().int % 100000)
    seed_profiles(platform.settings, 3, seed=seed)  # the seeded people who start threads (as `make run` seeds them)
    assert seed_jam(platform.settings, 3, seed=seed) == 15  # 12 projects, 3 threads
    assert seed_jam(platform.settings, 3, seed=seed) == 0
    demo = jams.GetJam(jp.GetJamRequest(name=f"jams/innovation-jam-{seed}"), metadata=platform.metadata("e000001", "employee"))
    assert demo.phase == jp.OPEN and {f.name.rsplit("/", 1)[1] for f in demo.forums} == {"research", "workplace"}


def test_list_jams_pages_through_what_the_caller_may_see(platform, jams):
    host = platform.author(unique("host"))
    mine = [jams.CreateJam(jp.CreateJamRequest(jam_id=unique(), jam=jp.Jam(title=f"Listed {n}")), metadata=host).name for n in range(3)]
    seen: list[str] = []
    token = ""
    while True:
        page = jams.ListJams(jp.ListJamsRequest(page_size=2, page_token=token), metadata=host)
        assert len(page.jams) <= 2
        seen.extend(j.name for j in page.jams)
        token = page.next_page_token
        if not token:
            break
    assert [n for n in seen if n in mine] == mine and len(seen) == len(set(seen))
    guest = platform.metadata(unique("guest"), "guest", jams=(mine[0].split("/")[1],))
    # The guest sees the jam that invited them, and PUBLIC jams (other tests may have made some).
    guest_sees = jams.ListJams(jp.ListJamsRequest(page_size=100), metadata=guest).jams
    assert [j.name for j in guest_sees if j.name in mine] == [mine[0]]
    assert all(j.name == mine[0] or j.visibility == jp.Jam.PUBLIC for j in guest_sees)
    bad = rpc_error(jams.ListJams, jp.ListJamsRequest(page_token="garbage"), metadata=host)
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad) == ["page_token"]

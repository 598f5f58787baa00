"""Jams domain rules without servers: phases, ballots, merges, the tally, event conversion."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from services.jams.domainmodel import (
    CLOSED,
    DRAFT,
    OPEN,
    RESULTS_GRACE,
    RESULTS_PUBLISHED,
    SCHEDULED,
    VOTING,
    Ballot,
    Idea,
    Invitation,
    Jam,
    Reply,
    Tally,
    Thread,
    invitation_id,
)
from watercooler.envelope import decode, to_envelope
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def scheduled_jam(budget: int = 3, top_n: int = 10) -> Jam:
    return Jam.create("innovation-jam", "Innovation Jam", "", "host1", budget, top_n, "INTERNAL", (at(10), at(20), at(30)), T0)


def idea(jam: Jam, n: int) -> Idea:
    return Idea.propose(jam, f"0000000{n}-0000-7000-8000-000000000000", f"idea {n}", "", "host1", True, "", T0)


def test_schedule_is_validated_and_ordered():
    with pytest.raises(InvalidArgument) as error:
        Jam.create("jam-x", "t", "", "h", 0, 0, "INTERNAL", (at(-1), at(20), at(30)), T0)
    assert error.value.field == "open_time"
    with pytest.raises(InvalidArgument) as error:
        Jam.create("jam-x", "t", "", "h", 0, 0, "INTERNAL", (at(10), at(5), at(30)), T0)
    assert error.value.field == "voting_time"
    with pytest.raises(InvalidArgument) as error:
        Jam.create("jam-x", "t", "", "h", 0, 0, "INTERNAL", (at(10), None, None), T0)
    assert error.value.field == "voting_time"
    with pytest.raises(InvalidArgument) as error:
        Jam.create("Bad Id", "t", "", "h", 0, 0, "INTERNAL", (None, None, None), T0)
    assert error.value.field == "jam_id"
    draft = Jam.create("jam-x", "t", "", "h", 0, 0, "INTERNAL", (None, None, None), T0)
    assert draft.phase == DRAFT and draft.vote_budget == 10 and draft.top_n == 10


def test_phase_follows_the_schedule_even_before_it_is_recorded():
    jam = scheduled_jam()
    assert [jam.phase_at(at(s)) for s in (0, 10, 19.9, 20, 30, 300)] == [SCHEDULED, OPEN, OPEN, VOTING, CLOSED, CLOSED]
    # A restart that missed every time records each change with its scheduled time.
    recorded = jam.catch_up(at(100))
    assert recorded == [OPEN, VOTING, CLOSED]
    changes = [e for e in jam.collect_events() if type(e).__name__ == "JamPhaseChanged"]
    assert [(e.to_phase, e.at, e.trigger) for e in changes] == [
        (OPEN, "2030-01-01T00:00:10Z", "schedule"), (VOTING, "2030-01-01T00:00:20Z", "schedule"), (CLOSED, "2030-01-01T00:00:30Z", "schedule")]
    assert jam.closed_at == at(30)
    assert jam.due_transitions(at(30) + RESULTS_GRACE) == [(RESULTS_PUBLISHED, at(30) + RESULTS_GRACE)]


def test_host_advances_early_and_must_name_the_current_phase():
    jam = scheduled_jam()
    with pytest.raises(FailedPrecondition):
        jam.advance(OPEN, at(1))
    assert jam.advance(SCHEDULED, at(1)) == OPEN
    assert jam.phase_at(at(2)) == OPEN
    assert jam.advance(OPEN, at(3)) == VOTING
    assert jam.advance(VOTING, at(4)) == CLOSED
    assert jam.closed_at == at(4)
    with pytest.raises(FailedPrecondition):
        jam.advance(CLOSED, at(5))


def test_ballot_budget_one_vote_per_idea_change_and_withdraw():
    jam = scheduled_jam(budget=2)
    ideas = [idea(jam, n) for n in range(4)]
    ballot = Ballot(jam_id=jam.jam_id, participant="p1", participant_kind="employee")
    with pytest.raises(FailedPrecondition) as error:
        ballot.cast(jam, ideas[0], at(15))  # OPEN: discussion, not voting yet
    assert error.value.field == "idea"
    ballot.cast(jam, ideas[0], at(21))
    with pytest.raises(AlreadyExists):
        ballot.cast(jam, ideas[0], at(21))
    ballot.cast(jam, ideas[1], at(21))
    with pytest.raises(FailedPrecondition, match="votes are used"):
        ballot.cast(jam, ideas[2], at(21))
    ballot.withdraw(jam, ideas[0].idea_id, at(22))
    ballot.cast(jam, ideas[2], at(22))
    assert ballot.effective(jam) == [ideas[1].idea_id, ideas[2].idea_id]
    with pytest.raises(NotFound):
        ballot.withdraw(jam, ideas[3].idea_id, at(22))
    with pytest.raises(FailedPrecondition):
        ballot.withdraw(jam, ideas[1].idea_id, at(30))  # closed at 30 even if nobody recorded it


def test_merge_counts_a_participant_once_and_frees_a_vote():
    jam = scheduled_jam(budget=2)
    a, b, c = idea(jam, 1), idea(jam, 2), idea(jam, 3)
    both = Ballot(jam_id=jam.jam_id, participant="both", participant_kind="employee")
    both.cast(jam, a, at(21))
    both.cast(jam, b, at(21))
    only_b = Ballot(jam_id=jam.jam_id, participant="only-b", participant_kind="employee")
    only_b.cast(jam, b, at(21))
    jam.merge(b, a, at(22))
    assert b.merged_into == a.idea_id and jam.canonical(b.idea_id) == a.idea_id
    assert both.effective(jam) == [a.idea_id]
    both.cast(jam, c, at(23))  # the merge freed one vote
    with pytest.raises(AlreadyExists):
        only_b.cast(jam, a, at(23))  # their vote for b already counts for a
    with pytest.raises(FailedPrecondition) as error:
        Ballot(jam_id=jam.jam_id, participant="x", participant_kind="employee").cast(jam, b, at(23))
    assert "merged" in error.value.message
    with pytest.raises(FailedPrecondition):
        jam.merge(b, c, at(23))  # already merged away
    # Withdrawing the surviving idea withdraws every vote that counts for it.
    both.withdraw(jam, a.idea_id, at(24))
    assert both.effective(jam) == [c.idea_id]


def test_tally_merge_and_tie_break():
    tally = Tally()
    for participant, ideas in {"p1": "ab", "p2": "b", "p3": "c", "p4": "cd", "p5": "d"}.items():
        for i in ideas:
            tally.cast(participant, i)
    assert tally.counts() == {"a": 1, "b": 2, "c": 2, "d": 2}
    tally.merge("b", "a")  # p1 voted both: counts once
    assert tally.counts() == {"a": 2, "c": 2, "d": 2}
    assert tally.ranking(2) == [("a", 2), ("c", 2)]  # equal votes: smaller (earlier) id first
    tally.withdraw("p2", "b")
    assert tally.counts() == {"a": 1, "c": 2, "d": 2}
    tally.cast("p2", "b")
    tally.cast("p2", "b")  # a redelivered event changes nothing
    assert tally.counts()["a"] == 2 and tally.votes_counted() == 6 and tally.participants_counted() == 5


def test_tally_equals_a_naive_recount_on_random_histories():
    rng = random.Random(7)
    for _ in range(30):
        tally = Tally()
        ballots: dict[str, set[str]] = {}
        merges: dict[str, str] = {}
        ideas = [f"i{n}" for n in range(8)]

        def canon(i: str, merges: dict[str, str] = merges) -> str:
            while i in merges:
                i = merges[i]
            return i

        for _ in range(300):
            p = f"p{rng.randrange(20)}"
            roll = rng.random()
            if roll < 0.6:
                i = rng.choice(ideas)
                if i not in merges and canon(i) not in {canon(x) for x in ballots.get(p, set())}:
                    ballots.setdefault(p, set()).add(i)
                    tally.cast(p, i)
            elif roll < 0.95 and ballots.get(p):
                i = rng.choice(sorted(ballots[p]))
                ballots[p].discard(i)
                tally.withdraw(p, i)
            else:
                live = [i for i in ideas if i not in merges]
                if len(live) > 2:
                    x, y = rng.sample(live, 2)
                    merges[x] = y
                    tally.merge(x, y)
        expected: dict[str, int] = {}
        for votes in ballots.values():
            for i in {canon(v) for v in votes}:
                expected[i] = expected.get(i, 0) + 1
        assert tally.counts() == expected


def test_invitation_is_single_use_and_bound_to_its_jam():
    invitation = Invitation.issue("secret", jam_id="jam-a", invited_by="h", label="", expire_time="2099-01-01T00:00:00Z")
    with pytest.raises(PermissionDenied) as error:
        invitation.redeem("jam-b", "guest1", T0)
    assert error.value.field == "code"
    assert invitation.id == invitation_id("secret")
    invitation.redeem("jam-a", "guest1", T0)
    with pytest.raises(FailedPrecondition):
        invitation.redeem("jam-a", "guest2", T0)


def test_every_jam_event_converts_to_its_envelope():
    jam = scheduled_jam()
    jam.create_forum("health", "Health", "", at(1))
    a, b = idea(jam, 1), idea(jam, 2)
    ballot = Ballot(jam_id=jam.jam_id, participant="p", participant_kind="guest")
    ballot.cast(jam, a, at(21))
    ballot.withdraw(jam, a.idea_id, at(22))
    jam.merge(b, a, at(23))
    jam.catch_up(at(40))
    tally = Tally()
    tally.cast("p", a.idea_id)
    jam.publish_results(tally, {a.idea_id: "idea 1"}, authors={a.idea_id: a.author})
    invitation = Invitation.issue("code", jam_id=jam.jam_id, invited_by="h", label="", expire_time="")
    invitation.redeem(jam.jam_id, "g", T0)
    thread = Thread(jam_id=jam.jam_id, thread_id="t", forum_id="health", idea_id="", title="t", body="b", author="a", author_kind="employee")
    reply = Reply(jam_id=jam.jam_id, thread_id="t", reply_id="r", forum_id="health", idea_id="", body="b", author="a", author_kind="employee")
    names = set()
    for aggregate in (jam, a, b, ballot, invitation, thread, reply):
        for n, domain_event in enumerate(aggregate.collect_events(), start=1):
            envelope = to_envelope("jams", domain_event, sequence=n)
            names.add(decode(envelope.SerializeToString()).type_name)
    assert {"JamCreated", "ForumCreated", "IdeasMerged", "JamPhaseChanged", "ResultsPublished", "IdeaCreated", "IdeaMergedInto",
            "BallotCreated", "VoteCast", "VoteWithdrawn", "InvitationCreated", "InvitationRedeemed", "ThreadCreated", "ReplyCreated"} <= names
    # The idea's author rides along: whose key seals the copied title (watercooler.personaldata).
    assert jam.results["entries"] == [{"rank": 1, "idea_id": a.idea_id, "title": "idea 1", "votes": 1, "author": a.author}] and a.author

"""Jams: timed crowd events where many people discuss ideas and vote the top N.

Aggregates, chosen so that a crowd of 500,000 does not queue on one version number:
- ``Jam``: hosts, schedule, phase, forums and the (few) idea merges.  Changed by hosts
  and by the scheduler only.
- ``Idea``: one per idea; proposing ideas never contends on the jam.
- ``Ballot``: one per (jam, participant) holding that participant's <= budget votes, so
  one participant's changes are serialised and the budget check is exact, while
  different participants never conflict.  Tallies are kept from the vote events (the
  stream processors live, ``Tally`` at close).
- ``Invitation``: keyed by the (secret) code, so a second redemption collides.
- ``Thread`` and ``Reply``: discussion, one aggregate each (a busy thread is not a hot spot).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from eventsourcing.domain import event

from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import EventSourcedAggregate, stable_id
from watercooler.jam_ids import ballot_id as ballot_id  # re-exported: jam identities are shared with the read side
from watercooler.jam_ids import idea_aggregate_id as idea_aggregate_id
from watercooler.jam_ids import jam_id_of as jam_id_of
from watercooler.moderation import Flaggable
from watercooler.tally import Tally as Tally
from watercooler.text import clean, has_control_characters
from watercooler.visibility import INTERNAL, PUBLIC

DRAFT, SCHEDULED, OPEN, VOTING, CLOSED, RESULTS_PUBLISHED = "DRAFT", "SCHEDULED", "OPEN", "VOTING", "CLOSED", "RESULTS_PUBLISHED"
PHASES = (DRAFT, SCHEDULED, OPEN, VOTING, CLOSED, RESULTS_PUBLISHED)

DEFAULT_VOTE_BUDGET = 10
MAX_VOTE_BUDGET = 100
DEFAULT_TOP_N = 10
MAX_TOP_N = 1000
# Results are counted this long after the close, so a vote accepted in the last
# millisecond is already in the store when the count reads it.
RESULTS_GRACE = dt.timedelta(seconds=1)

TIE_BREAK = (
    "more votes first; equal votes: the idea proposed earlier first (idea ids are "
    "time-ordered UUIDv7, compared as strings); merged-away ideas are not ranked, "
    "their votes count for the surviving idea"
)

_SLUG = re.compile(r"^[a-z][a-z0-9-]{2,62}$")
_FORUM = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LIMITS = {"title": 300, "description": 20000, "body": 20000, "label": 200}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def invitation_id(code: str) -> Any:
    # The code is a secret: the id is derived from its hash and the code is never stored.
    return stable_id("jam-invitation", hashlib.sha256(code.encode()).hexdigest())


def thread_aggregate_id(jam: str, thread: str) -> Any:
    return stable_id("jam-thread", jam, thread)


def reply_aggregate_id(jam: str, thread: str, reply: str) -> Any:
    return stable_id("jam-reply", jam, thread, reply)


def validate_slug(value: str, field: str) -> str:
    if not _SLUG.match(value or ""):
        raise InvalidArgument("must be 3-63 characters of a-z, 0-9 and '-', starting with a letter", field=field)
    return value


def validate_forum_id(value: str, field: str = "forum_id") -> str:
    if not _FORUM.match(value or ""):
        raise InvalidArgument("must be 1-63 characters of a-z, 0-9 and '-'", field=field)
    return value


def text(name: str, value: str, required: bool = False, field: str | None = None, multiline: bool = False) -> str:
    field = field or name
    value = clean(value or "")
    if required and not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > LIMITS[name]:
        raise InvalidArgument(f"must be at most {LIMITS[name]} characters", field=field)
    if has_control_characters(value, allow_newlines=multiline):
        raise InvalidArgument("must not contain control characters", field=field)
    return value


def iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else ""


def parse_iso(value: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def validate_schedule(open_time: dt.datetime | None, voting_time: dt.datetime | None, close_time: dt.datetime | None, at: dt.datetime) -> None:
    for field, value in (("open_time", open_time), ("voting_time", voting_time), ("close_time", close_time)):
        if value is None:
            raise InvalidArgument("is required to schedule a jam", field=field)
    assert open_time and voting_time and close_time
    if open_time <= at:
        raise InvalidArgument("must be in the future", field="open_time")
    if voting_time <= open_time:
        raise InvalidArgument("must be after open_time", field="voting_time")
    if close_time <= voting_time:
        raise InvalidArgument("must be after voting_time", field="close_time")


class Jam(EventSourcedAggregate):
    @staticmethod
    def create_id(jam_id: str) -> Any:
        return jam_id_of(jam_id)

    @event("JamCreated")
    def __init__(
        self,
        jam_id: str,
        title: str,
        description: str,
        hosts: list[str],
        vote_budget: int,
        top_n: int,
        visibility: str,
        open_time: str,
        voting_time: str,
        close_time: str,
    ):
        self.jam_id = jam_id
        self.title = title
        self.description = description
        self.hosts = list(hosts)
        self.vote_budget = vote_budget
        self.top_n = top_n
        self.visibility = visibility
        self.open_time = parse_iso(open_time)
        self.voting_time = parse_iso(voting_time)
        self.close_time = parse_iso(close_time)
        self.phase = SCHEDULED if self.open_time else DRAFT
        self.closed_at: dt.datetime | None = None
        self.forums: dict[str, dict[str, str]] = {}
        self.merges: dict[str, str] = {}
        self.results: dict[str, Any] | None = None

    @classmethod
    def create(cls, jam_id: str, title: str, description: str, host: str, vote_budget: int, top_n: int, visibility: str,
               schedule: tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None], at: dt.datetime) -> Jam:
        validate_slug(jam_id, "jam_id")
        title = text("title", title, required=True)
        description = text("description", description, multiline=True)
        vote_budget = vote_budget or DEFAULT_VOTE_BUDGET
        if not 1 <= vote_budget <= MAX_VOTE_BUDGET:
            raise InvalidArgument(f"must be 1-{MAX_VOTE_BUDGET}", field="vote_budget")
        top_n = top_n or DEFAULT_TOP_N
        if not 1 <= top_n <= MAX_TOP_N:
            raise InvalidArgument(f"must be 1-{MAX_TOP_N}", field="top_n")
        if visibility not in (INTERNAL, PUBLIC):
            raise InvalidArgument("must be INTERNAL or PUBLIC", field="visibility")
        if any(schedule):
            validate_schedule(*schedule, at=at)
        return cls(
            jam_id=jam_id, title=title, description=description, hosts=[host], vote_budget=vote_budget, top_n=top_n,
            visibility=visibility, open_time=iso(schedule[0]), voting_time=iso(schedule[1]), close_time=iso(schedule[2]),
        )

    # --- phases ----------------------------------------------------------------------------
    def scheduled_time(self, phase: str) -> dt.datetime | None:
        """When the schedule moves the jam *into* ``phase``."""
        if phase == OPEN:
            return self.open_time
        if phase == VOTING:
            return self.voting_time
        if phase == CLOSED:
            return self.close_time
        if phase == RESULTS_PUBLISHED:
            closed = self.closed_at or self.close_time
            return closed + RESULTS_GRACE if closed else None
        return None

    def due_transitions(self, at: dt.datetime) -> list[tuple[str, dt.datetime]]:
        """Scheduled changes whose time has come but which are not recorded yet, in order."""
        if self.phase in (DRAFT, RESULTS_PUBLISHED):
            return []
        due = []
        index = PHASES.index(self.phase)
        for phase in PHASES[index + 1:]:
            when = self.scheduled_time(phase)
            if when is None or when > at:
                break
            due.append((phase, when))
        return due

    def phase_at(self, at: dt.datetime) -> str:
        """The phase at ``at``: recorded changes plus scheduled ones already due.  Commands
        check this, so a late scheduler never lets an action through after its time."""
        due = [p for p, _ in self.due_transitions(at) if p != RESULTS_PUBLISHED]
        return due[-1] if due else self.phase

    def require_phase(self, at: dt.datetime, *allowed: str, action: str, field: str = "phase") -> None:
        current = self.phase_at(at)
        if current not in allowed:
            raise FailedPrecondition(f"cannot {action} while the jam is {current}; allowed in {', '.join(allowed)}", field=field, phase=current)

    def schedule(self, open_time: dt.datetime | None, voting_time: dt.datetime | None, close_time: dt.datetime | None, at: dt.datetime) -> None:
        if self.phase != DRAFT:
            raise FailedPrecondition(f"only a DRAFT jam can be scheduled; it is {self.phase}", field="name")
        validate_schedule(open_time, voting_time, close_time, at)
        self._scheduled(open_time=iso(open_time), voting_time=iso(voting_time), close_time=iso(close_time))

    @event("JamScheduled")
    def _scheduled(self, open_time: str, voting_time: str, close_time: str) -> None:
        self.open_time = parse_iso(open_time)
        self.voting_time = parse_iso(voting_time)
        self.close_time = parse_iso(close_time)
        self.phase = SCHEDULED

    def advance(self, expected: str, at: dt.datetime) -> str:
        """A host moves the jam to the next phase now.  Due scheduled changes are
        recorded first; then ``expected`` must be the phase the jam is in."""
        self.catch_up(at)
        if expected and expected != self.phase:
            raise FailedPrecondition(f"the jam is {self.phase}, not {expected}", field="phase", phase=self.phase)
        if self.phase == DRAFT:
            raise FailedPrecondition("schedule the jam first (ScheduleJam)", field="phase", phase=self.phase)
        if self.phase in (CLOSED, RESULTS_PUBLISHED):
            raise FailedPrecondition(f"a {self.phase} jam has no next phase a host can move to; results are published by the service", field="phase", phase=self.phase)
        target = PHASES[PHASES.index(self.phase) + 1]
        self._phase_changed(from_phase=self.phase, to_phase=target, at=iso(at), trigger="host")
        return target

    def catch_up(self, at: dt.datetime) -> list[str]:
        """Record the scheduled changes that are due (not the results: they need a count)."""
        recorded = []
        for phase, when in self.due_transitions(at):
            if phase == RESULTS_PUBLISHED:
                break
            self._phase_changed(from_phase=self.phase, to_phase=phase, at=iso(when), trigger="schedule")
            recorded.append(phase)
        return recorded

    @event("JamPhaseChanged")
    def _phase_changed(self, from_phase: str, to_phase: str, at: str, trigger: str) -> None:
        self.phase = to_phase
        if to_phase == CLOSED:
            self.closed_at = parse_iso(at)

    def publish_results(self, tally: Tally, titles: dict[str, str], hidden: Iterable[str] = (), authors: dict[str, str] | None = None) -> None:
        """``authors``: each idea's author, whose key seals its title copied into the results."""
        if self.phase != CLOSED or self.closed_at is None:
            raise FailedPrecondition(f"results are published after the jam is CLOSED; it is {self.phase}", field="phase", phase=self.phase)
        authors = authors or {}
        entries = [
            {"rank": rank, "idea_id": idea, "title": titles.get(idea, ""), "votes": votes, "author": authors.get(idea, "")}
            for rank, (idea, votes) in enumerate(tally.ranking(self.top_n, exclude={*self.merges, *hidden}), start=1)
        ]
        self._results_published(
            jam_id=self.jam_id, closed_at=iso(self.closed_at), top_n=self.top_n, entries=entries,
            votes_counted=tally.votes_counted(), participants_counted=tally.participants_counted(), tie_break=TIE_BREAK,
        )

    @event("ResultsPublished")
    def _results_published(self, jam_id: str, closed_at: str, top_n: int, entries: list[dict[str, Any]], votes_counted: int, participants_counted: int, tie_break: str) -> None:
        self.phase = RESULTS_PUBLISHED
        self.results = {"entries": entries, "votes_counted": votes_counted, "participants_counted": participants_counted, "tie_break": tie_break, "closed_at": closed_at}

    # --- content owned by the jam ------------------------------------------------------------
    def is_host(self, subject: str) -> bool:
        return subject in self.hosts

    def create_forum(self, forum_id: str, title: str, description: str, at: dt.datetime) -> None:
        validate_forum_id(forum_id)
        self.require_phase(at, DRAFT, SCHEDULED, OPEN, action="add forums", field="parent")
        if forum_id in self.forums:
            raise AlreadyExists(f"forum {forum_id} already exists", field="forum_id")
        self._forum_created(forum_id=forum_id, title=text("title", title, required=True), description=text("description", description, multiline=True))

    @event("ForumCreated")
    def _forum_created(self, forum_id: str, title: str, description: str) -> None:
        self.forums[forum_id] = {"title": title, "description": description}

    def canonical(self, idea_id: str) -> str:
        """The surviving idea a vote for ``idea_id`` counts for (merges may chain)."""
        return canonical(self.merges, idea_id)

    def merge(self, merged: Idea, into: Idea, at: dt.datetime) -> None:
        self.require_phase(at, OPEN, VOTING, action="merge ideas", field="name")
        if merged.idea_id == into.idea_id:
            raise InvalidArgument("an idea cannot be merged into itself", field="into")
        if merged.merged_into:
            raise FailedPrecondition(f"idea {merged.idea_id} was already merged into {merged.merged_into}", field="name")
        if into.merged_into:
            raise FailedPrecondition(f"idea {into.idea_id} was merged into {into.merged_into}; merge into that one", field="into")
        self._ideas_merged(merged_idea_id=merged.idea_id, into_idea_id=into.idea_id)
        merged.merge_into(into.idea_id)

    @event("IdeasMerged")
    def _ideas_merged(self, merged_idea_id: str, into_idea_id: str) -> None:
        self.merges[merged_idea_id] = into_idea_id

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def canonical(merges: dict[str, str], idea_id: str) -> str:
    seen = 0
    while idea_id in merges and seen < 10_000:
        idea_id = merges[idea_id]
        seen += 1
    return idea_id


class Idea(Flaggable):
    """Flags (watercooler.moderation): ideas cannot be edited, so restore votes (or a
    service) bring a hidden one back."""

    @staticmethod
    def create_id(jam_id: str, idea_id: str) -> Any:
        return idea_aggregate_id(jam_id, idea_id)

    @event("IdeaCreated")
    def __init__(self, jam_id: str, idea_id: str, title: str, description: str, author: str, seeded: bool, forum_id: str):
        self.jam_id = jam_id
        self.idea_id = idea_id
        self.title = title
        self.description = description
        self.author = author
        self.seeded = seeded
        self.forum_id = forum_id
        self.merged_into = ""
        self.author_id = author
        self._init_flags()

    @classmethod
    def propose(cls, jam: Jam, idea_id: str, title: str, description: str, author: str, as_host: bool, forum_id: str, at: dt.datetime) -> Idea:
        if as_host:
            jam.require_phase(at, DRAFT, SCHEDULED, OPEN, action="seed ideas", field="parent")
        else:
            jam.require_phase(at, OPEN, action="propose ideas", field="parent")
        if forum_id and forum_id not in jam.forums:
            raise NotFound(f"forum {forum_id} not found in jams/{jam.jam_id}", field="forum")
        return cls(
            jam_id=jam.jam_id, idea_id=idea_id, title=text("title", title, required=True),
            description=text("description", description, multiline=True), author=author, seeded=as_host, forum_id=forum_id,
        )

    def merge_into(self, into_idea_id: str) -> None:
        self._merged_into(jam_id=self.jam_id, idea_id=self.idea_id, into_idea_id=into_idea_id)

    @event("IdeaMergedInto")
    def _merged_into(self, jam_id: str, idea_id: str, into_idea_id: str) -> None:
        self.merged_into = into_idea_id


class Ballot(EventSourcedAggregate):
    """One participant's votes in one jam.  ``votes`` holds the ideas as cast; what they
    count for is their canonical (surviving) idea, so a merge needs no ballot rewrite."""

    @staticmethod
    def create_id(jam_id: str, participant: str) -> Any:
        return ballot_id(jam_id, participant)

    @event("BallotCreated")
    def __init__(self, jam_id: str, participant: str, participant_kind: str):
        self.jam_id = jam_id
        self.participant = participant
        self.participant_kind = participant_kind
        self.votes: list[str] = []

    def effective(self, jam: Jam) -> list[str]:
        """The surviving ideas this ballot counts for, each once, in casting order."""
        return list(dict.fromkeys(jam.canonical(i) for i in self.votes))

    def cast(self, jam: Jam, idea: Idea, at: dt.datetime, field: str = "idea") -> None:
        jam.require_phase(at, VOTING, action="vote", field=field)
        if idea.merged_into:
            raise FailedPrecondition(f"idea {idea.idea_id} was merged into {jam.canonical(idea.idea_id)}; vote for that one", field=field)
        effective = self.effective(jam)
        if idea.idea_id in effective:
            raise AlreadyExists(f"already voted for idea {idea.idea_id} (or an idea merged into it)", field=field)
        if len(effective) >= jam.vote_budget:
            raise FailedPrecondition(f"all {jam.vote_budget} votes are used; withdraw or change one first", field=field, vote_budget=jam.vote_budget)
        # cast_at is the instant the phase was checked at: the count at close takes votes with
        # cast_at < closed_at, so the results and any replay agree on which votes were in time.
        self._vote_cast(jam_id=self.jam_id, participant=self.participant, idea_id=idea.idea_id, cast_at=iso(at))

    @event("VoteCast")
    def _vote_cast(self, jam_id: str, participant: str, idea_id: str, cast_at: str) -> None:
        self.votes.append(idea_id)

    def withdraw(self, jam: Jam, idea_id: str, at: dt.datetime, field: str = "idea") -> None:
        """Withdraws the vote for ``idea_id``'s surviving idea: every cast vote that counts for it."""
        jam.require_phase(at, VOTING, action="withdraw votes", field=field)
        target = jam.canonical(idea_id)
        raw = [i for i in self.votes if jam.canonical(i) == target]
        if not raw:
            raise NotFound(f"no vote for idea {idea_id} on this ballot", field=field)
        for cast_idea in raw:
            self._vote_withdrawn(jam_id=self.jam_id, participant=self.participant, idea_id=cast_idea, withdrawn_at=iso(at))

    @event("VoteWithdrawn")
    def _vote_withdrawn(self, jam_id: str, participant: str, idea_id: str, withdrawn_at: str) -> None:
        self.votes.remove(idea_id)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class Invitation(EventSourcedAggregate):
    @staticmethod
    def create_id(code: str) -> Any:
        return invitation_id(code)

    @event("InvitationCreated")
    def __init__(self, jam_id: str, invited_by: str, label: str, expire_time: str):
        self.jam_id = jam_id
        self.invited_by = invited_by
        self.label = label
        self.expire_time = parse_iso(expire_time)
        self.guest = ""

    @classmethod
    def issue(cls, code: str, jam_id: str, invited_by: str, label: str, expire_time: str) -> Invitation:
        # The id comes from the code's hash; the event carries no trace of the code.
        return cls._create(cls.InvitationCreated, id=invitation_id(code), jam_id=jam_id, invited_by=invited_by, label=label, expire_time=expire_time)

    def redeem(self, jam_id: str, guest: str, at: dt.datetime) -> None:
        if jam_id != self.jam_id:
            # Same answer as an unknown code: a code for one jam reveals nothing about another.
            raise PermissionDenied("this invitation code is not valid for that jam", field="code")
        if self.guest:
            raise FailedPrecondition("this invitation code was already used", field="code")
        if self.expire_time and at >= self.expire_time:
            raise FailedPrecondition("this invitation code has expired", field="code")
        self._redeemed(jam_id=self.jam_id, guest=guest)

    @event("InvitationRedeemed")
    def _redeemed(self, jam_id: str, guest: str) -> None:
        self.guest = guest


class GuestGuidelines(EventSourcedAggregate):
    """The participation guidelines version a guest accepted: a guest has no profile to record
    it on (watercooler.guidelines), and guests write only here, in the jams that invited them."""

    @staticmethod
    def create_id(guest: str) -> Any:
        return stable_id("guest-guidelines", guest)

    @event("GuestGuidelinesCreated")
    def __init__(self, guest: str):
        self.guest = guest
        self.guidelines_version = ""

    def accept(self, version: str, current_version: str) -> None:
        """Only the current version can be accepted; accepting it again records nothing."""
        if version != current_version:
            raise FailedPrecondition(f"version {version} is not the current version of the guidelines; accept {current_version}", field="version", guidelines_version=current_version)
        if version != self.guidelines_version:
            self._accepted(version=version)

    @event("GuestGuidelinesAccepted")
    def _accepted(self, version: str) -> None:
        self.guidelines_version = version


class Thread(Flaggable):
    """Flaggable; a hidden thread takes its replies with it."""

    @staticmethod
    def create_id(jam_id: str, thread_id: str) -> Any:
        return thread_aggregate_id(jam_id, thread_id)

    @event("ThreadCreated")
    def __init__(self, jam_id: str, thread_id: str, forum_id: str, idea_id: str, title: str, body: str, author: str, author_kind: str):
        self.jam_id = jam_id
        self.thread_id = thread_id
        self.forum_id = forum_id
        self.idea_id = idea_id
        self.title = title
        self.body = body
        self.author = author
        self.author_kind = author_kind
        self.author_id = author
        self._init_flags()


class Reply(Flaggable):
    @staticmethod
    def create_id(jam_id: str, thread_id: str, reply_id: str) -> Any:
        return reply_aggregate_id(jam_id, thread_id, reply_id)

    @event("ReplyCreated")
    def __init__(self, jam_id: str, thread_id: str, reply_id: str, forum_id: str, idea_id: str, body: str, author: str, author_kind: str):
        self.jam_id = jam_id
        self.thread_id = thread_id
        self.reply_id = reply_id
        self.forum_id = forum_id
        self.idea_id = idea_id
        self.body = body
        self.author = author
        self.author_kind = author_kind
        self.author_id = author
        self._init_flags()

"""Jams application: commands (load, call, save), queries, the schedule and the results."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import uuid
from typing import Any, ClassVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from watercooler import auth
from watercooler.auth import Principal
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import CommandContext, EventSourcedApplication, uuid7
from watercooler.guidelines import GUEST_ACCEPTS, GuidelinesAcceptance, not_accepted
from watercooler.moderation import Flaggable, flag_threshold
from watercooler.visibility import may_see_jam, reads_hidden

from .domainmodel import (
    CLOSED,
    OPEN,
    RESULTS_PUBLISHED,
    Ballot,
    GuestGuidelines,
    Idea,
    Invitation,
    Jam,
    Reply,
    Tally,
    Thread,
    ballot_id,
    idea_aggregate_id,
    invitation_id,
    iso,
    jam_id_of,
    now,
    parse_iso,
    reply_aggregate_id,
    text,
    thread_aggregate_id,
    validate_slug,
)

log = logging.getLogger(__name__)

INVITATION_TTL = dt.timedelta(days=30)
_VOTE_TOPICS = (get_topic(Ballot.VoteCast), get_topic(Ballot.VoteWithdrawn), get_topic(Jam.IdeasMerged))
_JAM_CREATED_TOPIC = get_topic(Jam.JamCreated)
_TALLY_PAGE = 5000


class JamsApplication(EventSourcedApplication):
    service_name = "jams"
    # Every vote reads the jam, the idea and the ballot: keep recent aggregates in memory.
    # Fast-forward reads only the events stored since (other replicas' writes included), and
    # a command gets a deep copy, so a refused command never leaves its changes in the cache.
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "50000", "AGGREGATE_CACHE_FASTFORWARD": "y"}

    def __init__(self, settings: Any, guidelines: GuidelinesAcceptance | None = None):
        super().__init__(settings)
        self.guidelines = guidelines or GuidelinesAcceptance(settings, "jams")
        # Jams the scheduler watches, found by following the store's own log (survives restarts).
        self._known_jams: dict[str, None] = {}
        self._registry_position = 0
        self._registry_lock = threading.Lock()

    # --- who may do what -----------------------------------------------------------------------
    @staticmethod
    def can_read(principal: Principal, jam: Jam) -> bool:
        return may_see_jam(principal, jam.jam_id, jam.visibility)

    def _require_reader(self, principal: Principal, jam: Jam, field: str = "name") -> None:
        if not self.can_read(principal, jam):
            # A guest learns nothing about jams that did not invite them.
            raise NotFound(f"jams/{jam.jam_id} not found", field=field)

    def _require_participant(self, principal: Principal, jam: Jam, field: str = "name") -> None:
        self._require_reader(principal, jam, field)
        if principal.kind == "guest" and jam.jam_id not in principal.jams:
            raise PermissionDenied("guests write only in the jams that invited them", field=field)
        if principal.kind == "alumni":
            raise PermissionDenied("alumni may read jams but not take part", field=field)

    def _check_guidelines(self, principal: Principal) -> None:
        """Ideas, threads and replies are read by the whole jam: whoever writes them has accepted
        the current participation guidelines (watercooler.guidelines), employees on their profile,
        guests here (``accept_guest_guidelines``: a guest has no profile)."""
        if principal.kind != "guest":
            self.guidelines.require(principal)
        elif self._guest_guidelines_version(principal.subject) != self.settings.guidelines_version:
            raise not_accepted(self.settings.guidelines_version, how=GUEST_ACCEPTS)

    def _guest_guidelines_version(self, guest: str) -> str:
        key = GuestGuidelines.create_id(guest)
        return self.repository.get(key).guidelines_version if self.exists(key) else ""

    def accept_guest_guidelines(self, ctx: CommandContext, guest: str, version: str, request_fingerprint: str) -> GuestGuidelines:
        principal = ctx.principal
        if not (principal.is_service or (principal.kind == "guest" and principal.subject == guest)):
            raise PermissionDenied("only the guest or a service may accept the guidelines for a guest; people accept on their profile (ProfileService.AcceptGuidelines)", field="name")
        version = (version or "").strip()
        if not version:
            raise InvalidArgument(f"is required: the version accepted (the current one is {self.settings.guidelines_version})", field="version")

        def decide() -> GuestGuidelines:
            key = GuestGuidelines.create_id(guest)
            record: GuestGuidelines = self.repository.get(key) if self.exists(key) else GuestGuidelines(guest=guest)
            record.accept(version, self.settings.guidelines_version)
            return record

        return self.run_command(ctx, "AcceptGuestGuidelines", request_fingerprint, decide)  # type: ignore[return-value]

    def _require_voter(self, principal: Principal, jam: Jam, field: str = "jam") -> None:
        self._require_participant(principal, jam, field)
        if principal.is_service:
            # Votes are people's: a service that voted would be one more voter no one is.
            raise PermissionDenied("votes are cast by people; a service has no ballot", field=field)

    def _require_host(self, principal: Principal, jam: Jam, field: str = "name") -> None:
        self._require_reader(principal, jam, field)
        if not (principal.is_service or jam.is_host(principal.subject)):
            raise PermissionDenied(f"only a host of jams/{jam.jam_id} may do this", field=field)

    # --- jams ----------------------------------------------------------------------------------
    def create_jam(self, ctx: CommandContext, jam_id: str, fields: dict[str, Any], request_fingerprint: str) -> Jam:
        validate_slug(jam_id, "jam_id")
        principal = ctx.principal
        if principal.kind not in ("employee", "service"):
            raise PermissionDenied("only employees may host a jam", field="jam_id")

        def decide() -> Jam:
            if self.exists(jam_id_of(jam_id)):
                raise AlreadyExists(f"jams/{jam_id} already exists", field="jam_id")
            jam = Jam.create(
                jam_id, fields.get("title", ""), fields.get("description", ""), principal.subject,
                fields.get("vote_budget", 0), fields.get("top_n", 0), fields.get("visibility") or "INTERNAL",
                (fields.get("open_time"), fields.get("voting_time"), fields.get("close_time")), now(),
            )
            return jam

        return self.run_command(ctx, "CreateJam", request_fingerprint, decide)  # type: ignore[return-value]

    def get_jam(self, principal: Principal, jam_id: str, field: str = "name") -> Jam:
        jam = self._jam(jam_id, field)
        self._require_reader(principal, jam, field)
        return jam

    def list_jams(self, principal: Principal, size: int, after: int) -> tuple[list[Jam], int]:
        """Jams the caller may see in creation order, from the store's own log; the position
        in that log is the page token (stable while jams are created)."""
        found: list[Jam] = []
        position = after
        while len(found) < size:
            page = self.recorder.select_notifications(start=position, limit=size, topics=(_JAM_CREATED_TOPIC,), inclusive_of_start=False)
            if not page:
                return found, 0
            for notification in page:
                position = notification.id
                jam = self._jam(self.mapper.to_domain_event(notification).jam_id)
                if self.can_read(principal, jam):
                    found.append(jam)
                    if len(found) == size:
                        break
        return found, position

    def _jam(self, jam_id: str, field: str = "name") -> Jam:
        validate_slug(jam_id, field)
        return self.load(jam_id_of(jam_id), Jam, f"jams/{jam_id}", field=field)

    def schedule_jam(self, ctx: CommandContext, jam_id: str, times: tuple[Any, Any, Any], request_fingerprint: str) -> Jam:
        def decide() -> Jam:
            jam = self._jam(jam_id)
            self._require_host(ctx.principal, jam)
            jam.schedule(*times, at=now())
            return jam

        return self.run_command(ctx, "ScheduleJam", request_fingerprint, decide)  # type: ignore[return-value]

    def advance_phase(self, ctx: CommandContext, jam_id: str, expected: str, request_fingerprint: str) -> Jam:
        def decide() -> Jam:
            jam = self._jam(jam_id)
            self._require_host(ctx.principal, jam)
            jam.advance(expected, now())
            return jam

        jam = self.run_command(ctx, "AdvanceJamPhase", request_fingerprint, decide)
        return jam  # type: ignore[return-value]

    def create_forum(self, ctx: CommandContext, jam_id: str, forum_id: str, title: str, description: str, request_fingerprint: str) -> Jam:
        def decide() -> Jam:
            jam = self._jam(jam_id, "parent")
            self._require_host(ctx.principal, jam, "parent")
            jam.create_forum(forum_id, title, description, now())
            return jam

        return self.run_command(ctx, "CreateForum", request_fingerprint, decide)  # type: ignore[return-value]

    # --- ideas ---------------------------------------------------------------------------------
    def create_idea(self, ctx: CommandContext, jam_id: str, title: str, description: str, forum_id: str, request_fingerprint: str) -> Idea:
        def decide() -> Idea:
            jam = self._jam(jam_id, "parent")
            self._require_participant(ctx.principal, jam, "parent")
            as_host = jam.is_host(ctx.principal.subject) or ctx.principal.is_service
            idea = Idea.propose(jam, uuid7(), title, description, ctx.principal.subject, as_host, forum_id, now())
            self._check_guidelines(ctx.principal)
            return idea

        return self.run_command(ctx, "CreateIdea", request_fingerprint, decide)  # type: ignore[return-value]

    def _idea(self, jam_id: str, idea_id: str, field: str = "name") -> Idea:
        try:
            uuid.UUID(idea_id)
        except ValueError:
            raise InvalidArgument(f"{idea_id!r} is not an idea id", field=field) from None
        return self.load(idea_aggregate_id(jam_id, idea_id), Idea, f"jams/{jam_id}/ideas/{idea_id}", field=field)

    def get_idea(self, principal: Principal, jam_id: str, idea_id: str) -> Idea:
        self.get_jam(principal, jam_id)
        idea = self._idea(jam_id, idea_id)
        if idea.hidden and not reads_hidden(principal, idea.author_id):
            raise NotFound(f"jams/{jam_id}/ideas/{idea_id} not found", field="name")  # hidden by flags: as if absent
        return idea

    @staticmethod
    def _check_open(principal: Principal, item: Flaggable, name: str, field: str) -> None:
        """What flags or a host hid takes no votes, threads or replies: absent for everyone but its
        author and services, and closed for them too."""
        if item.hidden:
            if not reads_hidden(principal, item.author_id):
                raise NotFound(f"{name} not found", field=field)
            raise FailedPrecondition(f"{name} is hidden (by community flags or a moderator)", field=field)

    # --- flags ---------------------------------------------------------------------------------
    def flag(self, ctx: CommandContext, jam_id: str, path: tuple[str, ...], reason: str, request_fingerprint: str) -> Flaggable:
        """Community flags on an idea, a thread or a reply (watercooler.moderation): the jam's
        participants flag; a service hides at once."""
        def decide() -> Flaggable:
            item = self._flaggable(ctx.principal, jam_id, path)
            if ctx.principal.is_service:
                item.moderate_hide(ctx.principal.subject, reason)
            else:
                item.flag(ctx.principal.subject, reason, flag_threshold())
            return item

        return self.run_command(ctx, "FlagJamItem", request_fingerprint, decide)  # type: ignore[return-value]

    def vote_restore(self, ctx: CommandContext, jam_id: str, path: tuple[str, ...], request_fingerprint: str) -> Flaggable:
        def decide() -> Flaggable:
            item = self._flaggable(ctx.principal, jam_id, path)
            if ctx.principal.is_service:
                item.moderate_restore()
            else:
                item.vote_restore(ctx.principal.subject, flag_threshold())
            return item

        return self.run_command(ctx, "VoteRestoreJamItem", request_fingerprint, decide)  # type: ignore[return-value]

    def moderate(self, ctx: CommandContext, jam_id: str, path: tuple[str, ...], hide: bool, reason: str, request_fingerprint: str) -> Flaggable:
        """A host of the jam hides an idea, a thread or a reply, or brings a hidden one back,
        saying why (watercooler.moderation); a service moderates any."""
        def decide() -> Flaggable:
            item = self._flaggable(ctx.principal, jam_id, path)
            if not (ctx.principal.is_service or self._jam(jam_id).is_host(ctx.principal.subject)):
                raise PermissionDenied(f"only a host of jams/{jam_id} (or a service) moderates its content", field="name")
            if hide:
                item.hide_as_moderator(ctx.principal.subject, reason)
            else:
                item.restore_as_moderator(ctx.principal.subject, reason)
            return item

        return self.run_command(ctx, "HideJamItem" if hide else "RestoreJamItem", request_fingerprint, decide)  # type: ignore[return-value]

    def _flaggable(self, principal: Principal, jam_id: str, path: tuple[str, ...]) -> Flaggable:
        """``path``: (idea_id,), (thread_id, "") or (thread_id, reply_id). Hidden or not (flags and
        restore votes reach a hidden item's audience); a reply of a hidden thread is not there."""
        jam = self._jam(jam_id)
        self._require_participant(principal, jam)
        if len(path) == 1:
            return self._idea(jam_id, path[0])
        thread_id, reply_id = path
        name = f"jams/{jam_id}/threads/{thread_id}"
        thread: Thread = self.load(thread_aggregate_id(jam_id, thread_id), Thread, name)
        if not reply_id:
            return thread
        reply: Reply = self.load(reply_aggregate_id(jam_id, thread_id, reply_id), Reply, f"{name}/replies/{reply_id}")
        if thread.hidden and not reads_hidden(principal, thread.author_id):
            raise NotFound(f"{name}/replies/{reply_id} not found", field="name")
        return reply

    def merge_ideas(self, ctx: CommandContext, jam_id: str, merged_id: str, into_id: str, request_fingerprint: str) -> Idea:
        def decide() -> list[Any]:
            jam = self._jam(jam_id)
            self._require_host(ctx.principal, jam)
            merged = self._idea(jam_id, merged_id, "name")
            into = self._idea(jam_id, into_id, "into")
            jam.merge(merged, into, now())
            return [merged, jam]

        return self.run_command(ctx, "MergeIdeas", request_fingerprint, decide)  # type: ignore[return-value]

    # --- votes ---------------------------------------------------------------------------------
    def _ballot(self, jam: Jam, principal: Principal) -> Ballot:
        try:
            return self.repository.get(ballot_id(jam.jam_id, principal.subject))
        except AggregateNotFoundError:
            return Ballot(jam_id=jam.jam_id, participant=principal.subject, participant_kind=principal.kind)

    def cast_vote(self, ctx: CommandContext, jam_id: str, idea_id: str, request_fingerprint: str) -> tuple[Ballot, Jam]:
        loaded: list[Jam] = []

        def decide() -> Ballot:
            jam = self._jam(jam_id, "jam")
            loaded.append(jam)
            self._require_voter(ctx.principal, jam, "jam")
            idea = self._idea(jam_id, idea_id, "idea")
            self._check_open(ctx.principal, idea, f"jams/{jam_id}/ideas/{idea_id}", "idea")
            ballot = self._ballot(jam, ctx.principal)
            ballot.cast(jam, idea, now())
            return ballot

        ballot = self.run_command(ctx, "CastVote", request_fingerprint, decide)
        # The jam as decide() saw it (a retry by request id did not run decide: load it).
        return ballot, (loaded[0] if loaded else self._jam(jam_id, "jam"))  # type: ignore[return-value]

    def withdraw_vote(self, ctx: CommandContext, jam_id: str, idea_id: str, request_fingerprint: str) -> tuple[Ballot, Jam]:
        def decide() -> Ballot:
            jam = self._jam(jam_id, "jam")
            self._require_voter(ctx.principal, jam, "jam")
            self._idea(jam_id, idea_id, "idea")
            ballot = self._ballot(jam, ctx.principal)
            ballot.withdraw(jam, idea_id, now())
            return ballot

        ballot = self.run_command(ctx, "WithdrawVote", request_fingerprint, decide)
        return ballot, self._jam(jam_id, "jam")  # type: ignore[return-value]

    def change_vote(self, ctx: CommandContext, jam_id: str, from_id: str, to_id: str, request_fingerprint: str) -> tuple[Ballot, Jam]:
        def decide() -> Ballot:
            jam = self._jam(jam_id, "jam")
            self._require_voter(ctx.principal, jam, "jam")
            self._idea(jam_id, from_id, "from_idea")
            to_idea = self._idea(jam_id, to_id, "to_idea")
            self._check_open(ctx.principal, to_idea, f"jams/{jam_id}/ideas/{to_id}", "to_idea")
            ballot = self._ballot(jam, ctx.principal)
            at = now()
            if jam.canonical(from_id) == jam.canonical(to_id):
                raise InvalidArgument("from_idea and to_idea count for the same idea", field="to_idea")
            ballot.withdraw(jam, from_id, at, field="from_idea")
            ballot.cast(jam, to_idea, at, field="to_idea")  # both events or neither: one save
            return ballot

        ballot = self.run_command(ctx, "ChangeVote", request_fingerprint, decide)
        return ballot, self._jam(jam_id, "jam")  # type: ignore[return-value]

    def get_ballot(self, principal: Principal, jam_id: str, participant: str) -> tuple[Ballot, Jam]:
        jam = self.get_jam(principal, jam_id)
        if participant in ("-", ""):
            participant = principal.subject
        if participant != principal.subject and not (principal.is_service or jam.is_host(principal.subject)):
            raise PermissionDenied("a ballot is visible to its participant only", field="name")
        try:
            ballot = self.repository.get(ballot_id(jam_id, participant))
        except AggregateNotFoundError:
            ballot = Ballot(jam_id=jam_id, participant=participant, participant_kind="")  # empty, never saved
        return ballot, jam

    # --- guests --------------------------------------------------------------------------------
    def create_invitation(self, ctx: CommandContext, jam_id: str, label: str, request_fingerprint: str) -> tuple[Invitation, str]:
        label = text("label", label)
        code = ""

        def decide() -> Invitation:
            nonlocal code
            jam = self._jam(jam_id, "parent")
            self._require_host(ctx.principal, jam, "parent")
            if jam.phase_at(now()) in (CLOSED, RESULTS_PUBLISHED):
                raise FailedPrecondition(f"the jam is {jam.phase_at(now())}; no more guests", field="parent")
            code = secrets.token_urlsafe(18)
            return Invitation.issue(code, jam_id=jam_id, invited_by=ctx.principal.subject, label=label, expire_time=iso(now() + INVITATION_TTL))

        invitation = self.run_command(ctx, "CreateInvitation", request_fingerprint, decide)
        # A retried request cannot show the code again (only its hash is kept): it gets an empty code.
        return invitation, code  # type: ignore[return-value]

    def redeem_invitation(self, ctx: CommandContext, code: str, jam_id: str) -> tuple[str, list[str], dt.datetime]:
        principal = ctx.principal
        if principal.kind != "guest":
            raise PermissionDenied("invitation codes are redeemed by guest identities; employees take part directly", field="code")
        if not code or len(code) > 200:
            raise InvalidArgument("is required", field="code")
        validate_slug(jam_id, "jam")

        def decide() -> Invitation:
            try:
                invitation: Invitation = self.repository.get(invitation_id(code))
            except AggregateNotFoundError:
                raise PermissionDenied("this invitation code is not valid for that jam", field="code") from None
            invitation.redeem(jam_id, principal.subject, now())
            return invitation

        # No request id: a code is single use, so a retry is a second redemption and is refused.
        self.run_command(CommandContext(principal, "", ctx.correlation_id, ctx.causation_id), "RedeemInvitation", "", decide)
        jam = self._jam(jam_id, "jam")
        jams = sorted({*principal.jams, jam_id})
        expires = max(now() + dt.timedelta(days=1), (jam.close_time or now()) + dt.timedelta(days=7))
        token = auth.issue_token(self.settings, principal.subject, "guest", principal.display_name, jams=jams, ttl_seconds=int((expires - now()).total_seconds()))
        return token, jams, expires

    # --- discussion ----------------------------------------------------------------------------
    def create_thread(self, ctx: CommandContext, jam_id: str, forum_id: str, idea_id: str, title: str, body: str, request_fingerprint: str) -> Thread:
        def decide() -> Thread:
            jam = self._jam(jam_id, "parent")
            self._require_participant(ctx.principal, jam, "parent")
            jam.require_phase(now(), OPEN, action="start threads", field="parent")
            if bool(forum_id) == bool(idea_id):
                raise InvalidArgument("a thread belongs to exactly one forum or one idea", field="forum")
            if forum_id and forum_id not in jam.forums:
                raise NotFound(f"forum {forum_id} not found", field="forum")
            if idea_id:
                idea = self._idea(jam_id, idea_id, "idea")
                self._check_open(ctx.principal, idea, f"jams/{jam_id}/ideas/{idea_id}", "idea")
                if idea.merged_into:
                    raise FailedPrecondition(f"idea {idea_id} was merged into {idea.merged_into}; discuss it there", field="idea")
            thread = Thread(
                jam_id=jam_id, thread_id=uuid7(), forum_id=forum_id, idea_id=idea_id, title=text("title", title, required=True),
                body=text("body", body, required=True, multiline=True), author=ctx.principal.subject, author_kind=ctx.principal.kind,
            )
            self._check_guidelines(ctx.principal)
            return thread

        return self.run_command(ctx, "CreateThread", request_fingerprint, decide)  # type: ignore[return-value]

    def create_reply(self, ctx: CommandContext, jam_id: str, thread_id: str, body: str, request_fingerprint: str) -> Reply:
        def decide() -> Reply:
            jam = self._jam(jam_id, "parent")
            self._require_participant(ctx.principal, jam, "parent")
            thread = self.load(thread_aggregate_id(jam_id, thread_id), Thread, f"jams/{jam_id}/threads/{thread_id}", field="parent")
            self._check_open(ctx.principal, thread, f"jams/{jam_id}/threads/{thread_id}", "parent")
            jam.require_phase(now(), OPEN, action="reply", field="parent")
            reply = Reply(
                jam_id=jam_id, thread_id=thread_id, reply_id=uuid7(), forum_id=thread.forum_id, idea_id=thread.idea_id,
                body=text("body", body, required=True, multiline=True), author=ctx.principal.subject, author_kind=ctx.principal.kind,
            )
            self._check_guidelines(ctx.principal)
            return reply

        return self.run_command(ctx, "CreateReply", request_fingerprint, decide)  # type: ignore[return-value]

    def get_reply(self, jam_id: str, thread_id: str, reply_id: str) -> Reply:
        return self.load(reply_aggregate_id(jam_id, thread_id, reply_id), Reply, "reply")

    # --- results -------------------------------------------------------------------------------
    def get_results(self, principal: Principal, jam_id: str) -> Jam:
        jam = self.get_jam(principal, jam_id)
        if jam.phase != RESULTS_PUBLISHED or jam.results is None:
            raise FailedPrecondition(f"results are published after the jam closes; it is {jam.phase_at(now())}", field="name", phase=jam.phase_at(now()))
        return jam

    def count_votes(self, jam: Jam) -> Tally:
        """Recount the jam's votes from the store's own log: vote events before the close.

        The same rule recounts them from Kafka (same events, same order per ballot)."""
        tally = Tally()
        closed_at = jam.closed_at
        jam_aggregate = jam_id_of(jam.jam_id)
        stop = self.recorder.max_notification_id() or 0
        position = 0
        while position < stop:
            page = self.recorder.select_notifications(start=position, limit=_TALLY_PAGE, stop=stop, topics=_VOTE_TOPICS, inclusive_of_start=False)
            if not page:
                break
            for notification in page:
                domain_event = self.mapper.to_domain_event(notification)
                name = type(domain_event).__name__
                if name == "IdeasMerged":
                    if domain_event.originator_id == jam_aggregate:
                        tally.merge(domain_event.merged_idea_id, domain_event.into_idea_id)
                    continue
                if domain_event.jam_id != jam.jam_id:
                    continue
                at = parse_iso(domain_event.cast_at if name == "VoteCast" else domain_event.withdrawn_at)
                if closed_at is not None and at is not None and at >= closed_at:
                    continue
                tally.apply(name, domain_event)
            position = page[-1].id
        return tally

    def publish_results(self, jam_id: str) -> Jam:
        """CLOSED -> RESULTS_PUBLISHED: count, rank, freeze.  Retried safely: a concurrent
        publisher loses on the jam's version and finds the results already there."""
        ctx = CommandContext(Principal("jams-scheduler", "service"))

        def decide() -> Jam:
            jam = self._jam(jam_id)
            if jam.phase == RESULTS_PUBLISHED:
                return jam
            tally = self.count_votes(jam)
            titles: dict[str, str] = {}
            authors: dict[str, str] = {}
            hidden: set[str] = set()  # ideas community flags hid at the close are not ranked
            for idea_id, _ in tally.ranking(len(tally.counts()), exclude=jam.merges):
                idea = self._idea(jam_id, idea_id)
                if idea.hidden:
                    hidden.add(idea_id)
                else:
                    titles[idea_id] = idea.title
                    authors[idea_id] = idea.author
                if len(titles) >= jam.top_n:
                    break
            jam.publish_results(tally, titles, hidden, authors)
            return jam

        return self.run_command(ctx, "PublishResults", "", decide)  # type: ignore[return-value]

    # --- the schedule --------------------------------------------------------------------------
    def known_jams(self) -> list[str]:
        """Every jam in the store, found by following its log from where we left off."""
        with self._registry_lock:
            while True:
                page = self.recorder.select_notifications(start=self._registry_position, limit=1000, topics=(_JAM_CREATED_TOPIC,), inclusive_of_start=False)
                if not page:
                    break
                for notification in page:
                    self._known_jams[self.mapper.to_domain_event(notification).jam_id] = None
                self._registry_position = page[-1].id
            return list(self._known_jams)

    def run_due_transitions(self, at: dt.datetime | None = None) -> list[tuple[str, str]]:
        """Record every scheduled change that is due, for every jam; publish results of
        closed jams.  Missed times (a restart) are recorded with their scheduled time."""
        at = at or now()
        done: list[tuple[str, str]] = []
        for jam_id in self.known_jams():
            try:
                jam = self._jam(jam_id)
                if jam.phase == RESULTS_PUBLISHED:
                    with self._registry_lock:
                        self._known_jams.pop(jam_id, None)  # nothing left to schedule
                    continue
                due = jam.due_transitions(at)
                if not due and not (jam.phase == CLOSED and jam.scheduled_time(RESULTS_PUBLISHED) and jam.scheduled_time(RESULTS_PUBLISHED) <= at):  # type: ignore[operator]
                    continue
                recorded = jam.catch_up(at)
                if recorded:
                    self.save(jam)
                    done.extend((jam_id, phase) for phase in recorded)
                results_at = jam.scheduled_time(RESULTS_PUBLISHED)
                if jam.phase == CLOSED and results_at is not None and results_at <= at:
                    self.publish_results(jam_id)
                    done.append((jam_id, RESULTS_PUBLISHED))
            except Exception:  # another replica won the race, or the store hiccupped: next tick
                log.warning("scheduled transition failed; will retry", extra={"jam": jam_id}, exc_info=True)
        return done


APPLICATION = JamsApplication


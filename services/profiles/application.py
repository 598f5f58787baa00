"""Profiles application: commands (load, call, save) and queries."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from watercooler import personaldata
from watercooler.auth import Principal
from watercooler.errors import Aborted, AlreadyExists, DomainError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import BatchedCommand, CommandContext, EventSourcedApplication, fields_of_request, uuid7
from watercooler.guidelines import check_accepted
from watercooler.moderation import flag_threshold
from watercooler.text import clean, has_control_characters
from watercooler.visibility import Content, may_see_content

from .domainmodel import (
    ALUMNI,
    Community,
    Connection,
    Follow,
    NotificationSettings,
    OrgChart,
    Profile,
    StatusUpdate,
    check_pair,
    check_photo,
    community_id_of,
    profile_id,
    validate_community_fields,
    validate_community_id,
    validate_employee_id,
    validate_fields,
    validate_media_name,
    validate_status,
)
from .media import MediaLibrary
from .personal_keys import PersonalKeyTable

MAX_MANAGER_CHAIN = 64
MAX_BATCH_GET = 100
MAX_BATCH_CREATE = 1000
MAX_LEAVE_REASON = 500
MAX_KEY_IDS = personaldata.MAX_KEY_IDS_PER_CALL
# Tries of an UpdateProfile that lost a race to a concurrent change (of the org chart or the profile).
MANAGER_CHANGE_ATTEMPTS = 5


@dataclass(frozen=True)
class NewProfile:
    """One CreateProfile of a BatchCreateProfiles."""

    ctx: CommandContext
    employee_id: str
    fields: dict[str, Any]
    request_fingerprint: str


@contextlib.contextmanager
def profile_fields() -> Iterator[None]:
    """Inside a batch, a profile's fields are ``profile.…`` of its request (the request id is not)."""
    try:
        yield
    except DomainError as error:
        if error.field and error.field != "request_id":
            error.field = f"profile.{error.field}"
        raise


KNOWN_PROFILES_MAX = 100_000  # ids remembered by _check_new_manager (a few MiB)


class ProfilesApplication(EventSourcedApplication):
    service_name = "profiles"
    # A community of 50,000 members is 50,000 events: without snapshots every join would
    # replay them all (measured: 10 joins/s at 1,500 members; 89/s with snapshots).
    # Snapshots live in their own table, never in the notification log the relay publishes.
    # The org chart gains an event on every manager change, for ever: snapshots for it too.
    snapshotting_intervals = {Community: 100, OrgChart: 100}

    def __init__(self, settings: Any, media: MediaLibrary | None = None):
        super().__init__(settings)
        self.media = media or MediaLibrary(settings)
        # Profiles seen to exist: a profile is never deleted, so once seen it needs no second
        # read (each new profile's manager check read the store, about a tenth of a create's
        # CPU). Bounded; forgetting only costs the read again.
        self._known_profiles: set[str] = set()

    def construct_key_ring(self, store: dict[str, str]) -> personaldata.KeyRing:
        # The keys live here, in a table of this service's store: the one place to destroy them.
        # Cached like everywhere else, so another replica's erasure reaches this one's memory.
        self.key_table = PersonalKeyTable(store)
        return personaldata.CachedKeys(self.key_table.keys, personaldata.key_cache_seconds(), on_erased=self.forget_cached_aggregates)

    def close(self) -> None:
        super().close()  # stops the cache's revalidation first, which reads the table
        if self._owns_key_ring:
            self.key_table.close()

    # --- personal data ----------------------------------------------------------------------------
    def erase_person(self, ctx: CommandContext, employee_id: str, request_fingerprint: str) -> tuple[Profile, int]:
        """Crypto-shredding (docs/personal-data.md): destroy the person's keys, then record
        ``ProfileErased``. In that order: if the event cannot be saved the keys are gone anyway
        and a retry records it; the other way round a failure could leave an erasure on record
        with the data still readable."""
        if not ctx.principal.is_service:
            raise PermissionDenied("only a service may erase a person", field="name")
        profile = self.get_profile(employee_id)
        if ctx.request_id:
            # A retry answers as the first run did; a request id reused for another request is
            # refused before any key is touched (no partial state).
            earlier = self._replay_earlier(ctx, "ErasePerson", request_fingerprint)
            if earlier is not None:
                return earlier, 0  # type: ignore[return-value]
        erased_keys = [employee_id, str(profile.id)]
        destroyed = self.key_table.destroy(erased_keys, erased_at=dt.datetime.now(dt.UTC).isoformat())
        self.personal_keys.forget(erased_keys)  # type: ignore[attr-defined]

        def decide() -> Profile:
            erased = self.get_profile(employee_id)
            erased.erase()
            return erased

        erased = self.run_command(ctx, "ErasePerson", request_fingerprint, decide)
        # Aggregates this replica holds in memory were opened with the keys: forget them all
        # (an erasure is rare; they are read again, as tombstones where they were the person's).
        self.forget_cached_aggregates()
        return erased, destroyed  # type: ignore[return-value]

    def personal_data_keys(self, principal: Principal, key_ids: Sequence[str], create: bool) -> dict[str, bytes]:
        if not principal.is_service:
            raise PermissionDenied("only services may read personal data keys", field="key_ids")
        if len(key_ids) > MAX_KEY_IDS:
            raise InvalidArgument(f"at most {MAX_KEY_IDS} key ids per call", field="key_ids")
        for index, key_id in enumerate(key_ids):
            if not key_id or len(key_id) > 200 or has_control_characters(key_id) or ":" in key_id:
                raise InvalidArgument("must be an employee id or a profile id", field=f"key_ids[{index}]")
        return self.key_table.keys(key_ids, create=create)  # the store's answer, not this replica's cache

    # --- commands ---------------------------------------------------------------------------
    def create_profile(self, ctx: CommandContext, employee_id: str, fields: dict[str, Any], request_fingerprint: str) -> Profile:
        self._check_may_create(ctx, employee_id)
        try:
            created: Profile = self.run_command(ctx, "CreateProfile", request_fingerprint, lambda: self._new_profile(employee_id, fields))  # type: ignore[assignment]
        except Aborted:
            # The id exists already, or a concurrent create of it won the race.
            raise AlreadyExists(f"profiles/{employee_id} already exists", field="employee_id") from None
        self._remember_existing([created.employee_id])
        return created

    def batch_create_profiles(self, requests: Sequence[NewProfile]) -> list[Profile]:
        """AIP-233 BatchCreateProfiles, for a bulk import (an HR feed): each request is a
        CreateProfile, all of them are saved in one transaction or none is. A manager must exist
        already or be created earlier in the same batch (managers first, as in a tree walk), so a
        batch can never close a cycle.

        Why a batch: one call, one transaction and one run through the relay for many profiles,
        against a round trip, a commit and a publication each."""
        if not 1 <= len(requests) <= MAX_BATCH_CREATE:
            raise InvalidArgument(f"must hold 1 to {MAX_BATCH_CREATE} requests, not {len(requests)}", field="requests")
        position: dict[str, int] = {}
        request_ids: dict[str, int] = {}
        for index, request in enumerate(requests):
            with fields_of_request(index):
                with profile_fields():
                    self._check_may_create(request.ctx, request.employee_id)
                if request.employee_id in position:
                    raise InvalidArgument(f"repeats requests[{position[request.employee_id]}]", field="profile.employee_id")
                if request.ctx.request_id in request_ids:
                    raise InvalidArgument(f"repeats requests[{request_ids[request.ctx.request_id]}]", field="request_id")
            position[request.employee_id] = index
            if request.ctx.request_id:
                request_ids[request.ctx.request_id] = index

        # Ids created earlier in this batch or found in the store: a team shares its manager, so
        # the store is asked once per manager, not once per person (measured in process: 28 %
        # of a batch's time went to these reads).
        known: set[str] = set()

        def decide(request: NewProfile) -> Callable[[], Profile]:
            def new_profile() -> Profile:
                with profile_fields():
                    profile = self._new_profile(request.employee_id, request.fields, known_to_exist=known)
                known.add(profile.employee_id)
                if profile.manager_id:
                    known.add(profile.manager_id)
                return profile
            return new_profile

        commands = [BatchedCommand(r.ctx, "CreateProfile", r.request_fingerprint, decide(r)) for r in requests]
        try:
            created: list[Profile] = self.run_commands(commands)  # type: ignore[assignment]
            self._remember_existing(profile.employee_id for profile in created)
            return created
        except Aborted:
            for index, request in enumerate(requests):
                if self.exists(profile_id(request.employee_id)):
                    raise AlreadyExists(f"profiles/{request.employee_id} already exists; nothing was saved", field=f"requests[{index}].profile.employee_id") from None
            raise

    def _check_may_create(self, ctx: CommandContext, employee_id: str) -> None:
        validate_employee_id(employee_id)
        principal = ctx.principal
        # Profiles come from HR (a service) or from the employee themself; guests have none.
        if not (principal.is_service or (principal.is_employee and principal.subject == employee_id)):
            raise PermissionDenied("only the employee or a service may create a profile", field="employee_id")

    def _new_profile(self, employee_id: str, fields: dict[str, Any], known_to_exist: Collection[str] = ()) -> Profile:
        values = validate_fields(fields, creating=True)
        manager_id = values.get("manager_id")
        if manager_id and manager_id not in known_to_exist:
            # No existing profile can name this new id as its manager (unknown managers are
            # refused), so a new profile cannot close a cycle: the manager must only exist.
            self._check_new_manager(employee_id, manager_id)
        # Whether the id is taken is left to the store: saving version 1 of an existing
        # profile fails atomically (one read fewer on the hottest write of a bulk import).
        return Profile.create(employee_id, values)

    def update_profile(
        self, ctx: CommandContext, employee_id: str, changes: dict[str, Any], etag: str, request_fingerprint: str
    ) -> Profile:
        principal = ctx.principal
        if not (principal.is_service or principal.subject == employee_id):
            raise PermissionDenied("only the person or a service may edit a profile", field="name")

        values = validate_fields(changes, creating=False)

        def decide() -> list[Aggregate]:
            profile = self.get_profile(employee_id)
            if etag and etag != profile.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {profile.etag}", field="etag", current_etag=profile.etag)
            new_manager = values.get("manager_id")
            if not new_manager or new_manager == profile.manager_id:
                profile.update(values)
                return [profile]
            # The org chart is read before the chain above the new manager: a manager change
            # committed after this read moves the chart on, so this command's save collides.
            org_chart = self._org_chart()
            self._check_manager(employee_id, new_manager)
            profile.update(values)
            org_chart.record_manager_change(employee_id=employee_id, manager_id=new_manager)
            return [profile, org_chart]

        # A loser of the race on the org chart is decided again against the chart that won (and
        # is refused if the winner's change now makes a cycle); a stale etag still fails at once.
        for attempt in range(MANAGER_CHANGE_ATTEMPTS):
            try:
                return self.run_command(ctx, "UpdateProfile", request_fingerprint, decide)  # type: ignore[return-value]
            except Aborted as error:
                stale_etag = "current_etag" in error.details
                if stale_etag or attempt == MANAGER_CHANGE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def leave_company(self, ctx: CommandContext, employee_id: str, reason: str, request_fingerprint: str) -> Profile:
        principal = ctx.principal
        if not (principal.is_service or principal.subject == employee_id):
            raise PermissionDenied("only the person or a service (HR) may mark a profile as alumni", field="name")
        reason = clean(reason or "")
        if len(reason) > MAX_LEAVE_REASON or has_control_characters(reason, allow_newlines=True):
            raise InvalidArgument(f"must be at most {MAX_LEAVE_REASON} printable characters", field="reason")

        def decide() -> Profile:
            profile = self.get_profile(employee_id)
            profile.leave_company(reason)
            return profile

        return self.run_command(ctx, "LeaveCompany", request_fingerprint, decide)  # type: ignore[return-value]

    def set_profile_photo(self, ctx: CommandContext, employee_id: str, photo: str, etag: str, request_fingerprint: str) -> Profile:
        principal = ctx.principal
        if not (principal.is_service or principal.subject == employee_id):
            raise PermissionDenied("only the person or a service may set a profile photo", field="name")
        photo = validate_media_name(photo, field="photo") if photo else ""

        def decide() -> Profile:
            profile = self.get_profile(employee_id)
            if etag and etag != profile.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {profile.etag}", field="etag", current_etag=profile.etag)
            # Asked inside decide: a retry of a request that was accepted returns its first
            # result even if the item changed since (run_command replays on a refusal).
            profile.set_photo(photo, self.media.lookup(photo, field="photo") if photo else None)
            return profile

        return self.run_command(ctx, "SetProfilePhoto", request_fingerprint, decide)  # type: ignore[return-value]

    def photo_shown(self, principal: Any, photo: str, fresh: bool = False) -> str:
        """``photo`` (a status photo or an avatar) if ``principal`` may see that media item now,
        else "" (the item was removed, made RESTRICTED, ... since it was shared). ``fresh``: ask
        the media library now (a command's answer), else take a recent answer (reads)."""
        if not photo.startswith("media/"):
            return ""  # an old status's URI names no media item: nobody can say who may see it
        item = self.media.lookup(photo, field="photo") if fresh else self.media.recent(photo)
        return photo if item is not None and item.visible_to(principal) else ""
    def accept_guidelines(self, ctx: CommandContext, employee_id: str, version: str, request_fingerprint: str) -> Profile:
        principal = ctx.principal
        if not (principal.is_service or (principal.kind in ("employee", "alumni") and principal.subject == employee_id)):
            raise PermissionDenied("only the person or a service may accept the guidelines for a profile", field="name")
        version = (version or "").strip()
        if not version:
            raise InvalidArgument(f"is required: the version accepted (the current one is {self.settings.guidelines_version})", field="version")

        def decide() -> Profile:
            profile = self.get_profile(employee_id)
            profile.accept_guidelines(version, self.settings.guidelines_version)
            return profile

        return self.run_command(ctx, "AcceptGuidelines", request_fingerprint, decide)  # type: ignore[return-value]

    # --- communities ----------------------------------------------------------------------------
    def create_community(self, ctx: CommandContext, community_id: str, fields: dict[str, str], owner_id: str, request_fingerprint: str) -> Community:
        validate_community_id(community_id)
        values = validate_community_fields(**fields)
        principal = ctx.principal
        if principal.kind not in ("employee", "service"):
            raise PermissionDenied("communities are created by employees", field="owners")
        owner_id = owner_id or ("" if principal.is_service else principal.subject)
        if not owner_id:
            raise InvalidArgument("a service must name the first owner", field="owners")
        if not principal.is_service and owner_id != principal.subject:
            raise PermissionDenied("the creator is the first owner", field="owners")

        def decide() -> Community:
            owner = self._require_profile(owner_id, "owners")
            check_accepted(principal, owner.guidelines_version, self.settings.guidelines_version)
            if self.exists(community_id_of(community_id)):
                raise AlreadyExists(f"communities/{community_id} already exists", field="community_id")
            return Community.create(community_id, values, owner_id)

        try:
            return self.run_command(ctx, "CreateCommunity", request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted:
            raise AlreadyExists(f"communities/{community_id} already exists", field="community_id") from None

    def get_community(self, community_id: str, field: str = "name") -> Community:
        validate_community_id(community_id, field=field)
        return self.load(community_id_of(community_id), Community, f"communities/{community_id}", field=field)

    def invitations_shown_to(self, principal: Any, community: Community) -> list[str]:
        """An INVITE_ONLY community's pending invitations follow its member list
        (list_members): its members and services see them all; anyone else only their own."""
        if community.lists_shown_to(principal.subject, principal.is_service):
            return list(community.invited)
        return [i for i in community.invited if i == principal.subject]

    def list_members(self, principal: Any, community_id: str) -> list[str]:
        """The member ids, sorted. An INVITE_ONLY community's list is for its members and
        services: the community itself stays listed in the directory (GetCommunity answers
        everyone), so others get PERMISSION_DENIED rather than a NOT_FOUND that would lie."""
        community = self.get_community(community_id, "parent")
        if not community.lists_shown_to(principal.subject, principal.is_service):
            raise PermissionDenied(f"the members of invite-only communities/{community_id} are listed to its members only", field="parent")
        return sorted(community.members)

    def get_membership(self, principal: Any, community_id: str, member_id: str) -> Community:
        """The community, if ``member_id`` is one of its members. Answered to whom the member
        list is (list_members): one person's membership is a piece of that list."""
        community = self.get_community(community_id)
        validate_employee_id(member_id, field="name")
        if not community.lists_shown_to(principal.subject, principal.is_service):
            raise PermissionDenied(f"the members of invite-only communities/{community_id} are shown to its members only", field="name")
        if not community.is_member(member_id):
            raise NotFound(f"profiles/{member_id} is not a member of communities/{community_id}", field="name")
        return community

    def change_membership(self, ctx: CommandContext, action: str, community_id: str, member_id: str, request_fingerprint: str) -> Community:
        """join / leave (the member themself, or a service) and invite / remove (by the caller)."""
        principal = ctx.principal
        if principal.kind == "guest":
            raise PermissionDenied("guests take part in the jams that invited them, not in communities", field="member")
        member_id = member_id or ("" if principal.is_service else principal.subject)
        if not member_id:
            raise InvalidArgument("a service must name the member", field="member")
        if action in ("join", "leave") and not (principal.is_service or member_id == principal.subject):
            raise PermissionDenied(f"only the member themself may {action}", field="member")

        def decide() -> Community:
            community = self.get_community(community_id)
            self._require_profile(member_id, "member")
            if action == "join":
                community.join(member_id)
            elif action == "leave":
                community.leave(member_id)
            elif action == "invite":
                community.invite(member_id, principal.subject, principal.is_service)
            else:
                community.remove(member_id, principal.subject, principal.is_service)
            return community

        command = {"join": "JoinCommunity", "leave": "LeaveCommunity", "invite": "InviteMember", "remove": "RemoveMember"}[action]
        return self.run_command(ctx, command, request_fingerprint, decide)  # type: ignore[return-value]

    def run_community(self, ctx: CommandContext, action: str, community_id: str, argument: Any, etag: str, request_fingerprint: str) -> Community:
        """Running a community (domainmodel.Community): ``update`` (argument: the changed fields),
        ``add_owner`` / ``remove_owner`` (an employee id), ``transfer`` (the new owner's id: the
        caller hands over their own ownership), ``archive``."""
        principal = ctx.principal
        if principal.kind == "guest":
            raise PermissionDenied("guests take part in the jams that invited them, not in communities", field="name")
        if action == "transfer" and principal.is_service:
            raise PermissionDenied("an owner hands over their own ownership; a service has none", field="name")

        def decide() -> Community:
            community = self.get_community(community_id)
            if etag and etag != community.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {community.etag}", field="etag", current_etag=community.etag)
            by, by_service = principal.subject, principal.is_service
            if principal.kind == "alumni" and not by_service:
                raise PermissionDenied("alumni no longer run communities", field="name")
            if action == "update":
                community.update(argument, by, by_service)
            elif action == "add_owner":
                self._require_profile(argument, "owner")
                community.add_owner(argument, by, by_service)
            elif action == "remove_owner":
                community.remove_owner(argument, by, by_service)
            elif action == "transfer":
                self._require_profile(argument, "new_owner")
                community.transfer_ownership(by, argument)
            else:
                community.archive(by, by_service)
            return community

        command = {"update": "UpdateCommunity", "add_owner": "AddCommunityOwner", "remove_owner": "RemoveCommunityOwner",
                   "transfer": "TransferCommunityOwnership", "archive": "ArchiveCommunity"}[action]
        return self.run_command(ctx, command, request_fingerprint, decide)  # type: ignore[return-value]

    # --- the graph -------------------------------------------------------------------------------
    def change_follow(self, ctx: CommandContext, action: str, follower_id: str, followee_id: str, request_fingerprint: str) -> Follow:
        self._check_actor(ctx, follower_id)
        check_pair(follower_id, followee_id)

        def decide() -> Follow:
            self._require_profile(follower_id, "parent")
            self._require_profile(followee_id, "target")
            edge = self._get_or_none(Follow.create_id(follower_id, followee_id))
            if action == "follow":
                edge = edge or Follow(follower_id=follower_id, followee_id=followee_id)
                edge.follow()
            else:
                if edge is None:
                    raise FailedPrecondition(f"profiles/{follower_id} does not follow profiles/{followee_id}", field="target")
                edge.unfollow()
            return edge

        return self.run_command(ctx, "Follow" if action == "follow" else "Unfollow", request_fingerprint, decide)  # type: ignore[return-value]

    def change_connection(self, ctx: CommandContext, action: str, actor_id: str, target_id: str, request_fingerprint: str) -> Connection:
        self._check_actor(ctx, actor_id)
        check_pair(actor_id, target_id)

        def decide() -> Connection:
            self._require_profile(actor_id, "parent")
            self._require_profile(target_id, "target")
            pair = Connection.pair(actor_id, target_id)
            connection = self._get_or_none(Connection.create_id(pair))
            if connection is None:
                if action != "request":
                    raise FailedPrecondition(f"there is no connection or request with profiles/{target_id}", field="target")
                connection = Connection(member_ids=pair)
            {"request": connection.request, "accept": connection.accept, "decline": connection.decline, "remove": connection.remove}[action](actor_id)
            return connection

        command = {"request": "RequestConnection", "accept": "AcceptConnection", "decline": "DeclineConnection", "remove": "RemoveConnection"}[action]
        return self.run_command(ctx, command, request_fingerprint, decide)  # type: ignore[return-value]

    # --- status updates --------------------------------------------------------------------------
    def create_status_update(self, ctx: CommandContext, author_id: str, fields: dict[str, str], request_fingerprint: str) -> StatusUpdate:
        self._check_actor(ctx, author_id)
        values = validate_status(**fields)
        if values["visibility"] in ("INTERNAL", "COMMUNITY") and ctx.principal.kind not in ("employee", "service"):
            raise PermissionDenied("only employees may publish internal content", field="visibility")

        def decide() -> StatusUpdate:
            author = self._require_profile(author_id, "parent")
            if values["visibility"] != "PRIVATE":  # a PRIVATE status is seen by nobody else
                check_accepted(ctx.principal, author.guidelines_version, self.settings.guidelines_version)
            if author.state == ALUMNI and values["visibility"] in ("INTERNAL", "COMMUNITY"):
                raise PermissionDenied("alumni may not publish internal content", field="visibility")
            if values["visibility"] == "COMMUNITY":
                community = self.get_community(values["community_id"], field="community")
                community.check_open()
                if not community.is_member(author_id):
                    raise PermissionDenied(f"profiles/{author_id} is not a member of communities/{community.community_id}", field="community")
            if values["photo_uri"]:
                # The author's view of the item: theirs when they post, a service's stand-in for
                # the person (employee or alumnus) when it posts for them.
                as_author = ctx.principal if not ctx.principal.is_service else Principal(author_id, "alumni" if author.state == ALUMNI else "employee")
                check_photo(values["photo_uri"], self.media.lookup(values["photo_uri"], field="photo"), as_author)
            return StatusUpdate(status_id=uuid7().replace("-", ""), author_id=author_id, **values)

        return self.run_command(ctx, "CreateStatusUpdate", request_fingerprint, decide)  # type: ignore[return-value]

    def delete_status_update(self, ctx: CommandContext, author_id: str, status_id: str, request_fingerprint: str) -> StatusUpdate:
        self._check_actor(ctx, author_id, field="name")

        def decide() -> StatusUpdate:
            status = self.load(StatusUpdate.create_id(author_id, status_id), StatusUpdate, f"profiles/{author_id}/statusUpdates/{status_id}")
            status.delete(ctx.principal.subject)
            return status

        return self.run_command(ctx, "DeleteStatusUpdate", request_fingerprint, decide)  # type: ignore[return-value]

    # --- notification settings ------------------------------------------------------------------
    def change_notification_settings(self, ctx: CommandContext, person_id: str, action: str, value: Any, request_fingerprint: str) -> NotificationSettings:
        """``action``: "mark_read" (value: a notification's name) or "preferences" (value: the
        disabled kinds)."""
        self._check_actor(ctx, person_id, field="parent" if action == "mark_read" else "settings.name")

        def decide() -> NotificationSettings:
            self._require_profile(person_id, "parent" if action == "mark_read" else "settings.name")
            settings = self._get_or_none(NotificationSettings.create_id(person_id)) or NotificationSettings(person_id=person_id)
            if action == "mark_read":
                settings.mark_read(value)
            else:
                settings.change_preferences(value)
            return settings

        command = "MarkNotificationsRead" if action == "mark_read" else "UpdateNotificationSettings"
        return self.run_command(ctx, command, request_fingerprint, decide)  # type: ignore[return-value]

    def notification_settings(self, ctx: CommandContext, person_id: str) -> NotificationSettings:
        self._check_actor(ctx, person_id, field="name")
        self._require_profile(person_id, "name")
        return self._get_or_none(NotificationSettings.create_id(person_id)) or NotificationSettings(person_id=person_id)
    def flag_status_update(self, ctx: CommandContext, author_id: str, status_id: str, reason: str, request_fingerprint: str) -> StatusUpdate:
        """Community flags (watercooler.moderation): a person in the update's audience flags it;
        a service hides it at once."""
        def decide() -> StatusUpdate:
            status = self._flaggable_status(ctx, author_id, status_id)
            if ctx.principal.is_service:
                status.moderate_hide(ctx.principal.subject, reason)
            else:
                status.flag(ctx.principal.subject, reason, flag_threshold())
            return status

        return self.run_command(ctx, "FlagStatusUpdate", request_fingerprint, decide)  # type: ignore[return-value]

    def vote_restore_status_update(self, ctx: CommandContext, author_id: str, status_id: str, request_fingerprint: str) -> StatusUpdate:
        def decide() -> StatusUpdate:
            status = self._flaggable_status(ctx, author_id, status_id)
            if ctx.principal.is_service:
                status.moderate_restore()
            else:
                status.vote_restore(ctx.principal.subject, flag_threshold())
            return status

        return self.run_command(ctx, "VoteRestoreStatusUpdate", request_fingerprint, decide)  # type: ignore[return-value]

    def moderate_status_update(self, ctx: CommandContext, author_id: str, status_id: str, hide: bool, reason: str, request_fingerprint: str) -> StatusUpdate:
        """An owner of the community a COMMUNITY status update is in hides it, or brings a hidden
        one back, saying why (watercooler.moderation); a service moderates any."""
        def decide() -> StatusUpdate:
            status = self._flaggable_status(ctx, author_id, status_id)
            principal = ctx.principal
            if not principal.is_service:
                owners = self.get_community(status.community_id, field="name").owners if status.community_id else []
                if principal.kind != "employee" or principal.subject not in owners:
                    raise PermissionDenied("only an owner of the status update's community (or a service) moderates it", field="name")
            if hide:
                status.hide_as_moderator(principal.subject, reason)
            else:
                status.restore_as_moderator(principal.subject, reason)
            return status

        return self.run_command(ctx, "HideStatusUpdate" if hide else "RestoreStatusUpdate", request_fingerprint, decide)  # type: ignore[return-value]

    def _flaggable_status(self, ctx: CommandContext, author_id: str, status_id: str) -> StatusUpdate:
        """The status update, if the caller is in its audience (hidden or not: flags and restore
        votes reach a hidden item's audience, who answer with the flag state only); otherwise
        NOT_FOUND, as for a made-up name. Guests take no part in the graph."""
        if ctx.principal.kind == "guest":
            raise PermissionDenied("guests take no part in the graph", field="authorization")
        name = f"profiles/{author_id}/statusUpdates/{status_id}"
        status: StatusUpdate = self.load(StatusUpdate.create_id(author_id, status_id), StatusUpdate, name)
        audience = Content(status.visibility, status.community_id, status.author_id, deleted=status.deleted, classification=status.classification)
        if not may_see_content(ctx.principal, audience, self._is_member):
            raise NotFound(f"{name} not found", field="name")
        return status

    def _is_member(self, community_id: str, employee_id: str) -> bool:
        try:
            return self.get_community(community_id, field="community").is_member(employee_id)
        except NotFound:
            return False

    # --- queries ------------------------------------------------------------------------------
    def get_profile(self, employee_id: str, field: str = "name") -> Profile:
        validate_employee_id(employee_id, field=field)
        return self.load(profile_id(employee_id), Profile, f"profiles/{employee_id}", field=field)

    def batch_get_profiles(self, employee_ids: list[str]) -> list[Profile]:
        if len(employee_ids) > MAX_BATCH_GET:
            raise InvalidArgument(f"at most {MAX_BATCH_GET} names per call", field="names")
        return [self.get_profile(employee_id, field=f"names[{i}]") for i, employee_id in enumerate(employee_ids)]

    def management_chain(self, employee_id: str) -> list[Profile]:
        chain: list[Profile] = []
        current = self.get_profile(employee_id).manager_id
        seen = {employee_id}
        # The manager checks on write forbid cycles; the bound only guards against bad history.
        while current and current not in seen and len(chain) < MAX_MANAGER_CHAIN:
            seen.add(current)
            manager = self.get_profile(current)
            chain.append(manager)
            current = manager.manager_id
        return chain

    # --- helpers ---------------------------------------------------------------------------------
    def _check_actor(self, ctx: CommandContext, actor_id: str, field: str = "parent") -> None:
        validate_employee_id(actor_id, field=field)
        if ctx.principal.kind == "guest":
            raise PermissionDenied("guests take part in the jams that invited them, not in the social graph", field=field)
        if not (ctx.principal.is_service or ctx.principal.subject == actor_id):
            raise PermissionDenied("you may only act as yourself", field=field)

    def _require_profile(self, employee_id: str, field: str) -> Profile:
        validate_employee_id(employee_id, field=field)
        return self.load(profile_id(employee_id), Profile, f"profiles/{employee_id}", field=field)

    def _get_or_none(self, aggregate_id: Any) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    # --- rules that need other aggregates -------------------------------------------------------
    def _check_new_manager(self, employee_id: str, manager_id: str) -> None:
        if manager_id == employee_id:
            raise InvalidArgument(f"profiles/{manager_id} would make a management cycle", field="manager")
        # Existence only: a profile is never deleted and its id is derived from the employee id,
        # so one stored event proves it. Loading it instead (a read of every event and a copy
        # of the cached aggregate) was 28 % of a create's time in process (cProfile, 3,000 creates).
        if manager_id in self._known_profiles:
            return
        if not self.recorder.select_events(profile_id(manager_id), limit=1):
            raise InvalidArgument(f"profiles/{manager_id} does not exist", field="manager")
        self._remember_existing([manager_id])

    def _remember_existing(self, employee_ids: Iterable[str]) -> None:
        """Profiles seen to exist, read from the store or saved here: a profile is never deleted,
        so a later profile naming one as its manager needs no read (the team of a manager this
        replica created, in a bulk import, asked the store again for each new manager)."""
        for employee_id in employee_ids:
            if len(self._known_profiles) >= KNOWN_PROFILES_MAX:
                self._known_profiles.clear()
            self._known_profiles.add(employee_id)

    def _org_chart(self) -> OrgChart:
        try:
            return self.repository.get(OrgChart.create_id())
        except AggregateNotFoundError:
            # Two first manager changes both create it: the store keeps one, the other retries.
            return OrgChart()

    def _check_manager(self, employee_id: str, manager_id: str) -> None:
        """The manager must exist, and following the chain up must never come back."""
        seen = {employee_id}
        current = manager_id
        for _ in range(MAX_MANAGER_CHAIN):
            if current in seen:
                raise InvalidArgument(f"profiles/{manager_id} would make a management cycle", field="manager")
            seen.add(current)
            try:
                current = self.load(profile_id(current), Profile, f"profiles/{current}").manager_id
            except NotFound:
                raise InvalidArgument(f"profiles/{current} does not exist", field="manager") from None
            if not current:
                return
        raise InvalidArgument(f"management chain is deeper than {MAX_MANAGER_CHAIN}", field="manager")


APPLICATION = ProfilesApplication

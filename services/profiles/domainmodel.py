"""Profiles: who every employee (and alumnus) is.

The aggregate's decorated methods are the events it records; the rules about
what a profile may contain live here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate, event

from watercooler import personaldata
from watercooler.auth import Principal
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import EventSourcedAggregate, stable_id
from watercooler.media_names import media_name_of as media_name_of  # re-exported: shared with the read side
from watercooler.moderation import Flaggable
from watercooler.text import clean, has_control_characters
from watercooler.visibility import CLASSIFICATIONS, INTERNAL, PUBLIC, Library, classification_conflict, may_see_library

ACTIVE = "ACTIVE"
ALUMNI = "ALUMNI"

EDITABLE_FIELDS = ("display_name", "sort_name", "title", "department", "country", "manager_id", "expertise", "languages", "bio", "photo_uri")

_EMPLOYEE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_URI = re.compile(r"^(https?|s3|gs|media)://\S+$")

LIMITS = {"display_name": 200, "sort_name": 200, "title": 200, "department": 100, "bio": 5000, "photo_uri": 2000}
MAX_TAGS = 30
MAX_TAG_LENGTH = 50
MAX_LANGUAGES = 20


# --- media items, as other services reference them ---------------------------------------------
_MEDIA_NAME = re.compile(r"^media/[A-Za-z0-9._-]{1,128}$")


def validate_media_name(name: str, field: str) -> str:
    """A media item's resource name, ``media/{id}``; whether it exists is the posts service's to say."""
    name = (name or "").strip()
    if not _MEDIA_NAME.match(name):
        raise InvalidArgument("must be a media item's name, media/{id}", field=field)
    return name


@dataclass(frozen=True)
class MediaFacts:
    """What the rules here need of a media item (the posts service's MediaItem)."""

    owner: str  # profiles/{id}
    kind: str  # IMAGE, VIDEO, ...
    visibility: str  # PUBLIC, INTERNAL or RESTRICTED
    removed: bool
    classification: str = INTERNAL

    def visible_to(self, principal: Principal) -> bool:
        """The platform's library rule (watercooler.visibility): a removed item is nobody's."""
        return may_see_library(principal, Library(self.visibility, self.owner, deleted=self.removed, classification=self.classification))


def check_photo(photo: str, item: MediaFacts | None, author: Principal, field: str = "photo") -> None:
    """A photo shared in a status: an item that exists, is not removed and the author may see,
    else NOT_FOUND, exactly as if there were no such item."""
    if item is None or not item.visible_to(author):
        raise NotFound(f"{photo} not found", field=field)


def check_avatar(employee_id: str, photo: str, item: MediaFacts | None, field: str = "photo") -> None:
    """An avatar is shown with the profile, and every principal kind reads profiles (alumni, and
    guests on the jam pages that show authors): so only a PUBLIC item can be seen by all of
    them. It must be an image, and the person's own (nobody becomes the face of someone else's
    photo)."""
    check_photo(photo, item, Principal(employee_id, "employee"), field)
    assert item is not None
    if item.owner != f"profiles/{employee_id}":
        raise PermissionDenied(f"{photo} is not profiles/{employee_id}'s own media item", field=field)
    if item.kind != "IMAGE":
        raise FailedPrecondition(f"{photo} is not an image", field=field)
    if item.visibility != PUBLIC:
        raise FailedPrecondition(f"{photo} must be PUBLIC to be an avatar: everyone who reads the profile sees it", field=field)


def profile_id(employee_id: str) -> Any:
    return stable_id("profile", employee_id)


def validate_employee_id(employee_id: str, field: str = "employee_id") -> str:
    if not _EMPLOYEE_ID.match(employee_id or ""):
        raise InvalidArgument("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", field=field)
    return employee_id


def _text(name: str, value: str, required: bool = False) -> str:
    value = clean(value or "")
    if required and not value:
        raise InvalidArgument("is required", field=name)
    if len(value) > LIMITS[name]:
        raise InvalidArgument(f"must be at most {LIMITS[name]} characters", field=name)
    if has_control_characters(value, allow_newlines=(name == "bio")):
        raise InvalidArgument("must not contain control characters", field=name)
    return value


def _tags(values: list[str]) -> list[str]:
    tags: list[str] = []
    for raw in values:
        tag = clean(raw).lower()
        if not tag or len(tag) > MAX_TAG_LENGTH or has_control_characters(tag):
            raise InvalidArgument(f"each tag must be 1-{MAX_TAG_LENGTH} printable characters", field="expertise")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags", field="expertise")
    return tags


def validate_fields(fields: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Normalise and check profile fields; returns the cleaned values."""
    out: dict[str, Any] = {}
    for name in ("display_name", "sort_name", "title", "department", "bio"):
        if name in fields:
            out[name] = _text(name, fields[name], required=(name == "display_name"))
    if creating and "display_name" not in out:
        raise InvalidArgument("is required", field="display_name")
    if "country" in fields:
        country = (fields["country"] or "").strip().upper()
        if country and not _COUNTRY.match(country):
            raise InvalidArgument("must be an ISO 3166-1 alpha-2 code such as 'DE'", field="country")
        out["country"] = country
    if "manager_id" in fields:
        manager = fields["manager_id"] or ""
        out["manager_id"] = validate_employee_id(manager, field="manager") if manager else ""
    if "expertise" in fields:
        out["expertise"] = _tags(list(fields["expertise"]))
    if "languages" in fields:
        languages = [lang.strip() for lang in fields["languages"]]
        if len(languages) > MAX_LANGUAGES or any(not _LANGUAGE.match(lang) for lang in languages):
            raise InvalidArgument(f"at most {MAX_LANGUAGES} BCP 47 tags such as 'en' or 'pt-BR'", field="languages")
        out["languages"] = list(dict.fromkeys(languages))
    if "photo_uri" in fields:
        uri = (fields["photo_uri"] or "").strip()
        if uri and (len(uri) > LIMITS["photo_uri"] or not _URI.match(uri)):
            raise InvalidArgument("must be an http(s), s3, gs or media URI", field="photo_uri")
        out["photo_uri"] = uri
    if "sort_name" in out and not out["sort_name"] and "display_name" in out:
        out["sort_name"] = out["display_name"]
    return out


class Profile(EventSourcedAggregate):
    @staticmethod
    def create_id(employee_id: str) -> Any:
        return profile_id(employee_id)

    @event("ProfileCreated")
    def __init__(
        self,
        employee_id: str,
        display_name: str,
        sort_name: str,
        title: str,
        department: str,
        country: str,
        manager_id: str,
        expertise: list[str],
        languages: list[str],
        bio: str,
        photo_uri: str,
    ):
        self.employee_id = employee_id
        self.display_name = display_name
        self.sort_name = sort_name or display_name
        self.title = title
        self.department = department
        self.country = country
        self.manager_id = manager_id
        self.expertise = expertise
        self.languages = languages
        self.bio = bio
        self.photo_uri = photo_uri
        self.photo = ""  # the avatar, set by ProfilePhotoSet
        self.state = ACTIVE

    @classmethod
    def create(cls, employee_id: str, fields: dict[str, Any]) -> Profile:
        values = {name: fields.get(name, [] if name in ("expertise", "languages") else "") for name in EDITABLE_FIELDS}
        if values["manager_id"] == employee_id:
            raise InvalidArgument("a person cannot be their own manager", field="manager")
        return cls(employee_id=employee_id, **values)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply already-validated changes; records nothing if nothing changes."""
        changed = [name for name in EDITABLE_FIELDS if name in changes and changes[name] != getattr(self, name)]
        if not changed:
            return
        if changes.get("manager_id") == self.employee_id:
            raise InvalidArgument("a person cannot be their own manager", field="manager")
        new_values = {name: changes[name] if name in changed else getattr(self, name) for name in EDITABLE_FIELDS}
        self._updated(changed_fields=changed, **new_values)

    @event("ProfileUpdated")
    def _updated(
        self,
        changed_fields: list[str],
        display_name: str,
        sort_name: str,
        title: str,
        department: str,
        country: str,
        manager_id: str,
        expertise: list[str],
        languages: list[str],
        bio: str,
        photo_uri: str,
    ) -> None:
        for name in changed_fields:
            setattr(self, name, locals()[name])

    def leave_company(self, reason: str) -> None:
        if self.state == ALUMNI:
            raise FailedPrecondition("the profile is already an alumni profile", field="state")
        self._became_alumni(reason=reason)

    @event("ProfileBecameAlumni")
    def _became_alumni(self, reason: str) -> None:
        self.state = ALUMNI

    def set_photo(self, photo: str, item: MediaFacts | None) -> None:
        """The avatar: ``media/{id}`` of ``item`` (as the media library has it now), or "" to
        clear it; records nothing if it is the current one."""
        if photo:
            check_avatar(self.employee_id, photo, item)
        if photo != self.photo:
            self._photo_set(photo=photo)

    @event("ProfilePhotoSet")
    def _photo_set(self, photo: str) -> None:
        self.photo = photo
    # A profile saved before the guidelines existed has accepted none.
    guidelines_version = ""

    def accept_guidelines(self, version: str, current_version: str) -> None:
        """Only the current version can be accepted (the one the person was shown); accepting
        it again records nothing."""
        if version != current_version:
            raise FailedPrecondition(f"version {version} is not the current version of the guidelines; accept {current_version}", field="version", guidelines_version=current_version)
        if version != self.guidelines_version:
            self._accepted_guidelines(version=version)

    @event("GuidelinesAccepted")
    def _accepted_guidelines(self, version: str) -> None:
        self.guidelines_version = version

    # A profile saved before erasure existed was never erased.
    erased = False

    def erase(self) -> None:
        """Record the erasure (the keys are destroyed by the application, before); erasing
        again records nothing."""
        if not self.erased:
            self._erased(employee_id=self.employee_id)

    @event("ProfileErased")
    def _erased(self, employee_id: str) -> None:
        # What the sealed fields read as once the keys are gone, so this aggregate (cached in
        # memory) shows the same as one loaded from the store after the erasure.
        for name in ("display_name", "sort_name", "title", "department", "country", "bio", "photo_uri", "photo"):
            setattr(self, name, personaldata.tombstone(name))
        self.expertise, self.languages = [], []  # a list's elements have no tombstone: none left
        self.erased = True

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class OrgChart(Aggregate):
    """The company's reporting lines as one unit of consistency.

    Whether a new manager would close a cycle depends on every profile up the chain, so two
    concurrent changes (X1 reports to X2, X2 reports to X1) each pass their check on their own.
    Every manager change therefore also records an event here, in the same transaction as the
    profile's: the store takes one event per (id, version), so of two changes decided against
    the same version of the chart only the first commits, whichever replica ran it, and the
    other is decided again against the new chart. A plain ``Aggregate``: bookkeeping that the
    relay keeps home, not a published fact (the profile's own event is the fact).

    Only a new non-empty manager needs it: a new profile cannot close a cycle (nobody can
    report to an id before it exists), nor can clearing a manager."""

    @staticmethod
    def create_id() -> Any:
        return stable_id("org-chart")

    @event("Started")
    def __init__(self) -> None:
        self.manager_changes = 0

    @event("ManagerChanged")
    def record_manager_change(self, employee_id: str, manager_id: str) -> None:
        self.manager_changes += 1


# --- Communities --------------------------------------------------------------------------------
OPEN = "OPEN"
INVITE_ONLY = "INVITE_ONLY"
ACCESS_LEVELS = (OPEN, INVITE_ONLY)

_COMMUNITY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
COMMUNITY_LIMITS = {"display_name": 200, "description": 2000}


def community_id_of(community_id: str) -> Any:
    return stable_id("community", community_id)


def validate_community_id(community_id: str, field: str = "community_id") -> str:
    if not _COMMUNITY_ID.match(community_id or ""):
        raise InvalidArgument("must be 3-64 lowercase letters, digits or '-', starting with a letter or digit", field=field)
    return community_id


def validate_community_fields(display_name: str, description: str, access: str) -> dict[str, str]:
    display_name, description = clean(display_name or ""), clean(description or "")
    if not display_name:
        raise InvalidArgument("is required", field="display_name")
    for name, value in (("display_name", display_name), ("description", description)):
        if len(value) > COMMUNITY_LIMITS[name]:
            raise InvalidArgument(f"must be at most {COMMUNITY_LIMITS[name]} characters", field=name)
        if has_control_characters(value, allow_newlines=(name == "description")):
            raise InvalidArgument("must not contain control characters", field=name)
    if access not in ACCESS_LEVELS:
        raise InvalidArgument("must be OPEN or INVITE_ONLY", field="access")
    return {"display_name": display_name, "description": description, "access": access}


class Community(EventSourcedAggregate):
    """A named group. Membership lives here (the source of truth); the search index
    `communities` mirrors it for the COMMUNITY visibility checks of every service."""

    @staticmethod
    def create_id(community_id: str) -> Any:
        return community_id_of(community_id)

    @event("CommunityCreated")
    def __init__(self, community_id: str, display_name: str, description: str, access: str, owners: list[str], members: list[str]):
        self.community_id = community_id
        self.display_name = display_name
        self.description = description
        self.access = access
        self.owners = list(owners)
        self.members = list(members)
        self.invited: list[str] = []
        self.archived = False

    @classmethod
    def create(cls, community_id: str, fields: dict[str, str], owner_id: str) -> Community:
        return cls(community_id=community_id, owners=[owner_id], members=[owner_id], **fields)

    def is_member(self, employee_id: str) -> bool:
        return employee_id in self.members

    def lists_shown_to(self, person_id: str, is_service: bool) -> bool:
        """Who sees the member list and the pending invitations: anyone for an OPEN community;
        for an INVITE_ONLY one, its members and services (the community itself stays public)."""
        return self.access != INVITE_ONLY or is_service or self.is_member(person_id)

    # --- running it: owners (or a service) -------------------------------------------------------
    def check_open(self) -> None:
        """An archived community is read-only: every write into it is refused."""
        if self.archived:
            raise FailedPrecondition(f"communities/{self.community_id} is archived (read-only)", field="name")

    def check_owner(self, by: str, by_service: bool) -> None:
        if not by_service and by not in self.owners:
            raise PermissionDenied("only owners run a community", field="name")

    def update(self, changes: dict[str, str], by: str, by_service: bool) -> None:
        """``changes``: the field-mask paths asked for (display_name, description, access)."""
        self.check_owner(by, by_service)
        self.check_open()
        current = {"display_name": self.display_name, "description": self.description, "access": self.access}
        values = validate_community_fields(**{**current, **changes})
        changed = [name for name in current if values[name] != current[name]]
        if changed:
            self._updated(changed_fields=changed, updated_by=by, **values)

    @event("CommunityUpdated")
    def _updated(self, changed_fields: list[str], updated_by: str, display_name: str, description: str, access: str) -> None:
        self.display_name, self.description, self.access = display_name, description, access

    def add_owner(self, member_id: str, by: str, by_service: bool) -> None:
        self.check_owner(by, by_service)
        self.check_open()
        if member_id in self.owners:
            raise AlreadyExists(f"profiles/{member_id} is already an owner", field="owner")
        if member_id not in self.members:
            raise FailedPrecondition(f"profiles/{member_id} is not a member; owners are members", field="owner")
        self._owner_added(owner_id=member_id, added_by=by)

    @event("CommunityOwnerAdded")
    def _owner_added(self, owner_id: str, added_by: str) -> None:
        self.owners.append(owner_id)

    def remove_owner(self, owner_id: str, by: str, by_service: bool) -> None:
        """An owner steps down (or another owner, or a service, takes the role away); they stay
        a member. The last owner stays: a community always has one."""
        self.check_owner(by, by_service)
        self.check_open()
        if owner_id not in self.owners:
            raise FailedPrecondition(f"profiles/{owner_id} is not an owner", field="owner")
        if self.owners == [owner_id]:
            raise FailedPrecondition("the last owner stays; add another owner first", field="owner")
        self._owner_removed(owner_id=owner_id, removed_by=by)

    @event("CommunityOwnerRemoved")
    def _owner_removed(self, owner_id: str, removed_by: str) -> None:
        self.owners.remove(owner_id)

    def transfer_ownership(self, from_owner: str, to_member: str) -> None:
        """One owner hands their ownership to a member, in one step."""
        self.check_open()
        if from_owner not in self.owners:
            raise PermissionDenied("only an owner hands over their ownership", field="name")
        if to_member == from_owner or to_member in self.owners:
            raise AlreadyExists(f"profiles/{to_member} is already an owner", field="new_owner")
        if to_member not in self.members:
            raise FailedPrecondition(f"profiles/{to_member} is not a member; owners are members", field="new_owner")
        self._ownership_transferred(from_owner_id=from_owner, to_owner_id=to_member)

    @event("CommunityOwnershipTransferred")
    def _ownership_transferred(self, from_owner_id: str, to_owner_id: str) -> None:
        self.owners = [to_owner_id if owner == from_owner_id else owner for owner in self.owners]

    def archive(self, by: str, by_service: bool) -> None:
        self.check_owner(by, by_service)
        self.check_open()
        self._archived(archived_by=by)

    @event("CommunityArchived")
    def _archived(self, archived_by: str) -> None:
        self.archived = True

    def invite(self, member_id: str, by: str, by_service: bool) -> None:
        self.check_open()
        if not by_service:
            if by not in self.members:
                raise PermissionDenied("only members may invite", field="name")
            if self.access == INVITE_ONLY and by not in self.owners:
                raise PermissionDenied("only owners may invite to an invite-only community", field="name")
        if member_id in self.members:
            raise AlreadyExists(f"profiles/{member_id} is already a member", field="member")
        if member_id in self.invited:
            raise AlreadyExists(f"profiles/{member_id} is already invited", field="member")
        self._invited(member_id=member_id, invited_by=by)

    @event("CommunityMemberInvited")
    def _invited(self, member_id: str, invited_by: str) -> None:
        self.invited.append(member_id)

    def join(self, member_id: str) -> None:
        self.check_open()
        if member_id in self.members:
            raise AlreadyExists(f"profiles/{member_id} is already a member", field="member")
        if self.access == INVITE_ONLY and member_id not in self.invited:
            raise PermissionDenied("this community is invite-only; an owner must invite you first", field="name")
        self._joined(member_id=member_id)

    @event("CommunityMemberJoined")
    def _joined(self, member_id: str) -> None:
        self.members.append(member_id)
        if member_id in self.invited:
            self.invited.remove(member_id)

    def leave(self, member_id: str) -> None:
        self.check_open()
        if member_id not in self.members:
            raise FailedPrecondition(f"profiles/{member_id} is not a member", field="member")
        if self.owners == [member_id]:
            raise FailedPrecondition("the last owner cannot leave; the community would have no owner", field="member")
        self._left(member_id=member_id)

    @event("CommunityMemberLeft")
    def _left(self, member_id: str) -> None:
        self.members.remove(member_id)
        if member_id in self.owners:
            self.owners.remove(member_id)

    def remove(self, member_id: str, by: str, by_service: bool) -> None:
        self.check_open()
        if not by_service and by not in self.owners:
            raise PermissionDenied("only owners may remove members", field="name")
        if member_id not in self.members and member_id not in self.invited:
            raise FailedPrecondition(f"profiles/{member_id} is neither a member nor invited", field="member")
        if member_id in self.owners:
            raise FailedPrecondition("an owner cannot be removed; they may leave", field="member")
        self._removed(member_id=member_id, removed_by=by)

    @event("CommunityMemberRemoved")
    def _removed(self, member_id: str, removed_by: str) -> None:
        if member_id in self.members:
            self.members.remove(member_id)
        if member_id in self.invited:
            self.invited.remove(member_id)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


# --- The graph ----------------------------------------------------------------------------------
def check_pair(actor_id: str, target_id: str) -> None:
    if actor_id == target_id:
        raise InvalidArgument("must be someone other than parent", field="target")


class Follow(EventSourcedAggregate):
    """One record per ordered pair (follower, followee), so a second follow of the same
    person collides in the store instead of making a duplicate edge."""

    @staticmethod
    def create_id(follower_id: str, followee_id: str) -> Any:
        return stable_id("follow", follower_id, followee_id)

    @event("FollowEdgeCreated")
    def __init__(self, follower_id: str, followee_id: str):
        check_pair(follower_id, followee_id)
        self.follower_id = follower_id
        self.followee_id = followee_id
        self.active = False

    def follow(self) -> None:
        """Following someone already followed changes nothing (and records nothing)."""
        if not self.active:
            self._followed(follower_id=self.follower_id, followee_id=self.followee_id)

    @event("Followed")
    def _followed(self, follower_id: str, followee_id: str) -> None:
        self.active = True

    def unfollow(self) -> None:
        if not self.active:
            raise FailedPrecondition(f"profiles/{self.follower_id} does not follow profiles/{self.followee_id}", field="target")
        self._unfollowed(follower_id=self.follower_id, followee_id=self.followee_id)

    @event("Unfollowed")
    def _unfollowed(self, follower_id: str, followee_id: str) -> None:
        self.active = False


PENDING = "PENDING"
CONNECTED = "CONNECTED"
NONE = "NONE"


class Connection(EventSourcedAggregate):
    """One record per unordered pair: requested, then accepted (or declined, withdrawn,
    removed — after which either may ask again)."""

    @staticmethod
    def pair(a: str, b: str) -> list[str]:
        return sorted((a, b))

    @staticmethod
    def create_id(member_ids: list[str]) -> Any:
        return stable_id("connection", *sorted(member_ids))

    @event("ConnectionOpened")
    def __init__(self, member_ids: list[str]):
        self.member_ids = sorted(member_ids)
        self.state = NONE
        self.requester_id = ""

    def other(self, employee_id: str) -> str:
        return self.member_ids[1] if self.member_ids[0] == employee_id else self.member_ids[0]

    def request(self, requester_id: str) -> None:
        addressee = self.other(requester_id)
        if self.state == CONNECTED:
            raise AlreadyExists(f"already connected to profiles/{addressee}", field="target")
        if self.state == PENDING:
            if self.requester_id == requester_id:
                raise AlreadyExists(f"a request to profiles/{addressee} is already pending", field="target")
            raise FailedPrecondition(f"profiles/{addressee} already asked you; accept their request instead", field="target")
        self._requested(requester_id=requester_id, addressee_id=addressee)

    @event("ConnectionRequested")
    def _requested(self, requester_id: str, addressee_id: str) -> None:
        self.state = PENDING
        self.requester_id = requester_id

    def accept(self, by: str) -> None:
        if self.state != PENDING or self.requester_id == by:
            raise FailedPrecondition(f"there is no pending request from profiles/{self.other(by)}", field="target")
        self._accepted(accepted_by=by)

    @event("ConnectionAccepted")
    def _accepted(self, accepted_by: str) -> None:
        self.state = CONNECTED

    def decline(self, by: str) -> None:
        """The addressee declines, or the requester withdraws."""
        if self.state != PENDING:
            raise FailedPrecondition(f"there is no pending request between you and profiles/{self.other(by)}", field="target")
        self._declined(declined_by=by)

    @event("ConnectionDeclined")
    def _declined(self, declined_by: str) -> None:
        self.state = NONE

    def remove(self, by: str) -> None:
        if self.state != CONNECTED:
            raise FailedPrecondition(f"not connected to profiles/{self.other(by)}", field="target")
        self._removed(removed_by=by)

    @event("ConnectionRemoved")
    def _removed(self, removed_by: str) -> None:
        self.state = NONE


# --- Status updates -----------------------------------------------------------------------------
VISIBILITIES = ("PUBLIC", "INTERNAL", "COMMUNITY", "PRIVATE")
MAX_STATUS_LENGTH = 500


def validate_status(text: str, photo: str, visibility: str, community_id: str, classification: str = INTERNAL) -> dict[str, str]:
    text, photo = clean(text or ""), (photo or "").strip()
    if len(text) > MAX_STATUS_LENGTH:
        raise InvalidArgument(f"must be at most {MAX_STATUS_LENGTH} characters", field="text")
    if has_control_characters(text, allow_newlines=True):
        raise InvalidArgument("must not contain control characters", field="text")
    if photo:
        validate_media_name(photo, field="photo")
    if not text and not photo:
        raise InvalidArgument("is required unless a photo is shared", field="text")
    if visibility not in VISIBILITIES:
        raise InvalidArgument("must be PUBLIC, INTERNAL, COMMUNITY or PRIVATE", field="visibility")
    if visibility == "COMMUNITY" and not community_id:
        raise InvalidArgument("is required for COMMUNITY visibility", field="community")
    if visibility != "COMMUNITY" and community_id:
        raise InvalidArgument("is only allowed with COMMUNITY visibility", field="community")
    if classification not in CLASSIFICATIONS:
        raise InvalidArgument(f"must be one of {', '.join(CLASSIFICATIONS)}", field="classification")
    if conflict := classification_conflict(visibility, classification):
        raise InvalidArgument(conflict, field="classification")
    return {"text": text, "photo_uri": photo, "visibility": visibility, "community_id": community_id, "classification": classification}


# Status text formats; every status posted before v2 of StatusUpdatePosted was plain text.
PLAIN = "PLAIN"


class StatusUpdate(Flaggable):
    """Flags (watercooler.moderation): a status update cannot be edited, so only restore
    votes (or a service) bring a hidden one back."""

    @staticmethod
    def create_id(author_id: str, status_id: str) -> Any:
        return stable_id("status", author_id, status_id)

    class StatusUpdatePosted(EventSourcedAggregate.Created):
        """Schema v2: ``photo`` renamed ``photo_uri`` (as on Profile), ``text_format`` added.
        Schema v3: ``photo_uri`` is a media item's resource name, ``media/{id}``; v1 and v2
        wrote ``mediaItems/{id}`` for the same item.

        Stored older events are upcast when read (the library calls ``upcast_v1_v2``, then
        ``upcast_v2_v3``, on the stored state before building the event), so replay and the
        relay only ever see v3. See docs/DEVELOPING.md "Evolving an event"."""

        class_version = 3
        status_id: str
        author_id: str
        text: str
        photo_uri: str
        visibility: str
        community_id: str
        text_format: str
        classification: str  # absent from events stored before labels: INTERNAL (the default below)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["photo_uri"] = state.pop("photo", "")
            state["text_format"] = PLAIN

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["photo_uri"] = media_name_of(state.get("photo_uri", ""))

    @event(StatusUpdatePosted)
    def __init__(self, status_id: str, author_id: str, text: str, photo_uri: str, visibility: str, community_id: str, text_format: str = PLAIN,
                 classification: str = INTERNAL):
        self.status_id = status_id
        self.classification = classification
        self.author_id = author_id
        self.text = text
        self.photo_uri = photo_uri
        self.text_format = text_format
        self.visibility = visibility
        self.community_id = community_id
        self.deleted = False
        self._init_flags()

    def delete(self, by: str) -> None:
        if self.deleted:
            raise FailedPrecondition("already deleted", field="name")
        self._deleted(deleted_by=by)

    @event("StatusUpdateDeleted")
    def _deleted(self, deleted_by: str) -> None:
        self.deleted = True


class NotificationSettings(EventSourcedAggregate):
    """One per person: the kinds of notifications they are not told about, and the last one
    they marked read (the search side compares notifications' order; this only records what
    was asked, once per distinct answer so a repeated call records nothing)."""

    @staticmethod
    def create_id(person_id: str) -> Any:
        return stable_id("notification-settings", person_id)

    @event("NotificationSettingsCreated")
    def __init__(self, person_id: str):
        self.person_id = person_id
        self.disabled_kinds: list[str] = []
        self.read_up_to = ""

    def change_preferences(self, disabled_kinds: list[str]) -> None:
        wanted = validate_notification_kinds(disabled_kinds)
        if wanted != self.disabled_kinds:
            self._preferences_changed(person_id=self.person_id, disabled_kinds=wanted)

    @event("NotificationPreferencesChanged")
    def _preferences_changed(self, person_id: str, disabled_kinds: list[str]) -> None:
        self.disabled_kinds = list(disabled_kinds)

    def mark_read(self, up_to: str) -> None:
        prefix = f"profiles/{self.person_id}/notifications/"
        notification = up_to.removeprefix(prefix)
        if not up_to.startswith(prefix) or not _NOTIFICATION_ID.match(notification):
            raise InvalidArgument(f"must be {prefix}{{notification_id}}, one of the caller's notifications", field="up_to")
        if up_to != self.read_up_to:
            self._marked_read(person_id=self.person_id, up_to=up_to)

    @event("NotificationsMarkedRead")
    def _marked_read(self, person_id: str, up_to: str) -> None:
        self.read_up_to = up_to


_NOTIFICATION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def validate_notification_kinds(kinds: list[str], field: str = "settings.disabled_kinds") -> list[str]:
    from watercooler.notification_kinds import KINDS

    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise InvalidArgument(f"unknown kind {kind!r}; one of {', '.join(KINDS)}", field=f"{field}[{i}]")
    return sorted(set(kinds))

"""gRPC face of the profiles application: translates messages, nothing more."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from watercooler.errors import InvalidArgument
from watercooler.eventstore import fields_of_request
from watercooler.moderation import flag_threshold
from watercooler.profiles.v1 import communities_pb2, communities_pb2_grpc, graph_pb2, graph_pb2_grpc, profiles_pb2, profiles_pb2_grpc
from watercooler.rpc import (
    command_context,
    decode_page_token,
    encode_page_token,
    enum_name,
    fields_under,
    in_thread,
    page_size,
    parse_name,
    request_fingerprint,
)

from .application import NewProfile, ProfilesApplication
from .domainmodel import ALUMNI, CONNECTED, PENDING, Community, Connection, Follow, Profile, StatusUpdate

# Resource field -> domain attribute, for update masks.
MASK_FIELDS = {
    "display_name": "display_name",
    "sort_name": "sort_name",
    "title": "title",
    "department": "department",
    "country": "country",
    "manager": "manager_id",
    "expertise": "expertise",
    "languages": "languages",
    "bio": "bio",
    "photo_uri": "photo_uri",
}


def to_proto(profile: Profile, photo: str = "") -> profiles_pb2.Profile:
    """``photo``: the avatar as the caller may see it (ProfilesApplication.photo_shown)."""
    message = profiles_pb2.Profile(
        name=f"profiles/{profile.employee_id}",
        employee_id=profile.employee_id,
        display_name=profile.display_name,
        sort_name=profile.sort_name,
        title=profile.title,
        department=profile.department,
        country=profile.country,
        manager=f"profiles/{profile.manager_id}" if profile.manager_id else "",
        expertise=profile.expertise,
        languages=profile.languages,
        bio=profile.bio,
        photo_uri=profile.photo_uri,
        state=profiles_pb2.Profile.ALUMNI if profile.state == ALUMNI else profiles_pb2.Profile.ACTIVE,
        etag=profile.etag,
        photo=photo,
        guidelines_version=profile.guidelines_version,
    )
    message.create_time.FromDatetime(profile.created_on)
    message.update_time.FromDatetime(profile.modified_on)
    return message


def _fields_from(message: profiles_pb2.Profile, paths: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for path in paths:
        attribute = MASK_FIELDS[path]
        value = getattr(message, path)
        if path == "manager":
            value = parse_name(value, "profiles", field="manager") if value else ""
        elif path in ("expertise", "languages"):
            value = list(value)
        fields[attribute] = value
    return fields


class ProfileServicer(profiles_pb2_grpc.ProfileServiceServicer):
    def __init__(self, app: ProfilesApplication):
        self.app = app

    async def _shown(self, profile: Profile) -> profiles_pb2.Profile:
        return to_proto(profile, await _photo_shown(self.app, profile.photo))

    async def _all_shown(self, profiles: list[Profile]) -> list[profiles_pb2.Profile]:
        return list(await asyncio.gather(*(self._shown(p) for p in profiles)))

    async def CreateProfile(self, request, context):
        profile = request.profile
        if not profile.employee_id:
            raise InvalidArgument("is required", field="profile.employee_id")
        ctx = command_context(context, request.request_id)
        with fields_under("profile"):
            fields = _fields_from(profile, list(MASK_FIELDS))
            created = await in_thread(self.app.create_profile, ctx, profile.employee_id, fields, request_fingerprint(request))
        return await self._shown(created)

    async def GetProfile(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        return await self._shown(await in_thread(self.app.get_profile, employee_id))

    async def UpdateProfile(self, request, context):
        employee_id = parse_name(request.profile.name, "profiles", field="profile.name")
        if request.HasField("update_mask"):
            paths = list(request.update_mask.paths)
            unknown = [p for p in paths if p not in MASK_FIELDS]
            if unknown:
                raise InvalidArgument(f"unknown or read-only field(s): {', '.join(unknown)}", field="update_mask")
            if "*" in paths:
                paths = list(MASK_FIELDS)
        else:
            # AIP-134: without a mask, every field that is set is updated.
            paths = [p for p in MASK_FIELDS if _is_set(request.profile, p)]
        ctx = command_context(context, request.request_id)
        with fields_under("profile"):
            changes = _fields_from(request.profile, paths)
            updated = await in_thread(
                self.app.update_profile, ctx, employee_id, changes, request.profile.etag, request_fingerprint(request)
            )
        return await self._shown(updated)

    async def BatchCreateProfiles(self, request, context):
        requests = []
        for index, create in enumerate(request.requests):
            with fields_of_request(index):
                if not create.profile.employee_id:
                    raise InvalidArgument("is required", field="profile.employee_id")
                ctx = command_context(context, create.request_id)
                with fields_under("profile"):
                    fields = _fields_from(create.profile, list(MASK_FIELDS))
            requests.append(NewProfile(ctx, create.profile.employee_id, fields, request_fingerprint(create)))
        created = await in_thread(self.app.batch_create_profiles, requests)
        return profiles_pb2.BatchCreateProfilesResponse(profiles=[to_proto(p) for p in created])  # new: no avatar yet

    async def BatchGetProfiles(self, request, context):
        ids = [parse_name(name, "profiles", field=f"names[{i}]") for i, name in enumerate(request.names)]
        found = await in_thread(self.app.batch_get_profiles, ids)
        return profiles_pb2.BatchGetProfilesResponse(profiles=await self._all_shown(found))

    async def GetManagementChain(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        chain = await in_thread(self.app.management_chain, employee_id)
        return profiles_pb2.ManagementChain(managers=await self._all_shown(chain))

    async def LeaveCompany(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        ctx = command_context(context, request.request_id)
        return await self._shown(await in_thread(self.app.leave_company, ctx, employee_id, request.reason, request_fingerprint(request)))

    async def SetProfilePhoto(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        ctx = command_context(context, request.request_id)
        changed = await in_thread(self.app.set_profile_photo, ctx, employee_id, request.photo, request.etag, request_fingerprint(request))
        return await self._shown(changed)

    async def AcceptGuidelines(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        ctx = command_context(context, request.request_id)
        return await self._shown(await in_thread(self.app.accept_guidelines, ctx, employee_id, request.version, request_fingerprint(request)))


async def _photo_shown(app: ProfilesApplication, photo: str, fresh: bool = False) -> str:
    """A status photo or avatar as the caller may see it now ("" without one: no lookup)."""
    if not photo:
        return ""
    from watercooler.auth import current_principal

    return await in_thread(app.photo_shown, current_principal(), photo, fresh)


# --- communities ------------------------------------------------------------------------------
ACCESS = {communities_pb2.Community.OPEN: "OPEN", communities_pb2.Community.INVITE_ONLY: "INVITE_ONLY"}


def community_to_proto(community: Community, invited: list[str]) -> communities_pb2.Community:
    """``invited``: the pending invitations the caller may see (ProfilesApplication.invitations_shown_to)."""
    message = communities_pb2.Community(
        name=f"communities/{community.community_id}",
        community_id=community.community_id,
        display_name=community.display_name,
        description=community.description,
        access=communities_pb2.Community.Access.Value(community.access),
        owners=[f"profiles/{o}" for o in community.owners],
        member_count=len(community.members),
        invited=[f"profiles/{i}" for i in invited],
        etag=community.etag,
        archived=community.archived,
    )
    message.create_time.FromDatetime(community.created_on)
    message.update_time.FromDatetime(community.modified_on)
    return message


# What UpdateCommunity changes (field-mask paths).
COMMUNITY_MASK_FIELDS = ("display_name", "description", "access")

class CommunityServicer(communities_pb2_grpc.CommunityServiceServicer):
    def __init__(self, app: ProfilesApplication):
        self.app = app

    async def CreateCommunity(self, request, context):
        c = request.community
        ctx = command_context(context, request.request_id)
        with fields_under("community"):
            owner = parse_name(c.owners[0], "profiles", field="owners") if c.owners else ""
            fields = {"display_name": c.display_name, "description": c.description, "access": ACCESS.get(c.access, "")}
            created = await in_thread(self.app.create_community, ctx, c.community_id, fields, owner, request_fingerprint(request))
        return self._community(created)

    async def GetCommunity(self, request, context):
        community_id = parse_name(request.name, "communities")
        return self._community(await in_thread(self.app.get_community, community_id))

    async def _membership(self, action, request, context):
        community_id = parse_name(request.name, "communities")
        member = parse_name(request.member, "profiles", field="member") if request.member else ""
        ctx = command_context(context, request.request_id)
        changed = await in_thread(self.app.change_membership, ctx, action, community_id, member, request_fingerprint(request))
        return self._community(changed)

    def _community(self, community: Community) -> communities_pb2.Community:
        from watercooler.auth import current_principal

        return community_to_proto(community, self.app.invitations_shown_to(current_principal(), community))

    async def JoinCommunity(self, request, context):
        return await self._membership("join", request, context)

    async def LeaveCommunity(self, request, context):
        return await self._membership("leave", request, context)

    async def InviteMember(self, request, context):
        return await self._membership("invite", request, context)

    async def RemoveMember(self, request, context):
        return await self._membership("remove", request, context)

    async def _run(self, action: str, name: str, argument: Any, request, context, etag: str = ""):
        community_id = parse_name(name, "communities")
        ctx = command_context(context, request.request_id)
        return self._community(await in_thread(self.app.run_community, ctx, action, community_id, argument, etag, request_fingerprint(request)))

    async def UpdateCommunity(self, request, context):
        c = request.community
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else [p for p in COMMUNITY_MASK_FIELDS if getattr(c, p)]
        unknown = [p for p in paths if p not in COMMUNITY_MASK_FIELDS]
        if unknown:
            raise InvalidArgument(f"unknown or read-only field(s): {', '.join(unknown)}; updatable: {', '.join(COMMUNITY_MASK_FIELDS)}", field="update_mask")
        if not paths:
            raise InvalidArgument("names no field to change", field="update_mask")
        with fields_under("community"):
            values = {"display_name": c.display_name, "description": c.description, "access": ACCESS.get(c.access, "")}
            return await self._run("update", c.name, {p: values[p] for p in paths}, request, context, etag=c.etag)

    async def AddCommunityOwner(self, request, context):
        return await self._run("add_owner", request.name, parse_name(request.owner, "profiles", field="owner"), request, context)

    async def RemoveCommunityOwner(self, request, context):
        return await self._run("remove_owner", request.name, parse_name(request.owner, "profiles", field="owner"), request, context)

    async def TransferCommunityOwnership(self, request, context):
        return await self._run("transfer", request.name, parse_name(request.new_owner, "profiles", field="new_owner"), request, context)

    async def ArchiveCommunity(self, request, context):
        return await self._run("archive", request.name, None, request, context)

    async def ListCommunityMembers(self, request, context):
        community_id = parse_name(request.parent, "communities", field="parent")
        size = page_size(request.page_size)
        after = decode_page_token(request.page_token, request.parent) or ""
        from watercooler.auth import current_principal

        members = await in_thread(self.app.list_members, current_principal(), community_id)
        page = [m for m in members if m > after][:size]
        response = communities_pb2.ListCommunityMembersResponse(members=[f"profiles/{m}" for m in page], total_size=len(members))
        if len(page) == size and page[-1] != members[-1]:
            response.next_page_token = encode_page_token(page[-1], request.parent)
        return response

    async def GetMembership(self, request, context):
        community_id, member_id = parse_membership_name(request.name)
        from watercooler.auth import current_principal

        community = await in_thread(self.app.get_membership, current_principal(), community_id, member_id)
        return communities_pb2.Membership(
            name=f"communities/{community_id}/members/{member_id}", member=f"profiles/{member_id}", owner=member_id in community.owners
        )


def parse_membership_name(name: str) -> tuple[str, str]:
    """``communities/{community_id}/members/{employee_id}`` -> (community_id, employee_id)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "communities" or parts[2] != "members" or not parts[1] or not parts[3]:
        raise InvalidArgument("must look like 'communities/{community_id}/members/{employee_id}'", field="name")
    return parts[1], parts[3]


# --- the graph --------------------------------------------------------------------------------
def follow_to_proto(edge: Follow) -> graph_pb2.FollowEdge:
    message = graph_pb2.FollowEdge(follower=f"profiles/{edge.follower_id}", followee=f"profiles/{edge.followee_id}", active=edge.active)
    message.update_time.FromDatetime(edge.modified_on)
    return message


def connection_to_proto(connection: Connection) -> graph_pb2.Connection:
    state = {PENDING: graph_pb2.Connection.PENDING, CONNECTED: graph_pb2.Connection.CONNECTED}.get(connection.state, graph_pb2.Connection.NONE)
    message = graph_pb2.Connection(
        members=[f"profiles/{m}" for m in connection.member_ids],
        requester=f"profiles/{connection.requester_id}" if connection.requester_id else "",
        state=state,
    )
    message.update_time.FromDatetime(connection.modified_on)
    return message


def status_to_proto(status: StatusUpdate, photo: str) -> graph_pb2.StatusUpdate:
    """``photo``: the status's photo as the caller may see it (ProfilesApplication.photo_shown)."""
    message = graph_pb2.StatusUpdate(
        name=f"profiles/{status.author_id}/statusUpdates/{status.status_id}",
        author=f"profiles/{status.author_id}",
        text=status.text,
        photo=photo,
        visibility=graph_pb2.StatusUpdate.Visibility.Value(status.visibility),
        community=f"communities/{status.community_id}" if status.community_id else "",
        deleted=status.deleted,
        hidden=status.hidden,
        hide_reason=status.hide_reason,
        classification=graph_pb2.Classification.Label.Value(status.classification),
    )
    message.create_time.FromDatetime(status.created_on)
    return message


VISIBILITY_NAMES = {v.number: v.name for v in graph_pb2.StatusUpdate.Visibility.DESCRIPTOR.values if v.number}


class GraphServicer(graph_pb2_grpc.GraphServiceServicer):
    def __init__(self, app: ProfilesApplication):
        self.app = app

    def _pair(self, request) -> tuple[str, str]:
        return parse_name(request.parent, "profiles", field="parent"), parse_name(request.target, "profiles", field="target")

    async def _follow(self, action, request, context):
        actor, target = self._pair(request)
        ctx = command_context(context, request.request_id)
        return follow_to_proto(await in_thread(self.app.change_follow, ctx, action, actor, target, request_fingerprint(request)))

    async def Follow(self, request, context):
        return await self._follow("follow", request, context)

    async def Unfollow(self, request, context):
        return await self._follow("unfollow", request, context)

    async def _connection(self, action, request, context):
        actor, target = self._pair(request)
        ctx = command_context(context, request.request_id)
        return connection_to_proto(await in_thread(self.app.change_connection, ctx, action, actor, target, request_fingerprint(request)))

    async def RequestConnection(self, request, context):
        return await self._connection("request", request, context)

    async def AcceptConnection(self, request, context):
        return await self._connection("accept", request, context)

    async def DeclineConnection(self, request, context):
        return await self._connection("decline", request, context)

    async def RemoveConnection(self, request, context):
        return await self._connection("remove", request, context)

    async def CreateStatusUpdate(self, request, context):
        author = parse_name(request.parent, "profiles", field="parent")
        s = request.status_update
        ctx = command_context(context, request.request_id)
        with fields_under("status_update", request_level=("request_id", "parent")):
            community = parse_name(s.community, "communities", field="community") if s.community else ""
            visibility = VISIBILITY_NAMES.get(s.visibility, "")
            classification = enum_name(graph_pb2.Classification.Label, s.classification, "classification", zero="INTERNAL")
            fields = {"text": s.text, "photo": s.photo, "visibility": visibility, "community_id": community, "classification": classification}
            created = await in_thread(self.app.create_status_update, ctx, author, fields, request_fingerprint(request))
        # Checked against the author's view of the item as it was shared.
        return status_to_proto(created, created.photo_uri)

    async def DeleteStatusUpdate(self, request, context):
        author, status_id = _status_name(request.name)
        ctx = command_context(context, request.request_id)
        deleted = await in_thread(self.app.delete_status_update, ctx, author, status_id, request_fingerprint(request))
        return status_to_proto(deleted, await _photo_shown(self.app, deleted.photo_uri, fresh=True))

    async def FlagStatusUpdate(self, request, context):
        author, status_id = _status_name(request.name)
        ctx = command_context(context, request.request_id)
        status = await in_thread(self.app.flag_status_update, ctx, author, status_id, request.reason, request_fingerprint(request))
        return _flag_state(request.name, status)

    async def VoteRestoreStatusUpdate(self, request, context):
        author, status_id = _status_name(request.name)
        ctx = command_context(context, request.request_id)
        status = await in_thread(self.app.vote_restore_status_update, ctx, author, status_id, request_fingerprint(request))
        return _flag_state(request.name, status)

    async def HideStatusUpdate(self, request, context):
        author, status_id = _status_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.moderate_status_update, ctx, author, status_id, True, request.reason, request_fingerprint(request)))

    async def RestoreStatusUpdate(self, request, context):
        author, status_id = _status_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.moderate_status_update, ctx, author, status_id, False, request.reason, request_fingerprint(request)))


def _flag_state(name: str, item: StatusUpdate) -> graph_pb2.FlagState:
    return graph_pb2.FlagState(name=name, hidden=item.hidden, flag_count=len(item.flaggers), restore_votes=len(item.restore_voters), threshold=flag_threshold(),
                               hide_reason=item.hide_reason)


def _status_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "profiles" or parts[2] != "statusUpdates" or not parts[1] or not parts[3]:
        raise InvalidArgument("must look like 'profiles/{employee_id}/statusUpdates/{status_id}'", field="name")
    return parts[1], parts[3]


def _is_set(message: profiles_pb2.Profile, path: str) -> bool:
    value = getattr(message, path)
    return bool(len(value)) if not isinstance(value, str) else bool(value)


def register(server: grpc.aio.Server, app: ProfilesApplication) -> list[str]:
    profiles_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileServicer(app), server)
    communities_pb2_grpc.add_CommunityServiceServicer_to_server(CommunityServicer(app), server)
    graph_pb2_grpc.add_GraphServiceServicer_to_server(GraphServicer(app), server)
    from . import notification_settings, personal_data

    return [
        notification_settings.register(server, app),
        personal_data.register(server, app),
        profiles_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name,
        communities_pb2.DESCRIPTOR.services_by_name["CommunityService"].full_name,
        graph_pb2.DESCRIPTOR.services_by_name["GraphService"].full_name,
    ]

"""gRPC face of the profiles application: translates messages, nothing more."""

from __future__ import annotations

from typing import Any

import grpc

from watercooler.errors import InvalidArgument
from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc
from watercooler.rpc import command_context, fields_under, in_thread, parse_name, request_fingerprint

from .application import ProfilesApplication
from .domainmodel import ALUMNI, Profile

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


def to_proto(profile: Profile) -> profiles_pb2.Profile:
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

    async def CreateProfile(self, request, context):
        profile = request.profile
        if not profile.employee_id:
            raise InvalidArgument("is required", field="profile.employee_id")
        ctx = command_context(context, request.request_id)
        with fields_under("profile"):
            fields = _fields_from(profile, list(MASK_FIELDS))
            created = await in_thread(self.app.create_profile, ctx, profile.employee_id, fields, request_fingerprint(request))
        return to_proto(created)

    async def GetProfile(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        return to_proto(await in_thread(self.app.get_profile, employee_id))

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
        return to_proto(updated)


def _is_set(message: profiles_pb2.Profile, path: str) -> bool:
    value = getattr(message, path)
    return bool(len(value)) if not isinstance(value, str) else bool(value)


def register(server: grpc.aio.Server, app: ProfilesApplication) -> list[str]:
    profiles_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileServicer(app), server)
    return [profiles_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name]

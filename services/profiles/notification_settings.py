"""gRPC face of a person's notification settings (marking read, preferences): translates
messages only; the rules are NotificationSettings's (domainmodel.py)."""

from __future__ import annotations

from watercooler.errors import InvalidArgument
from watercooler.profiles.v1 import notifications_pb2, notifications_pb2_grpc
from watercooler.rpc import command_context, in_thread, parse_name, request_fingerprint

from .application import ProfilesApplication
from .domainmodel import NotificationSettings

UPDATABLE = ("disabled_kinds",)


def settings_to_proto(settings: NotificationSettings) -> notifications_pb2.NotificationSettings:
    return notifications_pb2.NotificationSettings(
        name=f"profiles/{settings.person_id}/notificationSettings", disabled_kinds=settings.disabled_kinds, read_up_to=settings.read_up_to
    )


def _settings_name(name: str, field: str) -> str:
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "profiles" or parts[2] != "notificationSettings" or not parts[1]:
        raise InvalidArgument("must look like 'profiles/{employee_id}/notificationSettings'", field=field)
    return parts[1]


class NotificationSettingsServicer(notifications_pb2_grpc.NotificationSettingsServiceServicer):
    def __init__(self, app: ProfilesApplication):
        self.app = app

    async def MarkNotificationsRead(self, request, context):
        person = parse_name(request.parent, "profiles", field="parent")
        if not request.up_to:
            raise InvalidArgument("required, as 'profiles/{employee_id}/notifications/{notification_id}'", field="up_to")
        ctx = command_context(context, request.request_id)
        return settings_to_proto(await in_thread(self.app.change_notification_settings, ctx, person, "mark_read", request.up_to, request_fingerprint(request)))

    async def UpdateNotificationSettings(self, request, context):
        person = _settings_name(request.settings.name, "settings.name")
        for i, path in enumerate(request.update_mask.paths):
            if path not in UPDATABLE:
                raise InvalidArgument(f"{path!r} cannot be updated; only {', '.join(UPDATABLE)}", field=f"update_mask.paths[{i}]")
        ctx = command_context(context, request.request_id)
        kinds = list(request.settings.disabled_kinds)
        return settings_to_proto(await in_thread(self.app.change_notification_settings, ctx, person, "preferences", kinds, request_fingerprint(request)))

    async def GetNotificationSettings(self, request, context):
        person = _settings_name(request.name, "name")
        return settings_to_proto(await in_thread(self.app.notification_settings, command_context(context, ""), person))


def register(server, app: ProfilesApplication) -> str:
    notifications_pb2_grpc.add_NotificationSettingsServiceServicer_to_server(NotificationSettingsServicer(app), server)
    return notifications_pb2.DESCRIPTOR.services_by_name["NotificationSettingsService"].full_name

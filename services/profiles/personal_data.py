"""gRPC face of erasure and of the personal data keys: translates messages only; the rules are
ProfilesApplication's (``erase_person``, ``personal_data_keys``)."""

from __future__ import annotations

from watercooler.profiles.v1 import personal_data_pb2, personal_data_pb2_grpc
from watercooler.rpc import command_context, in_thread, parse_name, request_fingerprint

from .application import ProfilesApplication


class PersonalDataServicer(personal_data_pb2_grpc.PersonalDataServiceServicer):
    def __init__(self, app: ProfilesApplication):
        self.app = app

    async def ErasePerson(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        ctx = command_context(context, request.request_id)
        profile, destroyed = await in_thread(self.app.erase_person, ctx, employee_id, request_fingerprint(request))
        return personal_data_pb2.Erasure(name=f"profiles/{profile.employee_id}", keys_destroyed=destroyed)

    async def GetPersonalDataKeys(self, request, context):
        ctx = command_context(context, "")
        keys = await in_thread(self.app.personal_data_keys, ctx.principal, list(request.key_ids), request.create)
        return personal_data_pb2.GetPersonalDataKeysResponse(
            keys=[personal_data_pb2.PersonalDataKey(key_id=key_id, key=key) for key_id, key in sorted(keys.items())])


def register(server, app: ProfilesApplication) -> str:
    personal_data_pb2_grpc.add_PersonalDataServiceServicer_to_server(PersonalDataServicer(app), server)
    return personal_data_pb2.DESCRIPTOR.services_by_name["PersonalDataService"].full_name

"""Profiles application: commands (load, call, save) and queries."""

from __future__ import annotations

from typing import Any

from watercooler.errors import Aborted, AlreadyExists, InvalidArgument, PermissionDenied
from watercooler.eventstore import CommandContext, EventSourcedApplication

from .domainmodel import Profile, profile_id, validate_employee_id, validate_fields

MAX_MANAGER_CHAIN = 64


class ProfilesApplication(EventSourcedApplication):
    service_name = "profiles"

    # --- commands ---------------------------------------------------------------------------
    def create_profile(self, ctx: CommandContext, employee_id: str, fields: dict[str, Any], request_fingerprint: str) -> Profile:
        validate_employee_id(employee_id)
        principal = ctx.principal
        if not (principal.is_service or principal.subject == employee_id):
            raise PermissionDenied("only the person or a service may create a profile", field="employee_id")

        def decide() -> Profile:
            values = validate_fields(fields, creating=True)
            if self.exists(profile_id(employee_id)):
                raise AlreadyExists(f"profiles/{employee_id} already exists", field="employee_id")
            if values.get("manager_id"):
                self._check_manager(employee_id, values["manager_id"])
            return Profile.create(employee_id, values)

        try:
            return self.run_command(ctx, "CreateProfile", request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted:
            # Lost a race with another create of the same employee id.
            raise AlreadyExists(f"profiles/{employee_id} already exists", field="employee_id") from None

    def update_profile(
        self, ctx: CommandContext, employee_id: str, changes: dict[str, Any], etag: str, request_fingerprint: str
    ) -> Profile:
        principal = ctx.principal
        if not (principal.is_service or principal.subject == employee_id):
            raise PermissionDenied("only the person or a service may edit a profile", field="name")

        def decide() -> Profile:
            profile = self.get_profile(employee_id)
            if etag and etag != profile.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {profile.etag}", field="etag", current_etag=profile.etag)
            values = validate_fields(changes, creating=False)
            if values.get("manager_id"):
                self._check_manager(employee_id, values["manager_id"])
            profile.update(values)
            return profile

        return self.run_command(ctx, "UpdateProfile", request_fingerprint, decide)  # type: ignore[return-value]

    # --- queries ------------------------------------------------------------------------------
    def get_profile(self, employee_id: str) -> Profile:
        validate_employee_id(employee_id, field="name")
        return self.load(profile_id(employee_id), Profile, f"profiles/{employee_id}")

    # --- rules that need other aggregates -------------------------------------------------------
    def _check_manager(self, employee_id: str, manager_id: str) -> None:
        """The manager must exist, and following the chain up must never come back."""
        seen = {employee_id}
        current = manager_id
        for _ in range(MAX_MANAGER_CHAIN):
            if current in seen:
                raise InvalidArgument(f"profiles/{manager_id} would make a management cycle", field="manager")
            seen.add(current)
            if not self.exists(profile_id(current)):
                raise InvalidArgument(f"profiles/{current} does not exist", field="manager")
            current = self.get_profile(current).manager_id
            if not current:
                return
        raise InvalidArgument(f"management chain is deeper than {MAX_MANAGER_CHAIN}", field="manager")


APPLICATION = ProfilesApplication

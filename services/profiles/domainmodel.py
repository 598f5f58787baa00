"""Profiles: who every employee (and alumnus) is.

The aggregate's decorated methods are the events it records; the rules about
what a profile may contain live here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Any

from eventsourcing.domain import event

from watercooler.errors import FailedPrecondition, InvalidArgument
from watercooler.eventstore import EventSourcedAggregate, stable_id
from watercooler.text import clean, has_control_characters

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
        self.state = ACTIVE

    @classmethod
    def create(cls, employee_id: str, fields: dict[str, Any]) -> "Profile":
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

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

"""The people index: one document per profile, from `profiles.events.v1`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from watercooler import personaldata
from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import collation_key

from .. import indices
from .analysis import ANALYSIS, EXCERPT, EXCERPT_MAPPING, FOLDED, FOLDED_TEXT, SHOWN_TEXT, excerpt, folded_text

# What an erasure replaces with tombstones (the personal fields of the profile's events).
ERASED_FIELDS = frozenset(personaldata.PERSONAL_FIELDS["watercooler.profiles.v1.ProfileCreated"].fields)
LIST_FIELDS = frozenset({"expertise", "languages"})
PROFILE_FIELDS = ("display_name", "sort_name", "title", "department", "country", "manager_id", "expertise", "languages", "bio", "photo_uri")


class PeopleProjection(DocumentProjection):
    name = indices.PEOPLE
    sources = ("profiles",)
    aggregate_types = frozenset({"Profile"})
    schema_version = 3  # names, job titles and bios folded, expertise normalised, by Elasticsearch; the text shown keeps its offsets (highlights read from the index)
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "employee_id": {"type": "keyword"},
            "display_name": folded_text("name_folded"),
            # The name without case or accents (copied by Elasticsearch): what name queries match.
            "name_folded": {**FOLDED_TEXT, "fields": {"raw": {"type": "keyword", "normalizer": FOLDED}}},
            "sort_name": {"type": "keyword", "index": False},
            # Unicode collation key: sorting on it gives directory order in every script.
            "sort_key": {"type": "keyword"},
            "title": SHOWN_TEXT,
            "department": {"type": "keyword"},
            "country": {"type": "keyword"},
            "manager_id": {"type": "keyword"},
            # Declared expertise: matched without case or accents ("cafe" finds "Café").
            "expertise": {"type": "keyword", "normalizer": FOLDED},
            "languages": {"type": "keyword"},
            "bio": SHOWN_TEXT,
            EXCERPT: EXCERPT_MAPPING,  # the start of the bio, which a hit shows (indices.EXCERPT)
            "photo_uri": {"type": "keyword", "index": False},
            "state": {"type": "keyword"},
            "alumni": {"type": "boolean"},
            "created_at": {"type": "date"},
            # When this projection last wrote the document, by its own clock (indices.PROJECTED_AT).
            # Never shown, never part of a result.
            indices.PROJECTED_AT: {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        if event.type_name == "ProfileCreated":
            doc = {name: _value(getattr(p, name)) for name in PROFILE_FIELDS}
            doc.update(employee_id=p.employee_id, state="ACTIVE", alumni=False, created_at=event.occurred_at.isoformat())
        elif event.type_name == "ProfileUpdated":
            if doc is None:
                raise ValueError(f"ProfileUpdated for unknown profile {event.aggregate_id}")
            for name in p.changed_fields:
                doc[name] = _value(getattr(p, name))
        elif event.type_name == "ProfileBecameAlumni":
            if doc is None:
                raise ValueError(f"ProfileBecameAlumni for unknown profile {event.aggregate_id}")
            doc.update(state="ALUMNI", alumni=True)
        elif event.type_name == "ProfilePhotoSet":
            raise SkipEvent  # person hits show no avatar; GetProfile does (as each reader may see it)
        elif event.type_name == "GuidelinesAccepted":
            raise SkipEvent  # nothing the directory shows
        elif event.type_name == "ProfileErased":
            if doc is None:
                raise SkipEvent
            # A list (expertise, languages) loses every element, as a replay opens it.
            doc.update({name: [] if name in LIST_FIELDS else personaldata.tombstone(name) for name in PROFILE_FIELDS if name in ERASED_FIELDS})
        else:
            raise ValueError(f"people projection does not know {event.envelope.event_type}")
        doc["sort_key"] = collation_key(doc.get("sort_name") or doc["display_name"])
        doc[EXCERPT] = excerpt(doc.get("bio"))
        doc[indices.PROJECTED_AT] = dt.datetime.now(dt.UTC).isoformat()
        return doc


def _value(value: Any) -> Any:
    return list(value) if not isinstance(value, (str, int, float, bool)) else value

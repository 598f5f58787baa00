"""The statuses index: one document per status update, from `profiles.events.v1`.

Its documents follow the content contract of services/search/visibility.py
(``visibility``, ``community``, ``author_id``, ``hidden``, ``deleted``) and share
``name`` and ``created_at`` with microposts in the posts index, so the network feed
(services/search/network.py) reads both in one query, newest first."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.media_names import media_name_of
from watercooler.projection import Doc, DocumentProjection

from .. import indices
from .posts import FLAG_EVENTS, apply_flags


class StatusesProjection(DocumentProjection):
    name = indices.STATUSES
    sources = ("profiles",)
    aggregate_types = frozenset({"StatusUpdate", "Flaggable"})  # flags: hidden / restored
    erased_fields: dict[str, Any] = {"text": "", "photo": ""}
    erased_by = ("author_id",)
    mappings: dict[str, Any] = {
        "properties": {
            "status_id": {"type": "keyword"},
            # The resource name: the feed's tie-breaker, shared with the posts index.
            "name": {"type": "keyword"},
            "author_id": {"type": "keyword"},
            "text": {"type": "text"},
            "photo": {"type": "keyword", "index": False},
            "visibility": {"type": "keyword"},
            # The community id when visibility is COMMUNITY.
            "community": {"type": "keyword"},
            "hidden": {"type": "boolean"},
            "classification": {"type": "keyword"},  # watercooler.visibility; absent before labels: INTERNAL
            "created_at": {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        if event.type_name in FLAG_EVENTS:
            return apply_flags(doc, event)
        if event.type_name == "StatusUpdatePosted":
            return {
                "status_id": p.status_id,
                "name": f"profiles/{p.author_id}/statusUpdates/{p.status_id}",
                "author_id": p.author_id,
                "text": p.text,
                # v1 envelopes named field 4 `photo`; same number, so every version lands here.
                # v1 and v2 named a media item `mediaItems/{id}`: read as `media/{id}` (v3).
                "photo": media_name_of(p.photo_uri) if event.envelope.schema_version < 3 else p.photo_uri,
                "visibility": p.visibility,
                "community": p.community_id,
                "classification": p.classification or "INTERNAL",
                "hidden": False,
                "created_at": event.occurred_at.isoformat(),
            }
        if doc is None:
            raise ValueError(f"{event.type_name} for unknown status update {event.aggregate_id}")
        if event.type_name == "StatusUpdateDeleted":
            doc["deleted"] = True
            return doc
        raise ValueError(f"statuses projection does not know {event.envelope.event_type}")

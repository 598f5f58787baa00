"""The media index: one document per media item, from `posts.events.v1`."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import fold, stemmed

from .posts import FLAG_EVENTS, FOLDED_FIELD, STEMMED_FIELD, TITLE_PREFIX_FIELD, apply_flags

FIELDS = ("owner", "title", "description", "kind", "size_bytes", "content_type", "tags", "visibility", "storage_uri")


class MediaProjection(DocumentProjection):
    name = "media"
    sources = ("posts",)
    aggregate_types = frozenset({"MediaItem", "Flaggable"})  # flag events are Flaggable's, whatever the item
    mappings: dict[str, Any] = {
        "properties": {
            "owner": {"type": "keyword"},
            "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "description": {"type": "text"},
            # Title and description folded, and their English stems (see .posts).
            "folded": FOLDED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
            "stemmed": STEMMED_FIELD,
            "kind": {"type": "keyword"},
            "size_bytes": {"type": "long"},
            "content_type": {"type": "keyword"},
            "tags": {"type": "keyword"},
            "visibility": {"type": "keyword"},
            "storage_uri": {"type": "keyword", "index": False},
            "created_at": {"type": "date"},
            "hidden": {"type": "boolean"},  # hidden by community flags
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        name = event.type_name
        if name in FLAG_EVENTS:
            return apply_flags(doc, event)  # a media item's (another item's: skipped)
        if name == "MediaItemRegistered":
            doc = {field: _value(getattr(p, field)) for field in FIELDS}
            doc["created_at"] = event.occurred_at.isoformat()
            return _analysed(doc)
        if name not in ("MediaItemUpdated", "MediaItemRemoved"):
            raise SkipEvent(name)
        if doc is None:
            raise ValueError(f"{name} for unknown media item {event.aggregate_id}")
        if name == "MediaItemUpdated":
            for field in p.changed_fields:
                doc[field] = _value(getattr(p, field))
        else:
            doc["deleted"] = True
        return _analysed(doc)


def _analysed(item: Doc) -> Doc:
    text = f"{item.get('title', '')}\n{item.get('description', '')}"
    item.update(folded=fold(text), stemmed=stemmed(text), title_prefix=fold(item.get("title", "")))
    return item


def _value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else list(value)

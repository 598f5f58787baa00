"""The media index: one document per media item, from `posts.events.v1`."""

from __future__ import annotations

from typing import Any

from watercooler import personaldata
from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent

from .. import indices
from .analysis import ANALYSIS, ERASED_COPIES, FOLDED_FIELD, TAGS_FIELD, TITLE_PREFIX_FIELD, copies_mapping, folded_text, language_copies
from .posts import FLAG_EVENTS, apply_flags

FIELDS = ("owner", "title", "description", "kind", "size_bytes", "content_type", "tags", "visibility", "storage_uri", "classification")


class MediaProjection(DocumentProjection):
    name = indices.MEDIA
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"MediaItem", "Flaggable"})  # flag events are Flaggable's, whatever the item
    # The title and description are sealed with the owner's key (docs/personal-data.md).
    erased_fields: dict[str, Any] = {"title": "", "description": "", "tags": [], **ERASED_COPIES}
    erased_by = ("owner",)
    # 4: ``media_id``, the last key of every sort over media items (two items of one title
    # registered in the same millisecond tied, and a page could end between them).
    schema_version = 4
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "media_id": {"type": "keyword"},
            "owner": {"type": "keyword"},
            "title": folded_text("folded", "title_prefix", fields={"raw": {"type": "keyword"}}),
            "description": folded_text("folded"),
            # Title and description without case or accents, and in their language (see .analysis).
            "folded": FOLDED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
            **copies_mapping(),
            "kind": {"type": "keyword"},
            "size_bytes": {"type": "long"},
            "content_type": {"type": "keyword"},
            "tags": TAGS_FIELD,
            "visibility": {"type": "keyword"},
            "classification": {"type": "keyword"},  # watercooler.visibility; absent before labels: INTERNAL
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
            doc["classification"] = p.classification or "INTERNAL"
            doc["created_at"] = event.occurred_at.isoformat()
            doc["media_id"] = event.aggregate_id
            return _analysed(doc)
        if name not in ("MediaItemUpdated", "MediaItemRemoved", "MediaContentAttached"):
            raise SkipEvent(name)
        if doc is None:
            raise ValueError(f"{name} for unknown media item {event.aggregate_id}")
        if name == "MediaContentAttached":  # the newest version's size and type
            doc.update(size_bytes=p.size_bytes, content_type=p.content_type, storage_uri=p.storage_uri)
        elif name == "MediaItemUpdated":
            for field in p.changed_fields:
                doc[field] = _value(getattr(p, field))
            doc["classification"] = p.classification or "INTERNAL"
        else:
            doc["deleted"] = True
            if p.reason == personaldata.ERASED_OWNER_REASON:
                # Removed because its owner was erased: this event is applied concurrently with the
                # ProfileErased that caused it, and would otherwise write back the text the
                # erasure just replaced.
                doc.update(self.erased_fields)
        return _analysed(doc)


def _analysed(item: Doc) -> Doc:
    item.update(language_copies(title=item.get("title", ""), body=item.get("description", "")))
    return item


def _value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else list(value)

"""The bookmarks index: one document per (person, normalised URL); a link's savers are
the documents that share its url, so popular links are exact counts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent

from .. import indices
from .analysis import ANALYSIS, ERASED_COPIES, FOLDED_FIELD, TAGS_FIELD, copies_mapping, folded_text, language_copies
from .posts import FLAG_EVENTS, apply_flags


class BookmarksProjection(DocumentProjection):
    name = indices.BOOKMARKS
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Bookmark", "Flaggable"})  # flag events are Flaggable's, whatever the item
    # The url too (and its host): an erased person's save counts toward no link. With nothing
    # left it is gone for every reader, as a deleted one (the posts service's GetBookmark agrees:
    # Bookmark.erased).
    erased_fields: dict[str, Any] = {"title": "", "title_raw": "", "notes": "", "tags": [], **ERASED_COPIES, "url": "", "host": "", "deleted": True}
    erased_by = ("owner_id",)
    # 3: analysed by Elasticsearch (folded, and in the item's language); the text shown keeps its
    # offsets (highlights read from the index). 4: an erased person's bookmarks are deleted.
    schema_version = 4
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "name": {"type": "keyword"},
            "owner_id": {"type": "keyword"},
            "url": {"type": "keyword", "copy_to": ["folded"]},
            "host": {"type": "keyword"},
            "title": folded_text("folded"),
            "title_raw": {"type": "keyword", "index": False},
            # Title, notes and URL without case or accents; title and notes in their language.
            "folded": FOLDED_FIELD,
            **copies_mapping(),
            "tags": TAGS_FIELD,
            "notes": folded_text("folded"),
            "visibility": {"type": "keyword"},
            "classification": {"type": "keyword"},  # watercooler.visibility; "" before labels: INTERNAL
            "community": {"type": "keyword"},
            "hidden": {"type": "boolean"},
            "created_at": {"type": "date"},
            # When this person last saved it (a re-save after deleting counts anew).
            "saved_at": {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind in FLAG_EVENTS:
            return apply_flags(doc, event)
        if kind == "BookmarkCreated":
            doc = {
                "name": f"bookmarks/{event.aggregate_id}",
                "owner_id": p.owner_id,
                "url": p.url,
                "host": urlsplit(p.url).hostname or "",
                "hidden": False,
                "created_at": event.occurred_at.isoformat(),
                "saved_at": event.occurred_at.isoformat(),
            }
        elif kind in ("BookmarkEdited", "BookmarkResaved", "BookmarkDeleted"):
            if doc is None:
                raise ValueError(f"{kind} for unknown bookmark {event.aggregate_id}")
            if kind == "BookmarkDeleted":
                doc["deleted"] = True
                return doc
            if kind == "BookmarkResaved":
                doc.update(deleted=False, saved_at=event.occurred_at.isoformat())
        else:
            raise SkipEvent
        doc.update(title=p.title, title_raw=p.title, tags=list(p.tags), notes=p.notes, visibility=p.visibility, community=p.community,
                   classification=p.classification or "INTERNAL")
        doc.update(language_copies(title=p.title, body=p.notes))
        if not doc["url"]:  # replayed after its owner's erasure: the url opened to its tombstone
            doc["deleted"] = True
        return doc

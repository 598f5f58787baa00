"""The comments index: one document per comment, with its target's audience."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import fold, stemmed

from .posts import FLAG_EVENTS, FOLDED_FIELD, STEMMED_FIELD, apply_flags


class CommentsProjection(DocumentProjection):
    name = "comments"
    sources = ("posts",)
    aggregate_types = frozenset({"Comment", "Flaggable"})  # flag events are Flaggable's, whatever the item
    mappings: dict[str, Any] = {
        "properties": {
            "name": {"type": "keyword"},
            "target": {"type": "keyword"},
            "parent": {"type": "keyword"},
            "author_id": {"type": "keyword"},
            "body": {"type": "text"},
            # The body accent- and case-folded, and its English stems (see .posts).
            "folded": FOLDED_FIELD,
            "stemmed": STEMMED_FIELD,
            "visibility": {"type": "keyword"},
            "community": {"type": "keyword"},
            "hidden": {"type": "boolean"},
            "created_at": {"type": "date"},
            "edited_at": {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind in FLAG_EVENTS:
            return apply_flags(doc, event)
        if kind == "CommentCreated":
            return {
                "name": f"comments/{event.aggregate_id}",
                "target": p.target,
                "parent": f"comments/{p.parent}" if p.parent else "",
                "author_id": p.author_id,
                "body": p.body,
                "folded": fold(p.body),
                "stemmed": stemmed(p.body),
                "visibility": p.visibility,
                "community": p.community,
                "hidden": False,
                "created_at": event.occurred_at.isoformat(),
                "edited_at": None,
            }
        if kind in ("CommentEdited", "CommentDeleted"):
            if doc is None:
                raise ValueError(f"{kind} for unknown comment {event.aggregate_id}")
            if kind == "CommentEdited":
                doc.update(body=p.body, folded=fold(p.body), stemmed=stemmed(p.body), edited_at=event.occurred_at.isoformat())
            else:
                doc["deleted"] = True
            return doc
        raise SkipEvent

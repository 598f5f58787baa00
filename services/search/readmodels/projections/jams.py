"""Jam content indices from `jams.events.v1`: ideas (one document per idea) and
threads (one document per thread and per reply, so a busy thread is not one hot document)."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent

from .. import indices
from .analysis import ANALYSIS, ERASED_COPIES, FOLDED_FIELD, TITLE_PREFIX_FIELD, copies_mapping, folded_text, language_copies
from .posts import FLAG_EVENTS, apply_flags


class JamIdeasProjection(DocumentProjection):
    name = indices.JAM_IDEAS
    sources = ("jams", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Idea", "Flaggable"})  # flag events are Flaggable's, whatever the item
    erased_fields: dict[str, Any] = {"title": "", "description": "", **ERASED_COPIES}
    erased_by = ("author",)
    schema_version = 3  # analysed by Elasticsearch (folded, and in the idea's language); the text shown keeps its offsets (highlights read from the index)
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "jam_id": {"type": "keyword"},
            "idea_id": {"type": "keyword"},
            "title": folded_text("text_folded", "title_prefix"),
            "description": folded_text("text_folded"),
            # Title and description without case or accents, and in their language (see .analysis).
            "text_folded": FOLDED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
            **copies_mapping(),
            "forum_id": {"type": "keyword"},
            "author": {"type": "keyword"},
            "seeded": {"type": "boolean"},
            "merged_into": {"type": "keyword"},
            "created_at": {"type": "date"},
            "hidden": {"type": "boolean"},  # hidden by community flags
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        if event.type_name in FLAG_EVENTS:
            return apply_flags(doc, event)
        if event.type_name == "IdeaCreated":
            return {
                "jam_id": p.jam_id, "idea_id": p.idea_id, "title": p.title, "description": p.description,
                **language_copies(title=p.title, body=p.description), "forum_id": p.forum_id, "author": p.author,
                "seeded": p.seeded, "merged_into": "", "created_at": event.occurred_at.isoformat(),
            }
        if event.type_name == "IdeaMergedInto":
            if doc is None:
                raise ValueError(f"IdeaMergedInto for unknown idea {event.aggregate_id}")
            doc["merged_into"] = p.into_idea_id
            return doc
        raise ValueError(f"jam-ideas projection does not know {event.envelope.event_type}")


class JamThreadsProjection(DocumentProjection):
    name = indices.JAM_THREADS
    sources = ("jams", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Thread", "Reply", "Flaggable"})
    erased_fields: dict[str, Any] = {"title": "", "body": "", **ERASED_COPIES}
    erased_by = ("author",)
    schema_version = 3  # analysed by Elasticsearch (folded, and in the post's language); the text shown keeps its offsets (highlights read from the index)
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "kind": {"type": "keyword"},  # thread | reply
            "jam_id": {"type": "keyword"},
            "thread_id": {"type": "keyword"},
            "reply_id": {"type": "keyword"},
            "forum_id": {"type": "keyword"},
            "idea_id": {"type": "keyword"},
            "title": folded_text("text_folded"),
            "body": folded_text("text_folded"),
            "text_folded": FOLDED_FIELD,
            **copies_mapping(),
            "author": {"type": "keyword"},
            "author_kind": {"type": "keyword"},
            "created_at": {"type": "date"},
            # Hidden by community flags (a hidden thread's replies are left out at query time:
            # services/search/visibility.Scope.hidden_threads).
            "hidden": {"type": "boolean"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        if event.type_name in FLAG_EVENTS:
            return apply_flags(doc, event)
        if event.type_name not in ("ThreadCreated", "ReplyCreated"):
            raise SkipEvent
        p = event.payload
        title = getattr(p, "title", "")
        return {
            "kind": "thread" if event.type_name == "ThreadCreated" else "reply", "jam_id": p.jam_id, "thread_id": p.thread_id,
            "reply_id": getattr(p, "reply_id", ""), "forum_id": p.forum_id, "idea_id": p.idea_id, "title": title, "body": p.body,
            **language_copies(title=title, body=p.body), "author": p.author, "author_kind": p.author_kind, "created_at": event.occurred_at.isoformat(),
        }

"""Jam content indices from `jams.events.v1`: ideas (one document per idea) and
threads (one document per thread and per reply, so a busy thread is not one hot document)."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import fold, stemmed

from .posts import FLAG_EVENTS, STEMMED_FIELD, TITLE_PREFIX_FIELD, apply_flags


class JamIdeasProjection(DocumentProjection):
    name = "jam-ideas"
    sources = ("jams",)
    aggregate_types = frozenset({"Idea", "Flaggable"})  # flag events are Flaggable's, whatever the item
    mappings: dict[str, Any] = {
        "properties": {
            "jam_id": {"type": "keyword"},
            "idea_id": {"type": "keyword"},
            "title": {"type": "text"},
            "description": {"type": "text"},
            # Accent- and case-folded in Python (the ES distribution lacks asciifolding), and stemmed.
            "text_folded": {"type": "text"},
            "stemmed": STEMMED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
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
                "text_folded": fold(f"{p.title} {p.description}"), "stemmed": stemmed(f"{p.title}\n{p.description}"), "title_prefix": fold(p.title), "forum_id": p.forum_id, "author": p.author,
                "seeded": p.seeded, "merged_into": "", "created_at": event.occurred_at.isoformat(),
            }
        if event.type_name == "IdeaMergedInto":
            if doc is None:
                raise ValueError(f"IdeaMergedInto for unknown idea {event.aggregate_id}")
            doc["merged_into"] = p.into_idea_id
            return doc
        raise ValueError(f"jam-ideas projection does not know {event.envelope.event_type}")


class JamThreadsProjection(DocumentProjection):
    name = "jam-threads"
    sources = ("jams",)
    aggregate_types = frozenset({"Thread", "Reply", "Flaggable"})
    mappings: dict[str, Any] = {
        "properties": {
            "kind": {"type": "keyword"},  # thread | reply
            "jam_id": {"type": "keyword"},
            "thread_id": {"type": "keyword"},
            "reply_id": {"type": "keyword"},
            "forum_id": {"type": "keyword"},
            "idea_id": {"type": "keyword"},
            "title": {"type": "text"},
            "body": {"type": "text"},
            "text_folded": {"type": "text"},
            "stemmed": STEMMED_FIELD,
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
            "text_folded": fold(f"{title} {p.body}"), "stemmed": stemmed(f"{title}\n{p.body}"), "author": p.author, "author_kind": p.author_kind, "created_at": event.occurred_at.isoformat(),
        }

"""The posts index: one document per blog post and per micropost, from `posts.events.v1`.

Hidden (flagged) and deleted items stay as documents with ``hidden`` / ``deleted``
set; every query filters them out, and drafts and PRIVATE items are shown to
their author only (services/search/visibility.py)."""

from __future__ import annotations

from typing import Any

from watercooler import visibility as rule
from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent

from .. import indices
from .analysis import ANALYSIS, ERASED_COPIES, FOLDED_FIELD, TAGS_FIELD, TITLE_PREFIX_FIELD, copies_mapping, folded_text, language_copies

FLAG_EVENTS = {"ItemFlagged", "ItemRestoreVoted", "ItemHidden", "ItemRestored", "ItemHiddenByModerator", "ItemRestoredByModerator"}


def apply_flags(doc: Doc | None, event: Event) -> Doc:
    """Flag events of any flaggable item: only hiding and restoring change a document."""
    if doc is None:
        raise SkipEvent  # another kind of item, kept by another projection
    if event.type_name in ("ItemHidden", "ItemHiddenByModerator"):
        doc["hidden"] = True
    elif event.type_name in ("ItemRestored", "ItemRestoredByModerator"):
        doc["hidden"] = False
    else:
        raise SkipEvent
    return doc


def audience_of(doc: Doc) -> list[str]:
    """The audience tokens of a post's or micropost's document, from the fields the rule reads."""
    return rule.content_audience(rule.Content(
        visibility=doc.get("visibility", ""), community=doc.get("community", ""), author_id=doc.get("author_id", ""),
        published=doc.get("state") == "PUBLISHED", hidden=bool(doc.get("hidden")), deleted=bool(doc.get("deleted")),
        classification=doc.get("classification") or rule.INTERNAL))


class PostsProjection(DocumentProjection):
    name = indices.POSTS
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Post", "Micropost", "Flaggable"})  # flag events are Flaggable's, whatever the item
    erased_fields: dict[str, Any] = {"title": "", "content": "", "tags": [], **ERASED_COPIES}
    erased_by = ("author_id",)
    # 3: analysed by Elasticsearch (folded, and in the item's language); the text shown keeps its
    # offsets (highlights read from the index). 4: who may see each item (`audience`).
    schema_version = indices.POSTS_AUDIENCE_SCHEMA
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            # "blog" (a blog post) or "micro" (a micropost).
            "kind": {"type": "keyword"},
            "name": {"type": "keyword"},
            "blog": {"type": "keyword"},
            "author_id": {"type": "keyword"},
            "title": folded_text("folded", "title_prefix"),
            "content": folded_text("folded"),
            # Title and text without case or accents (copied by Elasticsearch), and in the
            # item's language (services/search/readmodels/projections/analysis.py).
            "folded": FOLDED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
            **copies_mapping(),
            "tags": TAGS_FIELD,
            "mentions": {"type": "keyword"},
            "reply_to": {"type": "keyword"},
            "repost_of": {"type": "keyword"},
            "visibility": {"type": "keyword"},
            "community": {"type": "keyword"},
            # PUBLIC | INTERNAL | CONFIDENTIAL (watercooler.visibility); "" before labels: INTERNAL.
            "classification": {"type": "keyword"},
            "state": {"type": "keyword"},
            "hidden": {"type": "boolean"},
            # Who may see the item in lists and searches (watercooler.visibility.content_audience),
            # made from the fields above at every write: the search's filter for posts.
            rule.AUDIENCE_FIELD: {"type": "keyword"},
            "revision": {"type": "integer"},
            "created_at": {"type": "date"},
            "published_at": {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        doc = self._apply(doc, event)
        doc[rule.AUDIENCE_FIELD] = audience_of(doc)
        return doc

    def _apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind in FLAG_EVENTS:
            return apply_flags(doc, event)
        if kind == "PostCreated":
            doc = {
                "kind": "blog",
                "name": f"posts/{event.aggregate_id}",
                "blog": p.blog,
                "author_id": p.author_id,
                "title": p.title,
                "content": p.body,
                "tags": list(p.tags),
                "mentions": [],
                "reply_to": "",
                "repost_of": "",
                "visibility": p.visibility,
                "community": p.community,
                "classification": p.classification or "INTERNAL",
                "state": "DRAFT",
                "hidden": False,
                "revision": 1,
                "created_at": event.occurred_at.isoformat(),
                "published_at": None,
            }
        elif kind == "MicropostCreated":
            doc = {
                "kind": "micro",
                "name": f"microposts/{event.aggregate_id}",
                "blog": "",
                "author_id": p.author_id,
                "title": "",
                "content": p.text,
                "tags": list(p.hashtags),
                "mentions": list(p.mentions),
                "reply_to": f"microposts/{p.reply_to}" if p.reply_to else "",
                "repost_of": f"microposts/{p.repost_of}" if p.repost_of else "",
                "visibility": p.visibility,
                "community": p.community,
                "classification": p.classification or "INTERNAL",
                "state": "PUBLISHED",
                "hidden": False,
                "revision": 1,
                "created_at": event.occurred_at.isoformat(),
                "published_at": event.occurred_at.isoformat(),
            }
        elif kind in ("PostEdited", "PostPublished", "PostDeleted", "MicropostDeleted", "MicropostEdited"):
            if doc is None:
                raise ValueError(f"{kind} for unknown post {event.aggregate_id}")
            if kind == "PostEdited":
                doc.update(title=p.title, content=p.body, tags=list(p.tags), visibility=p.visibility, community=p.community, revision=p.revision,
                           classification=p.classification or "INTERNAL")
            elif kind == "MicropostEdited":
                doc.update(content=p.text, tags=list(p.hashtags), mentions=list(p.mentions), revision=doc.get("revision", 1) + 1)
            elif kind == "PostPublished":
                doc.update(state="PUBLISHED", published_at=p.published_at)
            else:
                doc["deleted"] = True
        else:
            raise SkipEvent
        doc.update(language_copies(title=doc["title"], body=doc["content"]))
        return doc

"""The wiki index: one document per space and per page, from `posts.events.v1`.

Page documents keep every title the page ever had (old titles still resolve)
and the folded titles it links to, so "what links here" is one terms query."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import fold

from .. import indices
from .analysis import ANALYSIS, FOLDED_FIELD, LANGUAGE_FIELD, TITLE_PREFIX_FIELD, folded_text, language_copies, language_fields
from .posts import FLAG_EVENTS, apply_flags

PAGE_EVENTS = {"PageCreated", "PageEdited", "PageRenamed", "PageDeleted"}
SPACE_EVENTS = {"SpaceCreated", "SpaceUpdated"}


def title_key(title: str) -> str:
    # The same folding as services/posts/library/domainmodel.title_key.
    return " ".join(fold(title).split())


class WikiProjection(DocumentProjection):
    name = indices.WIKI
    sources = ("posts",)
    aggregate_types = frozenset({"Space", "Page", "Flaggable"})  # flag events are Flaggable's, whatever the item
    schema_version = 2  # analysed by Elasticsearch (folded, and in the page's language)
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "kind": {"type": "keyword"},  # space | page
            "space_id": {"type": "keyword"},
            "title": folded_text("folded", "title_prefix", fields={"raw": {"type": "keyword"}}),
            "title_keys": {"type": "keyword"},
            "former_titles": {"type": "keyword"},
            "links": {"type": "keyword"},
            "body": folded_text("folded"),
            # Pages: title and body without case or accents, and in their language (see .analysis).
            "folded": FOLDED_FIELD,
            "title_prefix": TITLE_PREFIX_FIELD,
            "language": LANGUAGE_FIELD,
            "lang": language_fields(),
            "author": {"type": "keyword"},
            "revision": {"type": "integer"},
            "display_name": folded_text(),
            "owner": {"type": "keyword"},
            "visibility": {"type": "keyword"},
            "classification": {"type": "keyword"},  # spaces: of the space and its pages; absent before labels: INTERNAL
            "members": {"type": "keyword"},
            "created_at": {"type": "date"},
            "hidden": {"type": "boolean"},  # pages hidden by community flags
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        name = event.type_name
        if name in FLAG_EVENTS:
            return apply_flags(doc, event)  # a page's (another item's: skipped)
        if name not in PAGE_EVENTS | SPACE_EVENTS:
            raise SkipEvent(name)
        if name == "SpaceCreated":
            return {
                "kind": "space",
                "space_id": p.space_id,
                "display_name": p.display_name,
                "owner": p.owner,
                "visibility": p.visibility,
                "classification": p.classification or "INTERNAL",
                "members": list(p.members),
                "created_at": event.occurred_at.isoformat(),
            }
        if name == "PageCreated":
            return _analysed({
                "kind": "page",
                "space_id": p.space_id,
                "title": p.title,
                "title_keys": [title_key(p.title)],
                "former_titles": [],
                "links": [title_key(t) for t in p.links],
                "body": p.body,
                "author": p.author,
                "revision": 1,
                "created_at": event.occurred_at.isoformat(),
            })
        if doc is None:
            raise ValueError(f"{name} for unknown {event.aggregate_id}")
        if name == "SpaceUpdated":  # its pages' audience follows through the space (visibility.Scope)
            doc.update(display_name=p.display_name, visibility=p.visibility, members=list(p.members), classification=p.classification or "INTERNAL")
            return doc
        if name == "PageEdited":
            doc.update(body=p.body, links=[title_key(t) for t in p.links], author=p.author, revision=p.revision)
        elif name == "PageRenamed":
            doc["former_titles"] = [*doc["former_titles"], p.old_title]
            doc["title"] = p.title
            doc["title_keys"] = list(dict.fromkeys([*doc["title_keys"], title_key(p.title)]))
            doc.update(author=p.author, revision=p.revision)
        elif name == "PageDeleted":
            doc.update(deleted=True, revision=p.revision)
        return _analysed(doc)


def _analysed(page: Doc) -> Doc:
    page.update(language_copies(title=page.get("title", ""), body=page.get("body", "")))
    return page

"""The wiki index: one document per space and per page, from `posts.events.v1`.

Page documents keep every title the page ever had (old titles still resolve)
and the folded titles it links to, so "what links here" is one terms query.

Personal data (docs/personal-data.md): a page's titles and its text are sealed with the key of
whoever wrote each, so a page document may hold several people's words. It keeps who wrote
each title (``title_history``) and the current text (``body_author``); ``writers`` lists them
all, for the export and for an erasure, which replaces only the erased person's titles and
text with the tombstone (""), as a replay would."""

from __future__ import annotations

from collections.abc import Sequence
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
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Space", "Page", "Flaggable"})  # flag events are Flaggable's, whatever the item
    schema_version = 3  # analysed by Elasticsearch (folded, and in the page's language); the text shown keeps its offsets (highlights read from the index)
    erased_fields: dict[str, Any] = {"title": "", "body": ""}  # only the erased writer's (``tombstone``)
    # ``author`` too: a page written before ``writers`` existed (its new fields are added in
    # place, see ``add_new_fields``; such a page's former titles name nobody until a reindex).
    erased_by = ("writers", "author")
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
            "author": {"type": "keyword"},  # who made the current revision
            "body_author": {"type": "keyword"},  # who wrote the current text
            "writers": {"type": "keyword"},  # everyone whose titles or text the document holds
            "title_history": {"type": "object", "enabled": False},  # [{title, author}], oldest first
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
            return _analysed(_titled({
                "kind": "page",
                "space_id": p.space_id,
                "title_history": [{"title": p.title, "author": p.author}],
                "links": [title_key(t) for t in p.links],
                "body": p.body,
                "author": p.author,
                "body_author": p.author,
                "revision": 1,
                "created_at": event.occurred_at.isoformat(),
            }))
        if doc is None:
            raise ValueError(f"{name} for unknown {event.aggregate_id}")
        if name == "SpaceUpdated":  # its pages' audience follows through the space (visibility.Scope)
            doc.update(display_name=p.display_name, visibility=p.visibility, members=list(p.members), classification=p.classification or "INTERNAL")
            return doc
        if name == "PageEdited":
            doc.update(body=p.body, links=[title_key(t) for t in p.links], author=p.author, body_author=p.author, revision=p.revision,
                       title_history=_title_history(doc))
            _titled(doc)
        elif name == "PageRenamed":
            doc["title_history"] = [*_title_history(doc), {"title": p.title, "author": p.author}]
            doc.update(author=p.author, revision=p.revision)
            _titled(doc)
        elif name == "PageDeleted":
            doc.update(deleted=True, revision=p.revision)
        return _analysed(doc)

    def tombstone(self, source: Doc, erased_ids: Sequence[str]) -> bool:
        """Only the erased writers' titles and text: a page others wrote on keeps their words."""
        if source.get("kind") != "page":
            return False
        erased = set(erased_ids)
        history = _title_history(source)
        changed = False
        for entry in history:
            if entry["author"] in erased and entry["title"]:
                entry["title"], changed = "", True
        if source.get("body_author", source.get("author")) in erased and (source.get("body") or source.get("links")):
            source.update(body="", links=[])
            changed = True
        if changed:
            source["title_history"] = history
            _analysed(_titled(source))
        return changed


def _title_history(page: Doc) -> list[dict[str, str]]:
    # A document written before titles had writers: the former ones name nobody.
    if "title_history" in page:
        return [dict(entry) for entry in page["title_history"]]
    return [*({"title": t, "author": ""} for t in page.get("former_titles", [])), {"title": page.get("title", ""), "author": page.get("author", "")}]


def _titled(page: Doc) -> Doc:
    """The page's title, former titles and their folded keys from its title history; a title
    whose writer was erased is the tombstone (""), absent from the former titles and keys."""
    history = page["title_history"]
    page["title"] = history[-1]["title"]
    page["former_titles"] = [entry["title"] for entry in history[:-1] if entry["title"]]
    page["title_keys"] = list(dict.fromkeys(title_key(entry["title"]) for entry in history if entry["title"]))
    page["writers"] = sorted({entry["author"] for entry in history if entry["author"]} | ({page["body_author"]} if page.get("body_author") else set()))
    return page


def _analysed(page: Doc) -> Doc:
    page.update(language_copies(title=page.get("title", ""), body=page.get("body", "")))
    return page

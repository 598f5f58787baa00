"""The wiki index: one document per space and per page, from `posts.events.v1`.

Page documents keep every title the page ever had (old titles still resolve)
and the folded titles it links to, so "what links here" is one terms query.

Personal data (docs/personal-data.md): a page's titles and its text are sealed with the key of
whoever wrote each, so a page document may hold several people's words. It keeps who wrote
each title (``title_history``) and the current text (``body_author``); ``writers`` lists them
all, for the export and for an erasure, which replaces only the erased person's titles and
text with the tombstone (""), as a replay would.

A page is read by whoever may read its space, now: each page document carries its space's
audience (``PAGE_AUDIENCE``: visibility, owner, members, classification; the owner and members as
``space_owner`` and ``space_members``, which a personal data export does not take for the page's
own people), so the library rule (``watercooler.visibility.library_audience``) filters pages as
it filters spaces and media items, in the query itself. Search no longer lists the caller's spaces
first (a round trip, and tens of thousands of ids at company scale). The copies follow the
space as comments follow their target (``audiences``, comments.py), in every interleaving:

1. A space's ``audience_version`` is its version when its audience last changed.
2. A page is written with its space's audience read (realtime, from the index being written)
   just before; a space not known yet gives an audience nobody matches (``UNKNOWN_AUDIENCE``,
   version 0), services aside, who read every page.
3. After a batch is written, each space written propagates its audience to its pages behind it
   in every wiki index (a rebuild in progress included), and each page written reads its space
   again and propagates it if it moved meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent, found_documents
from watercooler.text import fold
from watercooler.wiki_ids import space_id_of

from .. import indices
from .analysis import ANALYSIS, FOLDED_FIELD, TITLE_PREFIX_FIELD, copies_mapping, folded_text, language_copies
from .audiences import VERSION_SCALE, propagate
from .posts import FLAG_EVENTS, apply_flags

PAGE_EVENTS = {"PageCreated", "PageEdited", "PageRenamed", "PageDeleted"}
SPACE_EVENTS = {"SpaceCreated", "SpaceUpdated"}
PAGE_AUDIENCE = indices.PAGE_AUDIENCE
# A page whose space is not known yet: no rule matches it (services read every page).
UNKNOWN_AUDIENCE: dict[str, Any] = {"visibility": "", "space_owner": "", "space_members": [], "classification": "INTERNAL", "audience_version": 0}


def title_key(title: str) -> str:
    # The same folding as services/posts/library/domainmodel.title_key.
    return " ".join(fold(title).split())


class WikiProjection(DocumentProjection):
    name = indices.WIKI
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Space", "Page", "Flaggable"})  # flag events are Flaggable's, whatever the item
    # 3: analysed by Elasticsearch, the text shown keeps its offsets; 4: pages carry their space's audience.
    schema_version = 4
    version_scale = VERSION_SCALE
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
            **copies_mapping(),
            "author": {"type": "keyword"},  # who made the current revision
            "body_author": {"type": "keyword"},  # who wrote the current text
            "writers": {"type": "keyword"},  # everyone whose titles or text the document holds
            "title_history": {"type": "object", "enabled": False},  # [{title, author}], oldest first
            "revision": {"type": "integer"},
            "display_name": folded_text(),
            # A space's audience, and on each page its space's (PAGE_AUDIENCE).
            "owner": {"type": "keyword"},
            "visibility": {"type": "keyword"},
            "classification": {"type": "keyword"},  # of the space and its pages; absent before labels: INTERNAL
            "members": {"type": "keyword"},
            "space_owner": {"type": "keyword"},
            "space_members": {"type": "keyword"},
            "audience_version": {"type": "long"},  # a space's version when its audience last changed; a page's, of the copy
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
                "audience_version": event.version,
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
                **UNKNOWN_AUDIENCE,  # completed from the space before the write
            }))
        if doc is None:
            raise ValueError(f"{name} for unknown {event.aggregate_id}")
        if name == "SpaceUpdated":  # its pages follow (``written``)
            before = _audience_of(doc)
            doc.update(display_name=p.display_name, visibility=p.visibility, members=list(p.members), classification=p.classification or "INTERNAL")
            if _audience_of(doc) != before:
                doc["audience_version"] = event.version
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

    # --- each page carries its space's audience ----------------------------------------------------
    @property
    def all_indices(self) -> str:
        """Every wiki index: the alias's and one a rebuild is filling."""
        return f"{self.alias}-v*"

    async def _spaces(self, es: AsyncElasticsearch, index: str, space_ids: set[str]) -> dict[str, Doc]:
        """space id -> its audience as the pages copy it, for the spaces ``index`` holds now."""
        if not space_ids:
            return {}
        found = found_documents(await es.mget(index=index, ids=sorted(str(space_id_of(s)) for s in space_ids), realtime=True))
        return {item["_source"]["space_id"]: _audience(item["_source"]) for item in found.values() if item["_source"].get("kind") == "space"}

    async def complete(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str | None = None) -> None:
        """Each page about to be written gets its space's audience as it is now (a space written
        in the same batch: as it is about to be)."""
        pages = [doc for doc in docs.values() if doc.get("kind") == "page"]
        if not pages:
            return
        batch = {doc["space_id"]: _audience(doc) for doc in docs.values() if doc.get("kind") == "space"}
        spaces = {**await self._spaces(es, index or self.alias, {page["space_id"] for page in pages} - batch.keys()), **batch}
        for page in pages:
            audience = spaces.get(page["space_id"])
            if audience is not None and audience["audience_version"] >= (page.get("audience_version") or 0):
                page.update(audience)

    async def written(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str) -> None:
        """Each space written reaches its pages; a page's space that changed while it was being
        written (another partition, another worker) reaches it again."""
        spaces = {doc["space_id"]: _audience(doc) for doc in docs.values() if doc.get("kind") == "space"}
        pages = [doc for doc in docs.values() if doc.get("kind") == "page" and doc["space_id"] not in spaces]
        if pages:
            now = await self._spaces(es, index, {page["space_id"] for page in pages})
            spaces.update({page["space_id"]: now[page["space_id"]] for page in pages
                           if page["space_id"] in now and now[page["space_id"]]["audience_version"] > (page.get("audience_version") or 0)})
        await self.propagate(es, spaces)

    async def propagate(self, es: AsyncElasticsearch, spaces: dict[str, Doc]) -> None:
        """The pages of these spaces (space id -> audience), in every wiki index, take it."""
        await propagate(es, self.all_indices, "space_id", spaces, only=[{"term": {"kind": "page"}}])

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


def _audience_of(space: Doc) -> tuple[Any, ...]:
    return tuple(space.get(field) for field in PAGE_AUDIENCE)


def _audience(space: Doc) -> Doc:
    """The fields a space's pages copy (a space indexed before audience versions: version 0)."""
    values = {"visibility": space.get("visibility") or "", "owner": space.get("owner") or "", "members": list(space.get("members") or []),
              "classification": space.get("classification") or "INTERNAL"}
    return {**{PAGE_AUDIENCE[field]: value for field, value in values.items()}, "audience_version": space.get("audience_version") or 0}


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

"""The comments index: one document per comment, carrying its target's *current* audience.

A comment is read by whoever may read what it is about (a post, a micropost, a wiki page, a
media item), now: when the post becomes PRIVATE, is hidden by flags, deleted or made PUBLIC
again, its comments follow. The comment events do not say that (they come before, and a
target's events may be on another partition), so this projection keeps two indices:

- ``comment_audiences``: one document per commentable item (id: the item's aggregate id),
  kept from the items' own events (Post, Micropost, Page, MediaItem, and the Flaggable
  events that hide and restore posts and microposts), versioned by the item's aggregate
  version like any projection (external versioning: replays and duplicates are skipped);
  its ``audience_version`` is the item's version when its audience last changed.
- ``comments``: each comment document copies its target's audience fields
  (``AUDIENCE_FIELDS``, plus ``target_deleted`` and the ``audience_version`` they were read
  at). ``services/search/visibility.comment_filter`` filters on those fields only.

A wiki page's audience is its space's: the audience index also keeps one document per space
(``spaces/{id}``, from the Space events), and a comment on a page copies the space's
visibility, owner, members and label (``_space_audience``) at the space's own version
(``space_audience_version``), beside what it copies from the page (deleted, hidden, its space's
id). The steps below hold for both: a space's change is propagated to the comments on its
pages by ``space_id``, a page's by its name.

Keeping the copies right in every interleaving of events:

1. A batch first applies its audience events, then *propagates* every audience it touched
   (written or duplicate: a worker that died after writing an audience but before
   propagating it is replayed): refresh the comments indices, find the target's comments
   whose ``audience_version`` is below the audience's, and rewrite them (a comment only ever
   moves forward), again while documents changed under it (this Elasticsearch has neither
   scripting nor update_by_query: search and bulk).
2. A comment document is written with the audience read (realtime) just before the write; a
   target not known yet gives ``target_deleted: true`` (shown to nobody) and version 0.
3. After writing, the audiences are read again: for any target whose version moved past the
   one a comment was written with, the writer propagates it itself.

Why that closes the race between a comment write W and an audience change A propagated by
P (another partition, another replica, the other half of a batch): if the re-read after W
sees A, the writer propagates; if not, W completed before A, so before P's refresh, and P's
search sees W. Propagation goes to every comments index (``<alias>-v*``), so a
rebuild in progress (``watercooler reindex comments``) is kept right too; a rebuild replays
the audience events along with the comments (duplicates in the audience index, but still
propagated into the new index).

Versions: a comment document's Elasticsearch version is its aggregate version times
``version_scale`` (a million). A propagation rewrites a comment with the version it read plus
one (external versioning, so a comment event or another propagation written in between wins
and the propagation reads again); with plain aggregate versions that +1 would make the
comment's next event look like a duplicate.

Costs and deployment: a batch holding events of commentable items costs one refresh of the
comments indices and one search more (and rewrites only comments whose target's audience
changed: a title edit rewrites none). The audience index fills from the events it sees: an
existing deployment runs ``watercooler reindex comments`` once (the schema version bump asks
for it anyway; ``make run`` does it at start), which replays every item's events; until then
comments of items not yet seen are shown to nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.envelope import Event
from watercooler.projection import BatchResult, Doc, DocumentProjection, SkipEvent, found_documents
from watercooler.wiki_ids import space_id_of

from .. import indices
from .analysis import ANALYSIS, ERASED_COPIES, FOLDED_FIELD, copies_mapping, folded_text, language_copies
from .audiences import VERSION_SCALE, propagate
from .posts import FLAG_EVENTS, apply_flags

# Commented collections -> the audience rule that applies (services/search/visibility.comment_filter).
TARGET_KINDS = {"posts": "post", "microposts": "post", "pages": "page", "media": "media"}
# The target's audience, as copied onto each of its comments.
AUDIENCE_FIELDS = ("target_kind", "visibility", "community", "target_author_id", "target_owner", "target_members", "space_id", "target_state", "target_hidden",
                   "classification")
AUDIENCE_MAPPING: dict[str, Any] = {
    "target_kind": {"type": "keyword"},  # post (posts and microposts) | page | media
    "visibility": {"type": "keyword"},  # posts: PUBLIC..PRIVATE; media: the library's values
    "community": {"type": "keyword"},
    "target_author_id": {"type": "keyword"},  # a post's author
    "target_owner": {"type": "keyword"},  # a media item's or a page's space's owner (profiles/{id} or communities/{id})
    "target_members": {"type": "keyword"},  # a page's space's members
    "space_id": {"type": "keyword"},  # a page's space
    "target_state": {"type": "keyword"},  # DRAFT | PUBLISHED (pages and media: PUBLISHED)
    "target_hidden": {"type": "boolean"},  # hidden by community flags
    "classification": {"type": "keyword"},  # a post's label (a CONFIDENTIAL post's comments are too)
    "space_audience_version": {"type": "long"},  # on a comment on a page: its space's audience version copied
}


class CommentAudiencesProjection(DocumentProjection):
    """Who may read each commentable item now: one document per post, micropost, page, media item,
    and per wiki space (a page's audience is its space's: visibility, owner, members, label)."""

    name = "comment_audiences"
    sources = ("posts",)
    aggregate_types = frozenset({"Post", "Micropost", "Page", "MediaItem", "Space", "Flaggable"})
    # ``audience_version``: the item's version when its audience last changed (an edit of a
    # post's title moves the item's version, not its comments').
    mappings: dict[str, Any] = {"properties": {"target": {"type": "keyword"}, **AUDIENCE_MAPPING, "audience_version": {"type": "long"}}}

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        before = None if doc is None else _audience_of(doc)
        after = self._apply(doc, event)
        if before is None or _audience_of(after) != before:
            after["audience_version"] = event.version
        return after

    def _apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind in FLAG_EVENTS:
            if doc is None:
                raise SkipEvent  # a comment's or a bookmark's flags: not a target here
            flagged = apply_flags({"hidden": doc["target_hidden"]}, event)
            doc["target_hidden"] = flagged["hidden"]
            return doc
        if kind in ("PostCreated", "MicropostCreated"):
            collection = "posts" if kind == "PostCreated" else "microposts"
            return _audience(f"{collection}/{event.aggregate_id}", visibility=p.visibility, community=p.community,
                             target_author_id=p.author_id, target_state="DRAFT" if kind == "PostCreated" else "PUBLISHED",
                             classification=p.classification or "INTERNAL")
        if kind == "PageCreated":
            return _audience(f"pages/{event.aggregate_id}", space_id=p.space_id)
        if kind == "MediaItemRegistered":
            return _audience(f"media/{event.aggregate_id}", visibility=p.visibility, target_owner=p.owner, classification=p.classification or "INTERNAL")
        if kind == "SpaceCreated":
            return _audience(f"spaces/{p.space_id}", visibility=p.visibility, target_owner=p.owner, target_members=list(p.members),
                             classification=p.classification or "INTERNAL")
        if kind == "SpaceUpdated" and doc is not None:
            doc.update(visibility=p.visibility, target_members=list(p.members), classification=p.classification or "INTERNAL")
            return doc
        if doc is None or kind not in ("PostEdited", "PostPublished", "PostDeleted", "MicropostDeleted", "PageDeleted", "MediaItemUpdated", "MediaItemRemoved"):
            raise SkipEvent
        if kind == "PostEdited":
            doc.update(visibility=p.visibility, community=p.community, classification=p.classification or "INTERNAL")
        elif kind == "PostPublished":
            doc["target_state"] = "PUBLISHED"
        elif kind == "MediaItemUpdated":
            if "visibility" in p.changed_fields:
                doc["visibility"] = p.visibility
            doc["classification"] = p.classification or "INTERNAL"
            if "owner" in p.changed_fields:
                doc["target_owner"] = p.owner
        else:
            doc["deleted"] = True
        return doc


def _audience_of(doc: Doc) -> tuple[Any, ...]:
    return tuple(doc.get(field) for field in (*AUDIENCE_FIELDS, "deleted"))


def _audience(target: str, **fields: Any) -> Doc:
    """An audience document: ``target`` a commented item's name, or ``spaces/{id}`` (target_kind "space")."""
    collection = target.split("/", 1)[0]
    doc: Doc = {"target": target, "target_kind": "space" if collection == "spaces" else TARGET_KINDS[collection], "visibility": "", "community": "",
                "target_author_id": "", "target_owner": "", "target_members": [], "space_id": "", "target_state": "PUBLISHED", "target_hidden": False,
                "classification": "INTERNAL"}
    doc.update(fields)
    return doc


# The fields a comment on a page copies from the page's space, while the space is not known: no rule matches them.
UNKNOWN_SPACE: Doc = {"visibility": "", "target_owner": "", "target_members": [], "classification": "INTERNAL", "space_audience_version": 0}


def _space_audience(space: Doc) -> Doc:
    """What the comments on a space's pages copy from the space's audience document (the rest of
    their audience is their page's), its ``audience_version`` as ``space_audience_version``."""
    return {"visibility": space.get("visibility") or "", "target_owner": space.get("target_owner") or "", "target_members": list(space.get("target_members") or []),
            "classification": space.get("classification") or "INTERNAL", "space_audience_version": space["audience_version"]}


def _unknown_audience(target: str) -> Doc:
    """A target whose events were not applied yet: its comments are shown to nobody until they are."""
    audience = _audience(target if target.split("/", 1)[0] in TARGET_KINDS else "posts/unknown")
    return {**{field: audience[field] for field in AUDIENCE_FIELDS}, "target_deleted": True, "audience_version": 0, "space_audience_version": 0}


def _target_id(target: str) -> str:
    return target.split("/", 1)[1] if "/" in target else target


class CommentsProjection(DocumentProjection):
    name = indices.COMMENTS
    sources = ("posts", "profiles")  # profiles: ProfileErased (DocumentProjection.erased_fields)
    aggregate_types = frozenset({"Comment", "Flaggable"})  # flag events are Flaggable's, whatever the item
    erased_fields: dict[str, Any] = {"body": "", **ERASED_COPIES}
    erased_by = ("author_id",)
    # 2: the target's current audience (was: copied at creation); 3: analysed by Elasticsearch;
    # 4: the text shown keeps its offsets (highlights read from the index); 5: a comment on a
    # page carries the page's space's audience (the search needs no list of the caller's spaces).
    schema_version = 5
    analysis = ANALYSIS
    version_scale = VERSION_SCALE
    mappings: dict[str, Any] = {
        "properties": {
            "name": {"type": "keyword"},
            "target": {"type": "keyword"},
            "parent": {"type": "keyword"},
            "author_id": {"type": "keyword"},
            "body": folded_text("folded"),
            # The body without case or accents, and in its language (see .analysis).
            "folded": FOLDED_FIELD,
            **copies_mapping(("body",)),
            "hidden": {"type": "boolean"},  # the comment's own flags
            "created_at": {"type": "date"},
            "edited_at": {"type": "date"},
            **AUDIENCE_MAPPING,
            "target_deleted": {"type": "boolean"},
            "audience_version": {"type": "long"},
        }
    }

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.audiences = CommentAudiencesProjection(settings)

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
                **language_copies(body=p.body),
                "hidden": False,
                "created_at": event.occurred_at.isoformat(),
                "edited_at": None,
                **_unknown_audience(p.target),  # completed from the audience index before the write
            }
        if kind in ("CommentEdited", "CommentDeleted"):
            if doc is None:
                raise ValueError(f"{kind} for unknown comment {event.aggregate_id}")
            if kind == "CommentEdited":
                doc.update(body=p.body, edited_at=event.occurred_at.isoformat(), **language_copies(body=p.body))
            else:
                doc["deleted"] = True
            return doc
        raise SkipEvent

    def keeps(self, envelope: Any) -> bool:
        # The targets' events too: they make the audiences (apply_batch), in an index of their own.
        return super().keeps(envelope) or self.audiences.keeps(envelope)

    # --- the targets' audience ------------------------------------------------------------------------
    @property
    def all_indices(self) -> str:
        """Every comments index: the alias's and one a rebuild is filling."""
        return f"{self.alias}-v*"

    async def ensure_index(self, es: AsyncElasticsearch) -> str:
        await self.audiences.ensure_index(es)
        return await super().ensure_index(es)

    async def rebuild(self, es: AsyncElasticsearch, progress: Callable[[int, int], None] | None = None, batch_size: int = 2000) -> dict[str, Any]:
        await self.audiences.ensure_index(es)
        return await super().rebuild(es, progress, batch_size)

    async def apply_batch(self, es: AsyncElasticsearch, records: Sequence[Any], value_of: Callable[[Any], bytes], index: str | None = None) -> BatchResult:
        audiences = await self.audiences.apply_batch(es, records, value_of)
        if audiences.touched:
            await self.propagate(es, audiences.touched)
        result = await super().apply_batch(es, records, value_of, index)
        result.written += audiences.written
        result.skipped_duplicates += audiences.skipped_duplicates
        seen = {id(record) for record, _ in result.failed}
        result.failed += [(record, reason) for record, reason in audiences.failed if id(record) not in seen]
        return result

    async def _read_audiences(self, es: AsyncElasticsearch, target_ids: Iterable[str]) -> dict[str, Doc]:
        """target name -> the fields its comments copy, for the targets known now; a space's
        (``spaces/{id}``) -> the fields the comments on its pages copy from it. A page's are
        completed with its space's (an audience nobody matches while the space is not known)."""
        ids = sorted(set(target_ids))
        if not ids:
            return {}
        found = found_documents(await es.mget(index=self.audiences.alias, ids=ids, realtime=True))
        out: dict[str, Doc] = {}
        for item in found.values():
            source = item["_source"]
            if source["target_kind"] == "space":
                out[source["target"]] = _space_audience(source)
                continue
            out[source["target"]] = {
                **{field: source.get(field) for field in AUDIENCE_FIELDS},
                "target_members": source.get("target_members") or [],
                "target_deleted": bool(source.get("deleted")),
                "audience_version": source["audience_version"],
            }
        pages = {name: audience for name, audience in out.items() if audience.get("target_kind") == "page"}
        if pages:
            space_ids = sorted({audience["space_id"] for audience in pages.values() if audience["space_id"]})
            found = found_documents(await es.mget(index=self.audiences.alias, ids=[str(space_id_of(s)) for s in space_ids], realtime=True)) if space_ids else {}
            spaces = {item["_source"]["target"].removeprefix("spaces/"): _space_audience(item["_source"]) for item in found.values()
                      if item["_source"].get("target_kind") == "space"}
            for audience in pages.values():
                audience.update(spaces.get(audience["space_id"], UNKNOWN_SPACE))
        return out

    async def complete(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str | None = None) -> None:
        """Each comment about to be written gets its target's audience as it is now."""
        audiences = await self._read_audiences(es, (_target_id(doc["target"]) for doc in docs.values()))
        for doc in docs.values():
            audience = audiences.get(doc["target"])
            if audience is not None and audience["audience_version"] >= (doc.get("audience_version") or 0):
                doc.update(audience)

    async def written(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str) -> None:
        """A target's audience (or a page's space's) that changed while its comments were being
        written is propagated again."""
        audiences = await self._read_audiences(es, (_target_id(doc["target"]) for doc in docs.values()))
        moved = {_target_id(doc["target"]) for doc in docs.values()
                 if doc["target"] in audiences and audiences[doc["target"]]["audience_version"] > (doc.get("audience_version") or 0)}
        moved |= {str(space_id_of(audiences[doc["target"]]["space_id"])) for doc in docs.values()
                  if doc["target"] in audiences and audiences[doc["target"]].get("space_id")
                  and audiences[doc["target"]].get("space_audience_version", 0) > (doc.get("space_audience_version") or 0)}
        if moved:
            await self.propagate(es, moved)

    async def propagate(self, es: AsyncElasticsearch, target_ids: Iterable[str]) -> None:
        """Every comment of these targets (in every comments index) takes its target's current
        audience, and every comment on a page of these spaces the space's (``audiences.propagate``)."""
        audiences = await self._read_audiences(es, target_ids)
        await propagate(es, self.all_indices, "target", {name: audience for name, audience in audiences.items() if not name.startswith("spaces/")})
        await propagate(es, self.all_indices, "space_id", {name.removeprefix("spaces/"): audience for name, audience in audiences.items() if name.startswith("spaces/")},
                        only=[{"term": {"target_kind": "page"}}], version_field="space_audience_version")

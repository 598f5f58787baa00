"""The audit trail: who did what to whose content, one document per event, from every
service's topic (`profiles`, `posts`, `jams`), read through ``ListAuditEvents`` by services only.

Each document is one event envelope: its actor (subject and kind), correlation and causation
ids, time, service, aggregate and event type, plus what the envelope does not say: the
``resource`` the event is about (``posts/{id}``, ``pages/{id}``, ``jams/{j}/ideas/{i}`` ...)
and its ``target_owner`` (``profiles/{id}`` of its author or owner), and the ``reason`` a
flagger or a moderator gave (opened; its tombstone once they are erased). Later events of an item
(an edit, a flag, a moderator's hide) do not name them, so a second index, ``audit-subjects``,
keeps one document per aggregate with its resource and owner, written from the aggregate's
created event. Both are external-versioned by the aggregate version like every projection
(a replay or duplicate changes nothing; the event id is the audit document's id), and a batch
writes the subjects first, then completes each audit document from them (a realtime mget):
an aggregate's events share a partition, so its created event was applied before, in this
batch or an earlier one. ``watercooler reindex audit`` rebuilds both from the log.

Left out: ballots (a vote is a person's secret choice, and millions of them would drown the
trail; jam results count them) and events of aggregates the projection cannot name, which
still appear with their aggregate id and an empty resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.envelope import Event
from watercooler.projection import BatchResult, Doc, DocumentProjection, SkipEvent, found_documents, open_sealed_async

from .. import indices

# Created events -> (resource name, owner's employee id) from the payload and the aggregate id.
SUBJECTS: dict[str, Callable[[Any, str], tuple[str, str]]] = {
    "ProfileCreated": lambda p, a: (f"profiles/{p.employee_id}", p.employee_id),
    "CommunityCreated": lambda p, a: (f"communities/{p.community_id}", p.owners[0] if p.owners else ""),
    "StatusUpdatePosted": lambda p, a: (f"profiles/{p.author_id}/statusUpdates/{p.status_id}", p.author_id),
    "BlogCreated": lambda p, a: (f"blogs/{p.handle}", p.owner_id),
    "PostCreated": lambda p, a: (f"posts/{a}", p.author_id),
    "MicropostCreated": lambda p, a: (f"microposts/{a}", p.author_id),
    "CommentCreated": lambda p, a: (f"comments/{a}", p.author_id),
    "BookmarkCreated": lambda p, a: (f"bookmarks/{a}", p.owner_id),
    "SpaceCreated": lambda p, a: (f"spaces/{p.space_id}", p.owner.removeprefix("profiles/") if p.owner.startswith("profiles/") else ""),
    "PageCreated": lambda p, a: (f"pages/{a}", p.author),
    "MediaItemRegistered": lambda p, a: (f"media/{a}", p.owner.removeprefix("profiles/")),
    "JamCreated": lambda p, a: (f"jams/{p.jam_id}", p.hosts[0] if p.hosts else ""),
    "IdeaCreated": lambda p, a: (f"jams/{p.jam_id}/ideas/{p.idea_id}", p.author),
    "ThreadCreated": lambda p, a: (f"jams/{p.jam_id}/threads/{p.thread_id}", p.author),
    "ReplyCreated": lambda p, a: (f"jams/{p.jam_id}/threads/{p.thread_id}/replies/{p.reply_id}", p.author),
}
# Events carrying the free text a person gave with what they did (sealed with their key, opened
# here): the trail shows it, and an erasure of that person replaces it with its tombstone.
REASON_EVENTS = frozenset({"ItemFlagged", "ItemHiddenByModerator", "ItemRestoredByModerator"})
# Every aggregate people act on (ballots left out, see above; flag and moderation events are
# Flaggable's, whatever the item).
AUDITED = frozenset({
    "Profile", "Community", "Follow", "Connection", "StatusUpdate", "Flaggable", "Blog", "Post", "Micropost", "Comment", "Rating", "Like",
    "Bookmark", "Space", "Page", "MediaItem", "Jam", "Idea", "Thread", "Reply", "Invitation",
})


class AuditSubjectsProjection(DocumentProjection):
    """What each aggregate is (its resource name) and whose (its owner), from its created event."""

    name = "audit-subjects"
    sources = ("profiles", "posts", "jams")
    aggregate_types = AUDITED
    opens_sealed = False  # a subject is ids only (SUBJECTS), never a personal field
    searched_fresh = False  # read by id (realtime mgets) alone
    mappings: dict[str, Any] = {"properties": {"resource": {"type": "keyword"}, "owner": {"type": "keyword"}}}

    async def decode(self, records: Sequence[Any], value_of: Callable[[Any], bytes], result: BatchResult) -> list[tuple[Any, Event]]:
        """Only created events make a subject: the later ones of an aggregate are dropped before
        any document is read or written for them (a skipped event would still rewrite it)."""
        kept = []
        for record, event in await super().decode(records, value_of, result):
            if event.type_name in SUBJECTS:
                kept.append((record, event))
            else:
                result.other_aggregates += 1
        return kept

    def reads_stored(self, first: Event) -> bool:
        return False  # a subject is its created event alone: written again, it is refused (409)

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        made = subject_of(event)
        if doc is not None or made is None:
            raise SkipEvent
        return made


def subject_of(event: Event) -> Doc | None:
    """The subject a created event makes (None for the other events)."""
    subject = SUBJECTS.get(event.type_name)
    if subject is None:
        return None
    resource, owner = subject(event.payload, event.aggregate_id)
    return {"resource": resource, "owner": f"profiles/{owner}" if owner else ""}


class AuditProjection(DocumentProjection):
    name = indices.AUDIT
    sources = ("profiles", "posts", "jams")
    aggregate_types = AUDITED
    erased_fields: dict[str, Any] = {"reason": ""}
    erased_by = ("actor",)
    # An audit document is the envelope and its subject's ids, and the reason of REASON_EVENTS:
    # only those are opened (``decode``), a decryption per field of every other event saved.
    opens_sealed = False
    # Two documents a write with the subjects, read by services now and then: refreshed when
    # searched rather than every WC_ES_REFRESH (``DocumentProjection.searched_fresh``).
    searched_fresh = False
    mappings: dict[str, Any] = {
        "properties": {
            "event_id": {"type": "keyword"},
            "event_type": {"type": "keyword"},  # the payload's short name: ItemHiddenByModerator, PostEdited ...
            "occurred_at": {"type": "date"},
            "actor": {"type": "keyword"},  # the principal's subject: an employee id, a guest's, a service's name
            "actor_kind": {"type": "keyword"},
            "correlation_id": {"type": "keyword"},
            "causation_id": {"type": "keyword"},
            "source": {"type": "keyword"},
            "aggregate_type": {"type": "keyword"},
            "aggregate_id": {"type": "keyword"},
            "aggregate_version": {"type": "long"},
            "resource": {"type": "keyword"},
            "target_owner": {"type": "keyword"},  # profiles/{id}
            "reason": {"type": "text", "index": False},  # what the actor said (REASON_EVENTS), "" otherwise
        }
    }

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.subjects = AuditSubjectsProjection(settings)

    async def decode(self, records: Sequence[Any], value_of: Callable[[Any], bytes], result: BatchResult) -> list[tuple[Any, Event]]:
        """The batch's events, only their reasons opened (the trail keeps ids and envelopes); a
        ``ProfileErased`` among them erases the reasons its person gave (the base class's
        ``erase_people``, by ``actor``)."""
        decoded = await super().decode(records, value_of, result)
        await open_sealed_async(self.settings, [event for _, event in decoded if event.type_name in REASON_EVENTS])
        return decoded

    def doc_id(self, event: Event) -> str:
        # One document per event: an aggregate maps to many documents, never two aggregates to one.
        return event.envelope.event_id

    def keeps(self, envelope: Any) -> bool:
        return super().keeps(envelope) or self.subjects.keeps(envelope)  # the subjects are made here too

    def reads_stored(self, first: Event) -> bool:
        # One document per event, with its aggregate's version: the same event written again
        # is refused by that external version (409), so nothing needs reading first.
        return False

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        envelope = event.envelope
        if doc is not None:
            raise SkipEvent  # the same event again
        # A created event names its subject itself: its document needs no look-up (``complete``).
        subject = subject_of(event) or {"resource": "", "owner": ""}
        return {
            "event_id": envelope.event_id, "event_type": event.type_name, "occurred_at": event.occurred_at.isoformat(),
            "actor": envelope.actor.subject, "actor_kind": envelope.actor.kind, "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id, "source": envelope.source, "aggregate_type": envelope.aggregate_type,
            "aggregate_id": envelope.aggregate_id, "aggregate_version": envelope.aggregate_version,
            "resource": subject["resource"], "target_owner": subject["owner"],
            "reason": event.payload.reason if event.type_name in REASON_EVENTS else "",
        }

    async def ensure_index(self, es: AsyncElasticsearch) -> str:
        await self.subjects.ensure_index(es)
        return await super().ensure_index(es)

    async def rebuild(self, es: AsyncElasticsearch, progress: Callable[[int, int], None] | None = None, batch_size: int = 2000) -> dict[str, Any]:
        await self.subjects.ensure_index(es)
        return await super().rebuild(es, progress, batch_size)

    async def apply_batch(self, es: AsyncElasticsearch, records: Sequence[Any], value_of: Callable[[Any], bytes], index: str | None = None) -> BatchResult:
        # At once: an audit document reads the subjects (``complete``) only of aggregates created
        # in an earlier batch, already written; this batch's created events name their own.
        # Their two bulks so leave as one request (JoinedBulks).
        subjects, result = await asyncio.gather(self.subjects.apply_batch(es, records, value_of), super().apply_batch(es, records, value_of, index),
                                                return_exceptions=True)
        for outcome in (subjects, result):
            if isinstance(outcome, BaseException):
                raise outcome  # both done: a retry never runs beside a write of the first try
        seen = {id(record) for record, _ in result.failed}
        result.failed += [(record, reason) for record, reason in subjects.failed if id(record) not in seen]
        return result

    async def complete(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str | None = None) -> None:
        """Each event gets its aggregate's resource and owner: from its created event when that
        is in the batch, else from the subject written before (realtime)."""
        known = {doc["aggregate_id"]: {"resource": doc["resource"], "owner": doc["target_owner"]} for doc in docs.values() if doc["resource"]}
        ids = sorted({doc["aggregate_id"] for doc in docs.values()} - known.keys())
        found = found_documents(await es.mget(index=self.subjects.alias, ids=ids, realtime=True)) if ids else {}
        known.update((doc_id, item["_source"]) for doc_id, item in found.items())
        for doc in docs.values():
            subject = known.get(doc["aggregate_id"])
            if subject is not None:
                doc.update(resource=subject["resource"], target_owner=subject["owner"])

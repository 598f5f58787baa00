"""The notifications index: what each person is told about, one document per (event, recipient).

An event may tell several people (a micropost mentioning fifty, a jam changing phase for all
its participants) or nobody, so this is not one document per aggregate: ``apply_batch`` is
its own, on the same guarantees as every projection:

- **Once per recipient.** A notification's id is derived from the event id, the recipient
  and the kind, and it is written with ``op_type: create``: a replay, a redelivery or a
  worker killed mid-batch writes it again and Elasticsearch refuses the copy (409).
- **Rebuildable.** ``watercooler reindex notifications`` replays the topics into a new
  index like any projection (the base class's ``rebuild`` calls this ``apply_batch``); a
  notification the old index had keeps its ``seq`` (below), so read marks and the cursors
  of open streams stay right.
- **Who is told** comes from the event itself (mentions, the followee, the invited member,
  the addressee, the author of a commented or liked item, which the writer puts on the event)
  or from the item it is about: the author of a replied-to micropost, a rated post, an
  edited page, read from the indices the
  other projections keep (realtime ``mget``; an item not indexed yet is waited for a few
  seconds). A jam's participants (hosts, voters, idea, thread and reply authors) are kept by
  this projection in ``notification_facts``, with a jam's phase changes and results, so
  that a member whose first event is applied after a phase change is told of it then.
- **An ordered cursor.** ``seq`` is stamped when the notification is written (nanoseconds,
  strictly increasing in this process, one batch at a time). Writes are routed by recipient,
  so one person's notifications live on one shard, where a refresh exposes operations in the
  order they were indexed: the notifications a reader can see are always every one up to
  some ``seq``. ``WatchNotifications`` resumes after the ``seq`` of the last one delivered.
  That holds for one projections worker; several workers stamping the same recipient's
  notifications at once could expose a later ``seq`` first (see docs/notifications.md).
- **Nothing the recipient may not see.** The projection records *what* the notification is
  about (``subject_kind``, ``subject_id``); whether the recipient may see it is decided when
  it is read (services/search/notifications.py), with the search side's visibility rule, so
  an item made PRIVATE, hidden or deleted afterwards takes its notifications with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError

from watercooler.envelope import Event
from watercooler.errors import InvalidArgument
from watercooler.jam_ids import jam_id_of
from watercooler.mentions import MAX_MENTIONS, parse_mentions
from watercooler.notification_kinds import KINDS
from watercooler.projection import BatchResult, DocumentProjection, SkipEvent, found_documents

from .. import indices

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6b0c1c52-6d0e-4f57-9a43-0d9f3a1b7e21")
# How long an item a notification is about may be missing from its index (its projection is
# behind this one) before the notification is given up and logged.
LOOKUP_WAIT_SECONDS = 10.0
WRITE_CHUNK = 5000
MEMBERS_PAGE = 5000


__all__ = ["KINDS", "NotificationsProjection", "notification_id"]


def notification_id(event_id: str, recipient: str, kind: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{event_id}\x1f{recipient}\x1f{kind}"))


@dataclass(frozen=True)
class Pending:
    """A notification decided from an event, before its recipients that depend on an item's
    author are known."""

    event: Event
    kind: str
    item: str  # resource name of what happened (the new micropost, comment, rating target...)
    subject_kind: str  # the search kind whose visibility rule decides (services/search/visibility.kind_filter)
    subject_id: str  # the document id in that kind's index (or the jam id)
    reason: str
    recipients: tuple[str, ...] = ()
    owner_of: tuple[str, str] | None = None  # (index name, doc id): told is that item's author
    fact_of: tuple[str, str] | None = None  # (fact, aggregate id): told is the person this projection noted
    community_of: str = ""  # the community aggregate whose id names the item
    jam_key: str = ""  # told are the members of this jam (aggregate id)


# index name -> the field naming an item's author in it
OWNER_FIELDS = {"posts": "author_id", "comments": "author_id", "media": "owner"}
COLLECTION_INDEX = {"posts": ("posts", "post"), "microposts": ("posts", "micropost"), "comments": ("comments", "comment"),
                    "pages": ("wiki", "wiki_page"), "media": ("media", "media")}


def _split(name: str) -> tuple[str, str]:
    collection, _, item_id = name.partition("/")
    return collection, item_id


def _person(value: str) -> str:
    return value.removeprefix("profiles/")


class NotificationsProjection(DocumentProjection):
    name = indices.NOTIFICATIONS
    sources = ("posts", "profiles", "jams")
    # Flaggable: the flag events of the microposts and comments kept here (they tell nobody).
    aggregate_types = frozenset({"Micropost", "Comment", "Flaggable", "Rating", "Like", "Page", "Follow", "Connection", "Community",
                                 "Jam", "Ballot", "Idea", "Thread", "Reply"})
    # notification_facts: see _keep_facts
    mappings: dict[str, Any] = {
        "properties": {
            "name": {"type": "keyword"},  # profiles/{recipient}/notifications/{id}
            "recipient": {"type": "keyword"},
            "kind": {"type": "keyword"},
            "actor": {"type": "keyword"},  # profiles/{id}, or a service's name
            "item": {"type": "keyword"},
            "subject_kind": {"type": "keyword"},
            "subject_id": {"type": "keyword"},
            "reason": {"type": "text", "index": False},
            "event_id": {"type": "keyword"},
            "occurred_at": {"type": "date"},
            "seq": {"type": "long"},
        }
    }
    facts_mappings: dict[str, Any] = {
        "dynamic": "strict",
        "properties": {"fact": {"type": "keyword"}, "key": {"type": "keyword"}, "person": {"type": "keyword"}, "value": {"type": "keyword"}, "jam_id": {"type": "keyword"},
                       "at": {"type": "date"}, "data": {"type": "object", "enabled": False}},
    }
    _last_seq = 0
    _lock: asyncio.Lock | None = None

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.facts_index = settings.index_alias("notification_facts")

    async def ensure_index(self, es: AsyncElasticsearch) -> str:
        await self._ensure_facts(es)
        return await super().ensure_index(es)

    async def rebuild(self, es: AsyncElasticsearch, progress: Callable[[int, int], None] | None = None, batch_size: int = 2000) -> dict[str, Any]:
        await self._ensure_facts(es)
        return await super().rebuild(es, progress, batch_size)

    async def _ensure_facts(self, es: AsyncElasticsearch) -> None:
        if await es.indices.exists(index=self.facts_index):
            await es.indices.put_mapping(index=self.facts_index, properties=self.facts_mappings["properties"])
            return
        try:
            await es.indices.create(index=self.facts_index, mappings=self.facts_mappings,
                                    settings={"number_of_shards": 1, "number_of_replicas": int(self.index_body()["settings"]["number_of_replicas"])})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise

    def apply(self, doc: Any, event: Event) -> Any:
        """Not one document per aggregate: ``apply_batch`` decides (``decide``) and writes."""
        raise SkipEvent

    @classmethod
    def _next_seq(cls) -> int:
        cls._last_seq = max(cls._last_seq + 1, time.time_ns())
        return cls._last_seq

    # --- deciding who is told -----------------------------------------------------------------
    def decide(self, event: Event) -> list[Pending]:
        """The notifications an event makes (pure: recipients that need a lookup are named by
        ``owner_of`` or ``jam_key``)."""
        p = event.payload
        kind = event.type_name
        if kind == "MicropostCreated":
            item = f"microposts/{event.aggregate_id}"
            out = [Pending(event, "mention", item, "micropost", event.aggregate_id, f"profiles/{p.author_id} mentioned you in a micropost", recipients=tuple(p.mentions))]
            if p.reply_to:
                out.append(Pending(event, "reply", item, "micropost", event.aggregate_id, f"profiles/{p.author_id} replied to your micropost microposts/{p.reply_to}", owner_of=("posts", p.reply_to)))
            return out
        if kind == "CommentCreated":
            item = f"comments/{event.aggregate_id}"
            out = [Pending(event, "mention", item, "comment", event.aggregate_id, f"profiles/{p.author_id} mentioned you in a comment", recipients=tuple(_comment_mentions(p.body)))]
            collection, target_id = _split(p.target)
            if collection in COLLECTION_INDEX:
                told = _target_author(p, collection, COLLECTION_INDEX[collection][0], target_id)
                out.append(Pending(event, "comment", item, "comment", event.aggregate_id, f"profiles/{p.author_id} commented on your {p.target}", **told))
            if p.parent:
                out.append(Pending(event, "reply", item, "comment", event.aggregate_id, f"profiles/{p.author_id} replied to your comment comments/{p.parent}", owner_of=("comments", p.parent)))
            return out
        if kind == "PostRated":
            return [Pending(event, "rating", f"posts/{p.post}", "post", p.post, f"profiles/{p.rater_id} rated your post posts/{p.post} {p.value}/5", owner_of=("posts", p.post))]
        if kind == "Liked":
            collection, target_id = _split(p.target)
            if collection not in COLLECTION_INDEX:
                return []
            index, subject_kind = COLLECTION_INDEX[collection]
            told = _target_author(p, collection, index, target_id)
            return [Pending(event, "like", p.target, subject_kind, target_id, f"profiles/{p.person_id} liked your {p.target}", **told)]
        if kind == "PageEdited":
            # The page's creator is told when someone else edits it.
            return [Pending(event, "wiki_edit", f"pages/{event.aggregate_id}", "wiki_page", event.aggregate_id, f"profiles/{p.author} edited your page pages/{event.aggregate_id}", fact_of=("page_author", event.aggregate_id))]
        if kind == "Followed":
            return [Pending(event, "follower", f"profiles/{p.follower_id}", "person", p.follower_id, f"profiles/{p.follower_id} follows you", recipients=(p.followee_id,))]
        if kind == "ConnectionRequested":
            return [Pending(event, "connection_request", f"profiles/{p.requester_id}", "person", p.requester_id, f"profiles/{p.requester_id} asks to connect with you", recipients=(p.addressee_id,))]
        if kind in ("ConnectionAccepted", "ConnectionDeclined"):
            by = p.accepted_by if kind == "ConnectionAccepted" else p.declined_by
            verb = "accepted" if kind == "ConnectionAccepted" else "declined"
            return [Pending(event, "connection_answer", f"profiles/{by}", "person", by, f"profiles/{by} {verb} your connection request", fact_of=("connection_requester", event.aggregate_id))]
        if kind == "CommunityMemberInvited":
            return [Pending(event, "community_invitation", "", "community", event.aggregate_id, f"profiles/{p.invited_by} invited you to a community", recipients=(p.member_id,), community_of=event.aggregate_id)]
        if kind == "JamPhaseChanged":
            return [Pending(event, "jam_phase", "", "jam", "", f"the jam moved from {p.from_phase} to {p.to_phase}", jam_key=event.aggregate_id)]
        if kind == "ResultsPublished":
            return [Pending(event, "jam_results", f"jams/{p.jam_id}/results", "jam", p.jam_id, f"the results of jams/{p.jam_id} are published", jam_key=event.aggregate_id)]
        return []

    # --- applying a batch -----------------------------------------------------------------------
    async def apply_batch(self, es: AsyncElasticsearch, records: Sequence[Any], value_of: Callable[[Any], bytes], index: str | None = None) -> BatchResult:
        target = index or self.alias
        result = BatchResult()
        decoded = await self.decode(records, value_of, result)
        if not decoded:
            return result
        if NotificationsProjection._lock is None:
            NotificationsProjection._lock = asyncio.Lock()
        # One batch at a time in this process, so ``seq`` grows in the order notifications are indexed.
        async with NotificationsProjection._lock:
            new_members = await self._keep_facts(es, [event for _, event in decoded])
            pending: list[tuple[Any, Pending]] = []
            for record, event in decoded:
                try:
                    pending += [(record, item) for item in self.decide(event)]
                except Exception as exc:  # a poison event: dead-letter it, keep going
                    result.failed.append((record, f"{type(exc).__name__}: {exc}"))
            owners = await self._owners(es, [item.owner_of for _, item in pending if item.owner_of])
            facts = await self._facts(es, [item.fact_of for _, item in pending if item.fact_of] + [("community", item.community_of) for _, item in pending if item.community_of])
            docs: list[tuple[str, dict[str, Any]] | None] = []
            for _, item in pending:
                if item.jam_key:
                    continue
                recipients, name = item.recipients, item.item
                if item.owner_of:
                    recipients = (owners.get(item.owner_of, ""),)
                if item.fact_of:
                    recipients = (facts.get(item.fact_of, {}).get("person", ""),)
                if item.community_of:
                    name = f"communities/{facts.get(('community', item.community_of), {}).get('value', '')}"
                docs += [self._doc(item, recipient, name, item.subject_id) for recipient in recipients]
            await self._write(es, target, [d for d in docs if d], result)
            for _, item in pending:
                if item.jam_key:
                    await self._fan_out_to_jam(es, target, item, result)
            await self._tell_late_members(es, target, new_members, result)
        return result

    def _doc(self, item: Pending, recipient: str, name: str, subject_id: str) -> tuple[str, dict[str, Any]] | None:
        return notification_doc(template(item), recipient, name, subject_id)

    async def _write(self, es: AsyncElasticsearch, target: str, docs: list[tuple[str, dict[str, Any]]], result: BatchResult) -> None:
        for start in range(0, len(docs), WRITE_CHUNK):
            chunk = docs[start:start + WRITE_CHUNK]
            # A rebuild (writing into a new index) keeps the seq each notification had: read
            # marks and open streams' cursors stay right, nothing is delivered again.
            kept = await self._seqs_before(es, chunk) if target != self.alias else {}
            operations: list[dict[str, Any]] = []
            for doc_id, doc in chunk:
                doc["seq"] = kept.get(doc_id) or self._next_seq()
                operations += [{"create": {"_index": target, "_id": doc_id, "routing": doc["recipient"]}}, doc]
            response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
            written = len(operations) // 2
            if response["errors"]:
                for outcome in (item["create"] for item in response["items"]):
                    if outcome.get("status") == 409:  # delivered before: a replay or a redelivery
                        result.skipped_duplicates += 1
                        written -= 1
                    elif outcome.get("error"):
                        raise RuntimeError(f"bulk write to {target} failed: {outcome['error']}")
            result.written += written

    async def _seqs_before(self, es: AsyncElasticsearch, chunk: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        try:
            response = await es.mget(index=self.alias, docs=[{"_id": doc_id, "routing": doc["recipient"]} for doc_id, doc in chunk], source_includes=["seq"])
        except NotFoundError:
            return {}
        return {doc_id: item["_source"]["seq"] for doc_id, item in found_documents(response).items()}

    async def _owners(self, es: AsyncElasticsearch, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(index, id) -> the author of that item, waiting a little for items not indexed yet."""
        owners: dict[tuple[str, str], str] = {}
        missing = set(wanted)
        deadline = time.monotonic() + LOOKUP_WAIT_SECONDS
        while missing:
            by_index: dict[str, list[str]] = {}
            for index, doc_id in missing:
                by_index.setdefault(index, []).append(doc_id)
            for index, ids in by_index.items():
                response = await es.mget(index=self.settings.index_alias(index), ids=sorted(set(ids)), realtime=True, source_includes=[OWNER_FIELDS[index]])
                for doc_id, item in found_documents(response).items():
                    owners[(index, doc_id)] = str(item["_source"].get(OWNER_FIELDS[index]) or "")
                    missing.discard((index, doc_id))
            if missing and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            elif missing:
                log.warning("notifications about unknown items given up", extra={"projection": self.name, "items": sorted(missing)[:10]})
                break
        return owners

    # --- facts this projection keeps: who takes part in a jam, who wrote a page, who asked to connect, a community's id
    async def _keep_facts(self, es: AsyncElasticsearch, events: list[Event]) -> list[dict[str, Any]]:
        """Written before the batch's notifications are decided; returns the jam members seen
        for the first time. A fact about an aggregate comes from that aggregate's own earlier
        events (same partition, so already seen). A jam's members come from other aggregates
        (ballots, ideas, threads, replies: other partitions), so either may come first: a jam's
        phase changes and results are kept too, and a member noted after one they should have
        been told of is told then (``_tell_late_members``)."""
        operations: list[dict[str, Any]] = []

        def note(fact: str, key: str, doc_key: str = "", **fields: Any) -> None:
            # Always the same document for a fact; a jam member's first one is kept (create).
            op = "create" if fact == "jam_member" else "index"
            doc = {"fact": fact, "key": key, "person": "", "value": "", "jam_id": "", **fields}
            operations.extend([{op: {"_index": self.facts_index, "_id": f"{fact}\x1f{key}\x1f{doc_key}"}}, doc])

        for event in events:
            p = event.payload
            kind = event.type_name
            at = event.occurred_at.isoformat()
            if kind == "JamCreated":
                for host in p.hosts:
                    note("jam_member", event.aggregate_id, host, person=host, jam_id=p.jam_id, at=at)
            elif kind in ("BallotCreated", "ThreadCreated", "ReplyCreated") or (kind == "IdeaCreated" and not p.seeded):
                person = p.participant if kind == "BallotCreated" else p.author
                note("jam_member", _jam_key(p.jam_id), person, person=person, jam_id=p.jam_id, at=at)
            elif kind in ("JamPhaseChanged", "ResultsPublished"):
                for item in self.decide(event):
                    note("jam_event", event.aggregate_id, event.envelope.event_id, at=at, data={**template(item), "item": item.item})
            elif kind == "PageCreated":
                note("page_author", event.aggregate_id, person=p.author)
            elif kind == "ConnectionRequested":
                note("connection_requester", event.aggregate_id, person=p.requester_id)
            elif kind == "CommunityCreated":
                note("community", event.aggregate_id, value=p.community_id)
        if not operations:
            return []
        response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
        new_members = []
        for (action, doc), outcome in zip(zip(operations[::2], operations[1::2], strict=True), response["items"], strict=True):
            status = next(iter(outcome.values()))
            if status.get("error") and status.get("status") != 409:
                raise RuntimeError(f"writing notification facts failed: {status['error']}")
            if "create" in action and status.get("status") == 201:
                new_members.append(doc)
        return new_members

    async def _tell_late_members(self, es: AsyncElasticsearch, target: str, members: list[dict[str, Any]], result: BatchResult) -> None:
        """Members noted for the first time are told of their jam's phase changes and results
        since they joined that were applied before them (ids as the fan-out's: never twice)."""
        if not members:
            return
        await es.indices.refresh(index=self.facts_index)
        keys = sorted({m["key"] for m in members})
        found = await es.search(index=self.facts_index, query={"bool": {"filter": [{"term": {"fact": "jam_event"}}, {"terms": {"key": keys}}]}},
                                size=10_000, sort=[{"at": "asc"}, {"value": "asc"}])
        events: dict[str, list[dict[str, Any]]] = {}
        for hit in found["hits"]["hits"]:
            events.setdefault(hit["_source"]["key"], []).append(hit["_source"])
        docs = []
        for member in members:
            for fact in events.get(member["key"], []):
                if dt.datetime.fromisoformat(fact["at"]) >= dt.datetime.fromisoformat(member["at"]):
                    spec = fact["data"]
                    docs.append(notification_doc(spec, member["person"], spec["item"] or f"jams/{member['jam_id']}", member["jam_id"]))
        await self._write(es, target, [d for d in docs if d], result)

    async def _facts(self, es: AsyncElasticsearch, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        ids = sorted({f"{fact}\x1f{key}\x1f" for fact, key in wanted})
        if not ids:
            return {}
        found = found_documents(await es.mget(index=self.facts_index, ids=ids, realtime=True))
        return {(item["_source"]["fact"], item["_source"]["key"]): item["_source"] for item in found.values()}

    async def _fan_out_to_jam(self, es: AsyncElasticsearch, target: str, item: Pending, result: BatchResult) -> None:
        """One notification per member of the jam, a page of members at a time (memory held:
        one page)."""
        await es.indices.refresh(index=self.facts_index)
        search_after: list[Any] | None = None
        while True:
            # Members who joined by the time of the event (a later one is not told of it).
            joined = {"range": {"at": {"lte": item.event.occurred_at.isoformat()}}}
            body: dict[str, Any] = {"query": {"bool": {"filter": [{"term": {"fact": "jam_member"}}, {"term": {"key": item.jam_key}}, joined]}},
                                    "sort": [{"person": "asc"}], "size": MEMBERS_PAGE, "source": ["person", "jam_id"]}
            if search_after is not None:
                body["search_after"] = search_after
            hits = (await es.search(index=self.facts_index, **body))["hits"]["hits"]
            if not hits:
                return
            docs = []
            for hit in hits:
                jam_id = hit["_source"]["jam_id"]
                docs.append(self._doc(item, hit["_source"]["person"], item.item or f"jams/{jam_id}", jam_id))
            await self._write(es, target, [d for d in docs if d], result)
            search_after = hits[-1]["sort"]


def template(item: Pending) -> dict[str, Any]:
    """What every recipient's notification of ``item`` shares (kept as a fact for a jam's events)."""
    actor = item.event.envelope.actor
    return {"kind": item.kind, "reason": item.reason, "subject_kind": item.subject_kind, "event_id": item.event.envelope.event_id,
            "occurred_at": item.event.occurred_at.isoformat(), "actor_subject": actor.subject, "actor_kind": actor.kind}


def notification_doc(spec: dict[str, Any], recipient: str, name: str, subject_id: str) -> tuple[str, dict[str, Any]] | None:
    recipient = _person(recipient)
    if not recipient or recipient == spec["actor_subject"]:
        return None  # nobody is told about what they did themselves
    doc_id = notification_id(spec["event_id"], recipient, spec["kind"])
    return doc_id, {
        "name": f"profiles/{recipient}/notifications/{doc_id}",
        "recipient": recipient,
        "kind": spec["kind"],
        "actor": f"profiles/{spec['actor_subject']}" if spec["actor_kind"] in ("employee", "alumni", "guest") else spec["actor_subject"],
        "item": name,
        "subject_kind": spec["subject_kind"],
        "subject_id": subject_id,
        "reason": spec["reason"],
        "event_id": spec["event_id"],
        "occurred_at": spec["occurred_at"],
        "deleted": False,
        "updated_at": spec["occurred_at"],
    }


def _target_author(payload: Any, collection: str, index: str, target_id: str) -> dict[str, Any]:
    """Who is told of a comment or a like: the target's author the writer put on the event.
    Events written before it did name nobody; for them the author is looked up (an indexed
    item's, waited for; a page's creator, from the facts kept here, which a like processed
    before the page's own events, from another partition, misses)."""
    if payload.target_author:
        return {"recipients": (payload.target_author,)}
    return {"fact_of": ("page_author", target_id)} if collection == "pages" else {"owner_of": (index, target_id)}


def _jam_key(jam_id: str) -> str:
    return str(jam_id_of(jam_id))


def _comment_mentions(body: str) -> list[str]:
    """The people a comment mentions, as a micropost's are parsed; past the micropost's limit
    the first ones are told (a comment is not refused for mentioning more)."""
    try:
        return parse_mentions(body)
    except InvalidArgument:
        found: list[str] = []
        for word in body.split():
            if len(found) == MAX_MENTIONS:
                break
            try:
                found += [m for m in parse_mentions(word) if m not in found]
            except InvalidArgument:
                continue
        return found[:MAX_MENTIONS]

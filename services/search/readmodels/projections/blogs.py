"""The blogs index: one document per blog, in directory order (the owner's sort name as the
owner's profile has it now)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError

from watercooler.config import Settings
from watercooler.envelope import Event
from watercooler.eventstore import stable_id
from watercooler.personaldata import FORMER_EMPLOYEE
from watercooler.projection import BatchResult, Doc, DocumentProjection, SkipEvent, found_documents
from watercooler.text import collation_key, fold

from .. import indices

_LATIN = [(collation_key(letter)[:5], letter.upper()) for letter in "abcdefghijklmnopqrstuvwxyz"]


def directory_letter(sort_name: str) -> str:
    """The letter a directory lists a name under, consistent with collation order: a Latin
    letter with any diacritic (Å, Ø, Ž) goes under its base letter; other scripts under
    their own (folded) first letter."""
    folded = fold(sort_name.strip())
    if not folded:
        return ""
    primary = collation_key(folded[0])[:5]
    if _LATIN[0][0] <= primary <= _LATIN[-1][0]:
        return [upper for weight, upper in _LATIN if weight <= primary][-1]
    return folded[0].upper()


# What a blog document copies from its owner's profile, and the profile fields they come from.
OWNER_FACTS = ("owner_display_name", "owner_sort_name", "owner_department", "owner_country")
# Tries of a write that met a concurrent write of the same blog document (optimistic concurrency).
WRITE_ATTEMPTS = 10


def owner_profile_id(employee_id: str) -> str:
    """The profiles service's aggregate id of an employee's profile (services/profiles: profile_id)."""
    return str(stable_id("profile", employee_id))


def with_owner(doc: Doc, facts: dict[str, Any], owner_version: int, erased: bool = False) -> Doc:
    """The blog document showing these owner facts (as of the owner's profile version); an erased
    owner's blog also loses its title and description (sealed with the owner's key)."""
    sort_name = facts["owner_sort_name"] or facts["owner_display_name"]
    text = {"title": "", "description": ""} if erased else {}
    return {**doc, **facts, **text, "owner_sort_name": sort_name, "sort_key": collation_key(sort_name), "letter": directory_letter(sort_name),
            "owner_version": owner_version}


class BlogsProjection(DocumentProjection):
    """Blogs, with their owner's name and department as the owner's profile has them now.

    A blog document copies its owner's facts at BlogCreated and follows every later ProfileUpdated
    (and ProfileErased) of the owner, in whichever order the two topics deliver them (and in a
    rebuild): the profile events are kept, by profile version, in an index of their own
    (``blog-owners``, never rebuilt: it only ever moves forward), and every blog document records
    the profile version its facts come from (``owner_version``, 0 for BlogCreated's copy). A
    ProfileCreated is kept there too but looks for no blog: a blog is made only for an existing
    profile, so its copy is never older than the profile's first event.

    A blog document is then written by two streams (its blog's events and its owner's profile
    events), so it is written with optimistic concurrency (sequence number) and carries its blog
    version itself (``blog_version``), instead of the single external version of other
    projections. Each side writes what it knows first and reads the other's afterwards: a blog
    write then reads the owner's latest facts; a profile write then looks for the owner's blogs.
    Whichever of two concurrent writers comes second sees the first's write."""

    name = indices.BLOGS
    sources = ("posts", "profiles")
    aggregate_types = frozenset({"Blog", "Profile"})
    schema_version = 2
    mappings: dict[str, Any] = {
        "properties": {
            "handle": {"type": "keyword"},
            "title": {"type": "text"},
            "description": {"type": "text"},
            "owner_id": {"type": "keyword"},
            "owner_display_name": {"type": "keyword", "index": False},
            "owner_sort_name": {"type": "keyword", "index": False},
            # Unicode collation key of the owner's sort name: a keyword sort gives directory order.
            "sort_key": {"type": "keyword"},
            "letter": {"type": "keyword"},
            "owner_department": {"type": "keyword"},
            "owner_country": {"type": "keyword"},
            "visibility": {"type": "keyword"},
            "community": {"type": "keyword"},
            "hidden": {"type": "boolean"},
            "created_at": {"type": "date"},
            "blog_version": {"type": "long"},
            "owner_version": {"type": "long"},
        }
    }
    owner_mappings: dict[str, Any] = {
        "dynamic": "strict",
        "properties": {"employee_id": {"type": "keyword"}, **{name: {"type": "keyword", "index": False} for name in OWNER_FACTS},
                       "erased": {"type": "boolean", "index": False}},
    }

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.owners_alias = settings.index_alias("blog-owners")
        self._owners_ready = False

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        if event.type_name == "BlogEdited" and doc is not None:
            return {**doc, "title": p.title, "description": p.description}
        if event.type_name != "BlogCreated":
            raise SkipEvent
        facts = {"owner_display_name": p.owner_display_name, "owner_sort_name": p.owner_sort_name,
                 "owner_department": p.owner_department, "owner_country": p.owner_country}
        return with_owner({
            "handle": p.handle,
            "title": p.title,
            "description": p.description,
            "owner_id": p.owner_id,
            "visibility": p.visibility,
            "community": p.community,
            "hidden": False,
            "created_at": event.occurred_at.isoformat(),
        }, facts, 0)

    @staticmethod
    def owner_of(owner: Doc | None, event: Event) -> Doc:
        """The owner record after a profile event (both carry every field's current value)."""
        p = event.payload
        if event.type_name == "ProfileCreated":
            employee_id = p.employee_id
        elif event.type_name == "ProfileUpdated" and owner is not None:
            employee_id = owner["employee_id"]
        elif event.type_name == "ProfileErased" and owner is not None:
            return {**owner, "owner_display_name": FORMER_EMPLOYEE, "owner_sort_name": FORMER_EMPLOYEE, "owner_department": "", "owner_country": "",
                    "erased": True}
        else:
            raise SkipEvent
        return {"employee_id": employee_id, "owner_display_name": p.display_name, "owner_sort_name": p.sort_name or p.display_name,
                "owner_department": p.department, "owner_country": p.country}

    # --- indices --------------------------------------------------------------------------------------
    async def ensure_index(self, es: AsyncElasticsearch) -> str:
        await self._ensure_owners_index(es)
        return await super().ensure_index(es)

    async def _ensure_owners_index(self, es: AsyncElasticsearch) -> None:
        if self._owners_ready:
            return
        try:
            await es.indices.create(index=f"{self.owners_alias}-v1-initial", mappings=self.owner_mappings,
                                    settings=self.owner_settings(), aliases={self.owners_alias: {"is_write_index": True}})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            # An owners index made before erasures marked their owners gains the field.
            await es.indices.put_mapping(index=self.owners_alias, properties={"erased": self.owner_mappings["properties"]["erased"]})
            # And no refresh of its own (``owner_settings``); a dynamic setting, null is the default.
            await es.indices.put_settings(index=self.owners_alias, settings={"refresh_interval": None})
        self._owners_ready = True

    def owner_settings(self) -> dict[str, Any]:
        """The owners index is read by id alone (realtime mgets, which see a document at once) and
        never searched: no scheduled refresh, unlike the blogs index (``searched_fresh``)."""
        settings = dict(self.index_body()["settings"])
        settings.pop("refresh_interval", None)
        return settings

    # --- applying batches -----------------------------------------------------------------------------
    async def apply_batch(self, es: AsyncElasticsearch, records: Sequence[Any], value_of: Callable[[Any], bytes], index: str | None = None) -> BatchResult:
        target = index or self.alias
        await self._ensure_owners_index(es)
        result = BatchResult()
        blog_events: dict[str, list[tuple[Any, Event]]] = {}
        profile_events: dict[str, list[tuple[Any, Event]]] = {}
        for record, event in await self.decode(records, value_of, result):
            kept = profile_events if event.envelope.aggregate_type == "Profile" else blog_events
            kept.setdefault(event.aggregate_id, []).append((record, event))
        if profile_events:
            owners = await self._apply_profile_events(es, profile_events, result)
            if owners:
                # The blogs written before this point are found; those written after read the new facts.
                await es.indices.refresh(index=target)
                found = await es.search(index=target, query={"terms": {"owner_id": sorted(owners)}}, size=10_000, source=False)
                await self._follow_owners(es, target, [hit["_id"] for hit in found["hits"]["hits"]])
        if blog_events:
            written = await self._apply_blog_events(es, target, blog_events, result)
            await self._follow_owners(es, target, written)
        return result

    async def _apply_profile_events(self, es: AsyncElasticsearch, events: dict[str, list[tuple[Any, Event]]], result: BatchResult) -> set[str]:
        """Keep the owners' latest facts; returns the employee ids whose facts moved past their
        profile's first event (the owners whose blogs may need them)."""
        # An owner whose first event here is its profile's first (ProfileCreated) is made from it
        # alone: not read (written before, a redelivery, the external version refuses it).
        stored = [aggregate_id for aggregate_id, items in events.items() if items[0][1].version > 1]
        found = found_documents(await es.mget(index=self.owners_alias, ids=stored, realtime=True)) if stored else {}
        operations: list[dict[str, Any]] = []
        moved: set[str] = set()
        for aggregate_id, items in events.items():
            owner = found[aggregate_id]["_source"] if aggregate_id in found else None
            version = found[aggregate_id]["_version"] if aggregate_id in found else 0
            for _, event in items:
                if event.version <= version:
                    result.skipped_duplicates += 1
                    continue
                try:
                    owner = self.owner_of(owner, event)
                except SkipEvent:
                    continue
                version = event.version
            if owner is not None and version > (found[aggregate_id]["_version"] if aggregate_id in found else 0):
                operations += [{"index": {"_index": self.owners_alias, "_id": aggregate_id, "version": version, "version_type": "external"}}, owner]
                if version > 1:
                    moved.add(owner["employee_id"])
                # A profile's first event alone moves no blog: a blog is made only for an existing
                # profile, with its facts as of then (BlogCreated), never older than the first
                # event's. Its blogs are not looked for (a refresh and a search of the blogs index
                # per batch of new profiles, every bulk import and single CreateProfile).
        if operations:
            response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
            for item in response.get("items", []) if response["errors"] else []:
                outcome = item["index"]
                if outcome.get("error") and outcome.get("status") != 409:  # 409: a newer version is kept already
                    raise RuntimeError(f"bulk write to {self.owners_alias} failed: {outcome['error']}")
        return moved

    async def _apply_blog_events(self, es: AsyncElasticsearch, target: str, events: dict[str, list[tuple[Any, Event]]], result: BatchResult) -> list[str]:
        """Apply the blogs' events (each at most once, by the blog version the document keeps);
        returns the ids of the documents written."""
        pending = dict(events)
        failed: dict[str, tuple[Any, str]] = {}
        written: list[str] = []
        for _ in range(WRITE_ATTEMPTS):
            current = await self._read(es, target, list(pending))
            operations: list[dict[str, Any]] = []
            writing: list[str] = []
            for doc_id, items in pending.items():
                doc, seq = current.get(doc_id, (None, None))
                blog_version = doc.get("blog_version", seq[2]) if doc is not None and seq else 0
                changed = False
                for record, event in items:
                    if event.version <= blog_version:
                        result.skipped_duplicates += 1
                        continue
                    try:
                        new_doc = self.apply(None if doc is None else dict(doc), event)
                    except SkipEvent:
                        blog_version = event.version
                        changed = doc is not None
                        continue
                    except Exception as exc:  # a poison event: dead-letter it, keep going
                        failed[record_key(event)] = (record, f"{type(exc).__name__}: {exc}")
                        continue
                    new_doc.setdefault("deleted", False)
                    new_doc["updated_at"] = event.occurred_at.isoformat()
                    doc, blog_version, changed = new_doc, event.version, True
                if changed and doc is not None:
                    operations += [_write_op(target, doc_id, seq), {**doc, "blog_version": blog_version}]
                    writing.append(doc_id)
            conflicts = await _bulk(es, target, operations)
            written += [doc_id for doc_id in writing if doc_id not in conflicts]
            pending = {doc_id: items for doc_id, items in pending.items() if doc_id in conflicts}
            if not pending:
                break
        else:
            raise RuntimeError(f"blog documents kept changing under this batch: {sorted(pending)[:5]}")
        result.failed.extend(failed.values())
        result.written += len(written)
        return written

    async def _follow_owners(self, es: AsyncElasticsearch, target: str, doc_ids: list[str]) -> None:
        """Bring these blog documents to their owners' latest kept facts, where those are newer."""
        pending = list(dict.fromkeys(doc_ids))
        for _ in range(WRITE_ATTEMPTS):
            if not pending:
                return
            current = await self._read(es, target, pending)
            owner_ids = {owner_profile_id(doc["owner_id"]) for doc, _ in current.values()}
            owners = found_documents(await es.mget(index=self.owners_alias, ids=sorted(owner_ids), realtime=True)) if owner_ids else {}
            operations: list[dict[str, Any]] = []
            for doc_id, (doc, seq) in current.items():
                owner = owners.get(owner_profile_id(doc["owner_id"]))
                if owner is None or owner["_version"] <= doc.get("owner_version", 0):
                    continue
                facts = {name: owner["_source"][name] for name in OWNER_FACTS}
                blog_version = doc.get("blog_version", seq[2])
                erased = bool(owner["_source"].get("erased"))
                operations += [_write_op(target, doc_id, seq), {**with_owner(doc, facts, owner["_version"], erased), "blog_version": blog_version}]
            pending = sorted(await _bulk(es, target, operations))
        if pending:
            raise RuntimeError(f"blog documents kept changing while following their owners: {pending[:5]}")

    @staticmethod
    async def _read(es: AsyncElasticsearch, target: str, ids: list[str]) -> dict[str, tuple[Doc, tuple[int, int, int]]]:
        """id -> (document, (sequence number, primary term, version)) of the documents found."""
        if not ids:
            return {}
        found = found_documents(await es.mget(index=target, ids=ids, realtime=True))
        return {doc_id: (item["_source"], (item["_seq_no"], item["_primary_term"], item["_version"])) for doc_id, item in found.items()}


def record_key(event: Event) -> str:
    return event.envelope.event_id


def _write_op(target: str, doc_id: str, seq: tuple[int, int, int] | None) -> dict[str, Any]:
    """Create a new document, or replace the one read only if nobody wrote it since."""
    if seq is None:
        return {"create": {"_index": target, "_id": doc_id}}
    return {"index": {"_index": target, "_id": doc_id, "if_seq_no": seq[0], "if_primary_term": seq[1]}}


async def _bulk(es: AsyncElasticsearch, target: str, operations: list[dict[str, Any]]) -> set[str]:
    """Run the writes; returns the ids that met a concurrent write (to read again and retry)."""
    if not operations:
        return set()
    response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error,items.*._id")
    conflicts: set[str] = set()
    if response["errors"]:
        for item in response["items"]:
            outcome = next(iter(item.values()))
            if outcome.get("status") == 409:
                conflicts.add(outcome["_id"])
            elif outcome.get("error"):
                raise RuntimeError(f"bulk write to {target} failed: {outcome['error']}")
    return conflicts

"""ExportPersonalData: a person's documents from every projection, as one JSON archive.

The projections already hold everything the platform knows, opened (the personal fields are
sealed only in the log): what the person wrote (their posts, microposts, comments, statuses,
bookmarks, blogs, wiki edits, media, jam ideas…) and the facts about them (their profile,
follows and connections, memberships, ratings and likes, their notifications, the audit trail
of what they did). Each is found by the fields that name a person.

The archive is returned inline rather than left in the object store: a stored archive would be
one more copy of the person's data for an erasure to find. Up to ``MAX_ARCHIVE_BYTES`` (under
gRPC's message limit); a larger one is refused with RESOURCE_EXHAUSTED (docs/personal-data.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_scan

from watercooler.auth import Principal, current_principal
from watercooler.config import Settings
from watercooler.errors import NotFound, PermissionDenied, ResourceExhausted
from watercooler.rpc import parse_name
from watercooler.search.v1 import personal_data_pb2, personal_data_pb2_grpc

from .readmodels import indices

# Fields of the projections' documents that name a person as the one who wrote, owns, did or
# receives the thing (an id, or ``profiles/{id}``). Mentions are not here: a mention is what
# someone else wrote.
PERSON_FIELDS = ("employee_id", "author_id", "author", "owner_id", "owner", "owners", "members", "person_id", "person", "recipient",
                 "actor", "target_owner", "rater_id", "voter_id", "writers")
# A document found by another of its fields (the person's item someone else flagged or
# moderated: the audit trail names the person as its ``target_owner``) still holds what is that
# other person's: who they are and what they said (a flag's flagger and reason, which the author
# is never shown). Left out of the archive unless the person is the one named.
# By index: (the field naming the other person, the fields that are theirs).
SOMEONE_ELSES: dict[str, tuple[str, tuple[str, ...]]] = {indices.AUDIT: ("actor", ("actor", "actor_kind", "reason"))}
MAX_ARCHIVE_BYTES = 3_500_000
# Every document projection (the counters hold counts, no one's data).
DOCUMENT_INDICES = (indices.PEOPLE, indices.COMMUNITIES, indices.GRAPH, indices.STATUSES, indices.POSTS, indices.BLOGS, indices.COMMENTS,
                    indices.BOOKMARKS, indices.REACTIONS, indices.WIKI, indices.MEDIA, indices.JAM_IDEAS, indices.JAM_THREADS,
                    indices.NOTIFICATIONS, indices.NOTIFICATION_SETTINGS, indices.AUDIT)


def without_someone_elses(index: str, doc: dict[str, Any], person_ids: Collection[str]) -> dict[str, Any]:
    """The document as the person's archive holds it: without what is someone else's (``SOMEONE_ELSES``)."""
    whose, theirs = SOMEONE_ELSES.get(index, ("", ()))
    if not theirs or doc.get(whose) in person_ids:
        return doc
    return {field: value for field, value in doc.items() if field not in theirs}


def _may_export(principal: Principal, employee_id: str) -> bool:
    return principal.is_service or (principal.kind in ("employee", "alumni") and principal.subject == employee_id)


async def export_personal_data(es: AsyncElasticsearch, settings: Settings, principal: Principal, employee_id: str,
                               projections: Iterable[str]) -> personal_data_pb2.PersonalDataExport:
    if not _may_export(principal, employee_id):
        # Whether or not the person exists: a refusal that tells nothing.
        raise PermissionDenied("only the person themself or a service may export a person's data", field="name")
    people = settings.index_alias("people")
    try:
        found = await es.search(index=people, query={"term": {"employee_id": employee_id}}, size=1)
    except NotFoundError:
        found = {"hits": {"hits": []}}
    if not found["hits"]["hits"]:
        raise NotFound(f"profiles/{employee_id} not found", field="name")
    ids = [employee_id, f"profiles/{employee_id}"]
    query = {"bool": {"should": [{"terms": {field: ids}} for field in PERSON_FIELDS], "minimum_should_match": 1}}
    items: dict[str, list[dict[str, Any]]] = {}
    size = 0
    for name in sorted(projections):
        docs: list[dict[str, Any]] = []
        try:
            async for hit in async_scan(es, index=settings.index_alias(name), query={"query": query}, size=500, ignore_unavailable=True):
                doc = without_someone_elses(name, {"id": hit["_id"], **hit["_source"]}, ids)
                size += len(orjson.dumps(doc))
                if size > MAX_ARCHIVE_BYTES:
                    raise ResourceExhausted(f"the archive of profiles/{employee_id} is over {MAX_ARCHIVE_BYTES} bytes", field="name")
                docs.append(doc)
        except NotFoundError:
            continue
        if docs:
            # Stable order inside a kind: by document id.
            items[name] = sorted(docs, key=lambda d: d["id"])
    now = dt.datetime.now(dt.UTC)
    archive = orjson.dumps({"person": f"profiles/{employee_id}", "exported_at": now.isoformat().replace("+00:00", "Z"), "items": items},
                           option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return personal_data_pb2.PersonalDataExport(
        name=f"profiles/{employee_id}", content_type="application/json", archive=archive,
        filename=f"watercooler-{employee_id}-{now.strftime('%Y%m%dT%H%MZ')}.json", item_count=sum(len(d) for d in items.values()))


class PersonalDataExportServicer(personal_data_pb2_grpc.PersonalDataExportServiceServicer):
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es, self.settings = es, settings

    async def ExportPersonalData(self, request, context):
        employee_id = parse_name(request.name, "profiles")
        return await export_personal_data(self.es, self.settings, current_principal(), employee_id, DOCUMENT_INDICES)


def register(server: Any, es: AsyncElasticsearch, settings: Settings) -> str:
    personal_data_pb2_grpc.add_PersonalDataExportServiceServicer_to_server(PersonalDataExportServicer(es, settings), server)
    return personal_data_pb2.DESCRIPTOR.services_by_name["PersonalDataExportService"].full_name

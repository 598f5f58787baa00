"""The notification_settings index: one document per person (their NotificationSettings
aggregate on the profiles service): the kinds they switched off, and how far they have read.

``read_seq`` is the ``seq`` (services/search/readmodels/projections/notifications.py) of the furthest
notification they marked read: a mark of an older one never moves it back, so marking read
is idempotent whatever order the marks come in. It is read from the notifications index when
the mark is applied (``complete``)."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent, found_documents

from .. import indices


class NotificationSettingsProjection(DocumentProjection):
    name = indices.NOTIFICATION_SETTINGS
    sources = ("profiles",)
    aggregate_types = frozenset({"NotificationSettings"})
    mappings: dict[str, Any] = {
        "properties": {
            "person_id": {"type": "keyword"},
            "disabled_kinds": {"type": "keyword"},
            "read_up_to": {"type": "keyword"},  # the last mark asked for
            "read_seq": {"type": "long"},  # the furthest notification marked read
            "unresolved_mark": {"type": "keyword"},  # a mark whose seq ``complete`` reads
        }
    }

    def doc_id(self, event: Event) -> str:
        return event.payload.person_id  # one aggregate per person: looked up by person

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind == "NotificationSettingsCreated":
            return {"person_id": p.person_id, "disabled_kinds": [], "read_up_to": "", "read_seq": 0, "unresolved_mark": ""}
        if doc is None:
            raise ValueError(f"{kind} for unknown notification settings {event.aggregate_id}")
        if kind == "NotificationPreferencesChanged":
            doc["disabled_kinds"] = list(p.disabled_kinds)
        elif kind == "NotificationsMarkedRead":
            doc.update(read_up_to=p.up_to, unresolved_mark=p.up_to)
        else:
            raise SkipEvent
        return doc

    async def complete(self, es: AsyncElasticsearch, docs: dict[str, Doc], index: str | None = None) -> None:
        marked = {person: doc for person, doc in docs.items() if doc.get("unresolved_mark")}
        if not marked:
            return
        alias = self.settings.index_alias("notifications")
        docs_wanted = [{"_id": doc["unresolved_mark"].rsplit("/", 1)[-1], "routing": person} for person, doc in marked.items()]
        found = found_documents(await es.mget(index=alias, docs=docs_wanted, realtime=True, source_includes=["seq", "recipient"]))
        for person, doc in marked.items():
            item = found.get(doc["unresolved_mark"].rsplit("/", 1)[-1])
            if item is not None and item["_source"]["recipient"] == person:
                doc["read_seq"] = max(doc.get("read_seq") or 0, item["_source"]["seq"])
            doc["unresolved_mark"] = ""

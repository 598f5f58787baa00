"""The reactions index: one document per rating (person x post) and per like
(person x item). Averages and counts are aggregations over it, so they are exact:
each person's reaction is one document, kept at its latest version."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent

from .. import indices


class ReactionsProjection(DocumentProjection):
    name = indices.REACTIONS
    sources = ("posts",)
    aggregate_types = frozenset({"Rating", "Like"})
    mappings: dict[str, Any] = {
        "properties": {
            # "rating" or "like".
            "kind": {"type": "keyword"},
            # posts/{id} for ratings; microposts/{id} or comments/{id} for likes.
            "target": {"type": "keyword"},
            "person_id": {"type": "keyword"},
            # 1..5 for a rating, 1 for a like; 0 when withdrawn.
            "value": {"type": "integer"},
            "active": {"type": "boolean"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind == "PostRated":
            return {"kind": "rating", "target": f"posts/{p.post}", "person_id": p.rater_id, "value": p.value, "active": True}
        if kind == "Liked":
            return {"kind": "like", "target": p.target, "person_id": p.person_id, "value": 1, "active": True}
        if kind in ("RatingChanged", "RatingWithdrawn", "Unliked", "Reliked"):
            if doc is None:
                raise ValueError(f"{kind} for unknown reaction {event.aggregate_id}")
            if kind == "RatingChanged":
                doc.update(value=p.value, active=True)
            elif kind == "RatingWithdrawn" or kind == "Unliked":
                doc.update(value=0, active=False)
            else:
                doc.update(value=1, active=True)
            return doc
        raise SkipEvent

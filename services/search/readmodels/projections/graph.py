"""The graph index: one document per follow edge (ordered pair) and per connection
(unordered pair), from `profiles.events.v1`.

- follow: ``source`` follows ``target``; ``state`` ACTIVE or INACTIVE (unfollowed).
- connection: ``members`` is the pair; ``source`` asked ``target``; ``state`` PENDING,
  CONNECTED or NONE (declined, withdrawn or removed).
Followers of X: kind=follow, target=X, state=ACTIVE; following: source=X;
connections: kind=connection, members=X, state=CONNECTED. Counts are the totals.
"""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection

from .. import indices

ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"


class GraphProjection(DocumentProjection):
    name = indices.GRAPH
    sources = ("profiles",)
    aggregate_types = frozenset({"Follow", "Connection"})
    mappings: dict[str, Any] = {
        "properties": {
            "kind": {"type": "keyword"},
            "source": {"type": "keyword"},
            "target": {"type": "keyword"},
            "members": {"type": "keyword"},
            "state": {"type": "keyword"},
            # When the edge reached its current state: lists are newest first.
            "since": {"type": "date"},
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind == "FollowEdgeCreated":
            return {"kind": "follow", "source": p.follower_id, "target": p.followee_id, "members": [p.follower_id, p.followee_id], "state": INACTIVE, "since": event.occurred_at.isoformat()}
        if kind == "ConnectionOpened":
            return {"kind": "connection", "source": "", "target": "", "members": sorted(p.member_ids), "state": "NONE", "since": event.occurred_at.isoformat()}
        if doc is None:
            raise ValueError(f"{kind} for unknown edge {event.aggregate_id}")
        if kind == "Followed":
            doc["state"] = ACTIVE
        elif kind == "Unfollowed":
            doc["state"] = INACTIVE
        elif kind == "ConnectionRequested":
            doc.update(source=p.requester_id, target=p.addressee_id, state="PENDING")
        elif kind == "ConnectionAccepted":
            doc["state"] = "CONNECTED"
        elif kind in ("ConnectionDeclined", "ConnectionRemoved"):
            doc["state"] = "NONE"
        else:
            raise ValueError(f"graph projection does not know {event.envelope.event_type}")
        doc["since"] = event.occurred_at.isoformat()
        return doc

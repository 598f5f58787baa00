"""The communities index: one document per community, from `profiles.events.v1`.

Membership contract for every service's COMMUNITY visibility (posts, search, jams):
the document of `communities/{id}` (``_id`` = the community aggregate id, field
``community_id`` = the id in the resource name) keeps ``members``, a keyword array
of employee ids that is always the complete current member list (replaced as a
whole with each event, versioned by the community aggregate, so it is never stale
by more than the projection lag — about a second — and never goes backwards).

To filter content by what the caller may see, ask this index once for the caller's
communities and filter on them::

    ids = await services.search.visibility.caller_communities(es, settings, principal)
    # then, in the content query, COMMUNITY items only where the caller is a member:
    {"bool": {"filter": [{"term": {"visibility": "COMMUNITY"}}, {"terms": {"community": ids}}]}}

or check one community with a term query on ``members``. The caller's list is read whole,
however long (sorted on ``community_id`` and read on past a page), and it stays short even
when a community has tens of thousands of members.
"""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection
from watercooler.text import collation_key

from .. import indices
from .analysis import ANALYSIS, FOLDED_FIELD, copies_mapping, folded_text, language_copies


class CommunitiesProjection(DocumentProjection):
    name = indices.COMMUNITIES
    sources = ("profiles",)
    aggregate_types = frozenset({"Community"})
    schema_version = 3  # analysed by Elasticsearch (folded, and in the community's language); the text shown keeps its offsets (highlights read from the index)
    analysis = ANALYSIS
    mappings: dict[str, Any] = {
        "properties": {
            "community_id": {"type": "keyword"},
            "display_name": folded_text("folded", "name_folded"),
            "name_folded": FOLDED_FIELD,
            "sort_key": {"type": "keyword"},
            "description": folded_text("folded"),
            # Name and description without case or accents, and in their language (see .analysis).
            "folded": FOLDED_FIELD,
            **copies_mapping(),
            "access": {"type": "keyword"},
            "owners": {"type": "keyword"},
            # The complete member list: the COMMUNITY visibility check of every service.
            "members": {"type": "keyword"},
            "invited": {"type": "keyword"},
            "member_count": {"type": "integer"},
            "created_at": {"type": "date"},
            "archived": {"type": "boolean"},  # read-only (CommunityArchived)
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        kind = event.type_name
        if kind == "CommunityCreated":
            doc = {
                "community_id": p.community_id,
                "display_name": p.display_name,
                "sort_key": collation_key(p.display_name),
                "description": p.description,
                **language_copies(title=p.display_name, body=p.description),
                "access": p.access,
                "owners": list(p.owners),
                "members": list(p.members),
                "invited": [],
                "created_at": event.occurred_at.isoformat(),
            }
        elif doc is None:
            raise ValueError(f"{kind} for unknown community {event.aggregate_id}")
        elif kind == "CommunityMemberInvited":
            doc["invited"] = _with(doc["invited"], p.member_id)
        elif kind == "CommunityMemberJoined":
            doc["members"] = _with(doc["members"], p.member_id)
            doc["invited"] = _without(doc["invited"], p.member_id)
        elif kind in ("CommunityMemberLeft", "CommunityMemberRemoved"):
            doc["members"] = _without(doc["members"], p.member_id)
            doc["invited"] = _without(doc["invited"], p.member_id)
            doc["owners"] = _without(doc["owners"], p.member_id)
        elif kind == "CommunityUpdated":
            doc.update(display_name=p.display_name, sort_key=collation_key(p.display_name), description=p.description, access=p.access,
                       **language_copies(title=p.display_name, body=p.description))
        elif kind == "CommunityOwnerAdded":
            doc["owners"] = _with(doc["owners"], p.owner_id)
        elif kind == "CommunityOwnerRemoved":
            doc["owners"] = _without(doc["owners"], p.owner_id)
        elif kind == "CommunityOwnershipTransferred":
            doc["owners"] = [p.to_owner_id if owner == p.from_owner_id else owner for owner in doc["owners"]]
        elif kind == "CommunityArchived":
            doc["archived"] = True
        else:
            raise ValueError(f"communities projection does not know {event.envelope.event_type}")
        doc["member_count"] = len(doc["members"])
        return doc


def _with(values: list[str], value: str) -> list[str]:
    return values if value in values else [*values, value]


def _without(values: list[str], value: str) -> list[str]:
    return [v for v in values if v != value]

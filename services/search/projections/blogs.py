"""The blogs index: one document per blog, in directory order (the owner's sort name)."""

from __future__ import annotations

from typing import Any

from watercooler.envelope import Event
from watercooler.projection import Doc, DocumentProjection, SkipEvent
from watercooler.text import collation_key, fold

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


class BlogsProjection(DocumentProjection):
    name = "blogs"
    sources = ("posts",)
    aggregate_types = frozenset({"Blog"})
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
        }
    }

    def apply(self, doc: Doc | None, event: Event) -> Doc:
        p = event.payload
        if event.type_name == "BlogEdited" and doc is not None:
            return {**doc, "title": p.title, "description": p.description}
        if event.type_name != "BlogCreated":
            raise SkipEvent
        sort_name = p.owner_sort_name or p.owner_display_name
        return {
            "handle": p.handle,
            "title": p.title,
            "description": p.description,
            "owner_id": p.owner_id,
            "owner_display_name": p.owner_display_name,
            "owner_sort_name": sort_name,
            "sort_key": collation_key(sort_name),
            "letter": directory_letter(sort_name),
            "owner_department": p.owner_department,
            "owner_country": p.owner_country,
            "visibility": p.visibility,
            "community": p.community,
            "hidden": False,
            "created_at": event.occurred_at.isoformat(),
        }

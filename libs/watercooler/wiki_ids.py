"""The aggregate id of a wiki space: the posts service stores a space by it, and the wiki read
model finds a page's space by it (each page document carries its space's audience), so both
use this one definition."""

from __future__ import annotations

import uuid

from .eventstore import stable_id


def space_id_of(space_id: str) -> uuid.UUID:
    return stable_id("wiki-space", space_id)

"""How a status names its photo: the profiles service upcasts old events with it, and the search
side reads statuses by it, so both use this one definition."""

from __future__ import annotations


def media_name_of(photo: str) -> str:
    """A status photo as v1 and v2 wrote it, ``mediaItems/{id}``, by the media item's name. Other
    forms those versions took (``media://…``, ``https://…`` URIs) name no media item: they are
    kept as written, and no reader is shown them (nobody can say who may see them)."""
    return "media/" + photo.removeprefix("mediaItems/") if photo.startswith("mediaItems/") else photo

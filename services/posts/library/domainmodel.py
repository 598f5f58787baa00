"""The wiki (spaces, pages with revisions) and the media library.

Every rule about what a space, a page or a media item may contain or do lives
here.  Page ids and media ids are the aggregate ids, so `pages/{id}` and
`media/{id}` are resource names any other part of the posts service (comments,
ratings) can check in the shared store.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import uuid
from collections.abc import Callable
from typing import Any

from eventsourcing.domain import Aggregate, event

from watercooler.errors import Aborted, FailedPrecondition, InvalidArgument, PermissionDenied, ResourceExhausted
from watercooler.eventstore import EventSourcedAggregate, stable_id
from watercooler.moderation import Flaggable
from watercooler.text import clean, fold, has_control_characters
from watercooler.visibility import CLASSIFICATIONS, Library, classification_conflict, may_see_library
from watercooler.visibility import INTERNAL as INTERNAL  # re-exported for the service
from watercooler.visibility import LIBRARY_VISIBILITIES as VISIBILITIES
from watercooler.visibility import PUBLIC as PUBLIC
from watercooler.visibility import RESTRICTED as RESTRICTED
from watercooler.wiki_ids import space_id_of as space_id_of  # re-exported for the service

MEDIA_KINDS = ("VIDEO", "AUDIO", "IMAGE", "DOCUMENT", "PRESENTATION")

_SPACE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_OWNER = re.compile(r"^(profiles|communities)/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMPLOYEE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_URI = re.compile(r"^(https?|s3|gs|media)://\S+$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,127}$")
_LINK = re.compile(r"\[\[([^\[\]|#\n]+)(?:[|#][^\[\]\n]*)?\]\]")

MAX_TITLE = 200
MAX_BODY = 200_000
MAX_SUMMARY = 500
MAX_DESCRIPTION = 5000
MAX_MEMBERS = 1000
MAX_LINKS = 500
MAX_TAGS = 30
MAX_TAG_LENGTH = 50
MAX_SIZE_BYTES = 1 << 44  # 16 TiB: anything bigger is a typo


# --- ids --------------------------------------------------------------------------------------
def title_key(title: str) -> str:
    """Titles compare without case or accents: 'Café' and 'cafe' are one page."""
    return " ".join(fold(title).split())


def title_claim_id(space_id: str, title: str) -> uuid.UUID:
    return stable_id("wiki-title", space_id, title_key(title))


# --- validation -------------------------------------------------------------------------------
def validate_space_id(space_id: str, field: str = "space_id") -> str:
    if not _SPACE_ID.match(space_id or ""):
        raise InvalidArgument("must be 1-64 lowercase letters, digits or '-', starting with a letter or digit", field=field)
    return space_id


def validate_title(title: str, field: str = "title") -> str:
    title = " ".join(clean(title or "").split())
    if not title:
        raise InvalidArgument("is required", field=field)
    if len(title) > MAX_TITLE:
        raise InvalidArgument(f"must be at most {MAX_TITLE} characters", field=field)
    if has_control_characters(title) or any(ch in title for ch in "[]|#"):
        raise InvalidArgument("must not contain control characters or any of [ ] | #", field=field)
    return title


def validate_body(body: str) -> str:
    body = (body or "").replace("\r\n", "\n")
    if len(body.encode()) > MAX_BODY:
        raise InvalidArgument(f"must be at most {MAX_BODY} bytes", field="body")
    if has_control_characters(body, allow_newlines=True):
        raise InvalidArgument("must not contain control characters", field="body")
    return body


def validate_summary(summary: str) -> str:
    summary = clean(summary or "")
    if len(summary) > MAX_SUMMARY or has_control_characters(summary):
        raise InvalidArgument(f"must be at most {MAX_SUMMARY} printable characters", field="summary")
    return summary


def validate_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise InvalidArgument("must be PUBLIC, INTERNAL or RESTRICTED", field="visibility")
    return visibility


def validate_members(members: list[str]) -> list[str]:
    out = list(dict.fromkeys(m.strip() for m in members))
    if len(out) > MAX_MEMBERS or any(not _EMPLOYEE.match(m) for m in out):
        raise InvalidArgument(f"at most {MAX_MEMBERS} employee ids", field="members")
    return out


def validate_owner(owner: str) -> str:
    if not _OWNER.match(owner or ""):
        raise InvalidArgument("must be 'profiles/{id}' or 'communities/{id}'", field="owner")
    return owner


def extract_links(body: str) -> list[str]:
    """`[[Title]]`, `[[Title|label]]`, `[[Title#section]]` -> the titles, once each, in order."""
    links: dict[str, str] = {}
    for match in _LINK.finditer(body):
        title = " ".join(clean(match.group(1)).split())
        if title and len(title) <= MAX_TITLE and not has_control_characters(title):
            links.setdefault(title_key(title), title)
    if len(links) > MAX_LINKS:
        raise InvalidArgument(f"at most {MAX_LINKS} distinct links", field="body")
    return list(links.values())


def can_see(visibility: str, owner: str, members: list[str], principal: Any, is_member: Callable[[str, str], bool] | None = None) -> bool:
    """Who may see an item of this visibility: the platform's library rule
    (watercooler.visibility). ``is_member(community_id, employee_id)`` answers for spaces
    owned by a community (services/posts/membership.py)."""
    return may_see_library(principal, Library(visibility, owner, tuple(members)), is_member)


# --- wiki -------------------------------------------------------------------------------------
class Space(EventSourcedAggregate):
    @staticmethod
    def create_id(space_id: str) -> uuid.UUID:
        return space_id_of(space_id)

    @event("SpaceCreated")
    def __init__(self, space_id: str, display_name: str, description: str, owner: str, visibility: str, members: list[str], classification: str = INTERNAL):
        self.space_id = space_id
        # Of the space and its pages, which take its audience (INTERNAL for a space made before labels).
        self.classification = classification
        self.display_name = display_name
        self.description = description
        self.owner = owner
        self.visibility = visibility
        self.members = members

    @classmethod
    def create(cls, space_id: str, display_name: str, description: str, owner: str, visibility: str, members: list[str], classification: str = INTERNAL) -> Space:
        validate_space_id(space_id)
        display_name = clean(display_name or "")
        if not display_name or len(display_name) > MAX_TITLE or has_control_characters(display_name):
            raise InvalidArgument(f"is required, at most {MAX_TITLE} printable characters", field="display_name")
        description = clean(description or "")
        if len(description) > MAX_DESCRIPTION or has_control_characters(description, allow_newlines=True):
            raise InvalidArgument(f"must be at most {MAX_DESCRIPTION} characters", field="description")
        return cls(
            space_id=space_id,
            display_name=display_name,
            description=description,
            owner=validate_owner(owner),
            visibility=validate_visibility(visibility),
            members=validate_members(members),
            classification=_valid_label(visibility, classification or INTERNAL, "classification"),
        )

    def visible_to(self, principal: Any, is_member: Callable[[str, str], bool] | None = None) -> bool:
        return may_see_library(principal, Library(self.visibility, self.owner, tuple(self.members), classification=self.classification), is_member)

    def update(self, changes: dict[str, Any], by: str) -> None:
        """``changes``: the field-mask paths asked for (display_name, description, visibility, members, classification)."""
        values = {"display_name": self.display_name, "description": self.description, "visibility": self.visibility, "members": list(self.members),
                  "classification": self.classification}
        if "display_name" in changes:
            name = clean(changes["display_name"] or "")
            if not name or len(name) > MAX_TITLE or has_control_characters(name):
                raise InvalidArgument(f"is required, at most {MAX_TITLE} printable characters", field="display_name")
            values["display_name"] = name
        if "description" in changes:
            description = clean(changes["description"] or "")
            if len(description) > MAX_DESCRIPTION or has_control_characters(description, allow_newlines=True):
                raise InvalidArgument(f"must be at most {MAX_DESCRIPTION} characters", field="description")
            values["description"] = description
        if "visibility" in changes:
            values["visibility"] = validate_visibility(changes["visibility"])
        if "members" in changes:
            values["members"] = validate_members(list(changes["members"]))
        if "classification" in changes:
            values["classification"] = changes["classification"] or INTERNAL
        _valid_label(values["visibility"], values["classification"], "classification" if "classification" in changes else "visibility")
        changed = [name for name in ("display_name", "description", "visibility", "members", "classification") if values[name] != getattr(self, name)]
        if changed:
            self._updated(changed_fields=changed, updated_by=by, **values)

    @event("SpaceUpdated")
    def _updated(self, changed_fields: list[str], updated_by: str, display_name: str, description: str, visibility: str, members: list[str],
                 classification: str = INTERNAL) -> None:
        self.display_name, self.description, self.visibility, self.members = display_name, description, visibility, list(members)
        self.classification = classification

    def may_edit(self, principal: Any, is_member: Callable[[str, str], bool] | None = None) -> bool:
        """Guests read public spaces; only employees (or services) write."""
        if principal.is_service:
            return True
        if principal.kind != "employee":
            return False
        return self.visible_to(principal, is_member)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class TitleClaim(Aggregate):
    """Which page a title in a space names.  One aggregate per (space, folded title),
    saved with the page's event: a second page with a taken title collides in the
    store.  Claims stay after a rename, so the old title keeps resolving.
    Bookkeeping, not a published fact (the relay only publishes page events)."""

    @staticmethod
    def create_id(space_id: str, title: str) -> uuid.UUID:
        return title_claim_id(space_id, title)

    @event("Claimed")
    def __init__(self, space_id: str, title: str, page_id: str, author: str = ""):
        # ``author``: who gave the page the title, whose key seals it (watercooler.personaldata);
        # claims recorded before it name nobody.
        self.page_id = page_id


CREATED, EDITED, RESTORED, RENAMED, DELETED = "CREATED", "EDITED", "RESTORED", "RENAMED", "DELETED"


class Page(Flaggable):
    """A wiki page and its full history.  ``revision`` counts every change (edit,
    restore, rename, delete), and every change names the revision it was made on.
    Flags (watercooler.moderation): its author is the person who created it; their change
    of the text or the title answers the flags (others cannot read a hidden page)."""

    ANSWERING_FIELDS = ("body", "title")

    @event("PageCreated")
    def __init__(self, space_id: str, title: str, body: str, links: list[str], author: str, summary: str):
        self.space_id = space_id
        self.title = title
        self.former_titles: list[str] = []
        self.body = body
        self.links = links
        self.author = author
        self.author_id = author
        self._init_flags()
        self.deleted = False
        self.revision = 1
        # One entry per revision; "time" None means the creation time (set after __init__).
        self.revisions: list[dict[str, Any]] = [dict(revision=1, action=CREATED, title=title, body=body, author=author, summary=summary, time=None)]

    @classmethod
    def create(cls, space_id: str, title: str, body: str, author: str, summary: str) -> Page:
        title = validate_title(title)
        body = validate_body(body)
        return cls(space_id=space_id, title=title, body=body, links=extract_links(body), author=author, summary=validate_summary(summary))

    # --- rules ------------------------------------------------------------------------------
    def check_base(self, base_revision: int) -> None:
        """Edits are made on a revision; if someone else changed the page since, the
        caller must merge: ABORTED with the revision to merge against."""
        if base_revision <= 0:
            raise InvalidArgument("is required: the revision the change was made on", field="base_revision")
        if base_revision > self.revision:
            raise InvalidArgument(f"revision {base_revision} does not exist; the current revision is {self.revision}", field="base_revision")
        if base_revision != self.revision:
            raise Aborted(
                f"the page changed since revision {base_revision}; the current revision is {self.revision}",
                field="base_revision",
                current_revision=self.revision,
            )

    def _check_alive(self) -> None:
        if self.deleted:
            raise FailedPrecondition("the page is deleted", field="name")

    def edit(self, base_revision: int, body: str, author: str, summary: str) -> None:
        self._check_alive()
        self.check_base(base_revision)
        body = validate_body(body)
        if body == self.body:
            raise FailedPrecondition("the text is unchanged", field="body")
        self.trigger_event(self.PageEdited, revision=self.revision + 1, body=body, links=extract_links(body), author=author, summary=validate_summary(summary), restored_from=0)
        self._answered_by(author, "body")

    def restore(self, base_revision: int, revision: int, author: str) -> None:
        self._check_alive()
        self.check_base(base_revision)
        old = self.revision_at(revision, field="revision")
        if old["body"] == self.body:
            raise FailedPrecondition(f"revision {revision} has the current text already", field="revision")
        self.trigger_event(
            self.PageEdited,
            revision=self.revision + 1,
            body=old["body"],
            links=extract_links(old["body"]),
            author=author,
            summary=f"restored revision {revision}",
            restored_from=revision,
        )
        self._answered_by(author, "body")

    def rename(self, base_revision: int, title: str, author: str) -> None:
        self._check_alive()
        self.check_base(base_revision)
        title = validate_title(title)
        if title == self.title:
            raise FailedPrecondition("the page already has this title", field="title")
        self.trigger_event(self.PageRenamed, revision=self.revision + 1, old_title=self.title, title=title, author=author)
        self._answered_by(author, "title")

    def _answered_by(self, editor: str, changed: str) -> None:
        if editor == self.author_id:
            self._author_edited([changed])

    def delete(self, base_revision: int, author: str) -> None:
        self._check_alive()
        self.check_base(base_revision)
        self.trigger_event(self.PageDeleted, revision=self.revision + 1, author=author)

    # --- events (explicit classes: their apply() sees the event's time) ----------------------
    class PageEdited(EventSourcedAggregate.Event):
        revision: int
        body: str
        links: list[str]
        author: str
        summary: str
        restored_from: int

        def apply(self, page: Page) -> None:
            page.body = self.body
            page.links = list(self.links)
            page.revision = self.revision
            page.revisions.append(
                dict(
                    revision=self.revision,
                    action=RESTORED if self.restored_from else EDITED,
                    title=page.title,
                    body=self.body,
                    author=self.author,
                    summary=self.summary,
                    time=self.timestamp,
                )
            )

    class PageRenamed(EventSourcedAggregate.Event):
        revision: int
        old_title: str
        title: str
        author: str

        def apply(self, page: Page) -> None:
            page.former_titles = [t for t in [*page.former_titles, self.old_title] if title_key(t) != title_key(self.title)]
            page.title = self.title
            page.revision = self.revision
            page.revisions.append(dict(revision=self.revision, action=RENAMED, title=self.title, body=page.body, author=self.author, summary=f"renamed from {self.old_title}", time=self.timestamp))

    class PageDeleted(EventSourcedAggregate.Event):
        revision: int
        author: str

        def apply(self, page: Page) -> None:
            page.deleted = True
            page.revision = self.revision
            page.revisions.append(dict(revision=self.revision, action=DELETED, title=page.title, body=page.body, author=self.author, summary="deleted", time=self.timestamp))

    # --- reading ----------------------------------------------------------------------------
    def revision_at(self, revision: int, field: str = "revision") -> dict[str, Any]:
        if not 1 <= revision <= self.revision:
            raise InvalidArgument(f"must be between 1 and {self.revision}", field=field)
        entry = dict(self.revisions[revision - 1])
        entry["time"] = entry["time"] or self.created_on
        return entry

    def diff(self, from_revision: int, to_revision: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
        old = self.revision_at(from_revision, field="from_revision")
        new = self.revision_at(to_revision, field="to_revision")
        lines = difflib.unified_diff(
            old["body"].splitlines(keepends=True),
            new["body"].splitlines(keepends=True),
            fromfile=f"revision {from_revision}",
            tofile=f"revision {to_revision}",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines), old, new

    @property
    def etag(self) -> str:
        return f'"{self.revision}"'

    @property
    def page_id(self) -> str:
        return str(self.id)


# --- media library ----------------------------------------------------------------------------
# What uploaded content sets; an item with uploaded content refuses them in updates.
CONTENT_FIELDS = ("size_bytes", "content_type", "storage_uri")
MEDIA_FIELDS = ("title", "description", "kind", "size_bytes", "content_type", "tags", "visibility", "storage_uri", "classification")


def validate_media_fields(fields: dict[str, Any], creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "title" in fields or creating:
        out["title"] = validate_title(fields.get("title", ""))
    if "description" in fields:
        description = clean(fields["description"] or "")
        if len(description) > MAX_DESCRIPTION or has_control_characters(description, allow_newlines=True):
            raise InvalidArgument(f"must be at most {MAX_DESCRIPTION} characters", field="description")
        out["description"] = description
    if "kind" in fields or creating:
        if fields.get("kind") not in MEDIA_KINDS:
            raise InvalidArgument(f"must be one of {', '.join(MEDIA_KINDS)}", field="kind")
        out["kind"] = fields["kind"]
    # An item registered without a storage_uri gets its content by upload (CreateUpload):
    # size and type then come from the bytes, so none are given.
    awaiting_upload = creating and not (fields.get("storage_uri") or "").strip()
    if awaiting_upload:
        if fields.get("size_bytes") or fields.get("content_type"):
            raise InvalidArgument("is set from the uploaded bytes: leave it empty without a storage_uri", field="size_bytes" if fields.get("size_bytes") else "content_type")
        out.update(size_bytes=0, content_type="", storage_uri="")
    elif "size_bytes" in fields or creating:
        size = fields.get("size_bytes", 0)
        if not isinstance(size, int) or size <= 0 or size > MAX_SIZE_BYTES:
            raise InvalidArgument("must be a positive number of bytes (at most 16 TiB)", field="size_bytes")
        out["size_bytes"] = size
    if ("content_type" in fields or creating) and not awaiting_upload:
        content_type = (fields.get("content_type") or "").strip().lower()
        if not _CONTENT_TYPE.match(content_type):
            raise InvalidArgument("must be a MIME type such as 'video/mp4'", field="content_type")
        out["content_type"] = content_type
    if "tags" in fields:
        tags: list[str] = []
        for raw in fields["tags"]:
            tag = clean(raw).lower()
            if not tag or len(tag) > MAX_TAG_LENGTH or has_control_characters(tag):
                raise InvalidArgument(f"each tag must be 1-{MAX_TAG_LENGTH} printable characters", field="tags")
            if tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            raise InvalidArgument(f"at most {MAX_TAGS} tags", field="tags")
        out["tags"] = tags
    if "visibility" in fields or creating:
        out["visibility"] = validate_visibility(fields.get("visibility", ""))
    if "classification" in fields or creating:
        out["classification"] = fields.get("classification") or INTERNAL
        if out["classification"] not in CLASSIFICATIONS:
            raise InvalidArgument(f"must be one of {', '.join(CLASSIFICATIONS)}", field="classification")
    if ("storage_uri" in fields or creating) and not awaiting_upload:
        uri = (fields.get("storage_uri") or "").strip()
        if len(uri) > 2000 or not _URI.match(uri):
            raise InvalidArgument("must be an s3, gs, http(s) or media URI", field="storage_uri")
        out["storage_uri"] = uri
    return out


def _check_label(visibility: str, classification: str, field: str) -> None:
    if classification not in CLASSIFICATIONS:
        raise InvalidArgument(f"must be one of {', '.join(CLASSIFICATIONS)}", field="classification")
    if conflict := classification_conflict(visibility, classification):
        raise InvalidArgument(conflict, field=field)


def _valid_label(visibility: str, classification: str, field: str) -> str:
    _check_label(visibility, classification, field)
    return classification


class MediaItem(Flaggable):
    """A shared file's record. Flags (watercooler.moderation): its owner's change of what
    people see (title, description, the file itself) answers them."""

    ANSWERING_FIELDS = ("title", "description", "storage_uri")

    @event("MediaItemRegistered")
    def __init__(self, owner: str, title: str, description: str, kind: str, size_bytes: int, content_type: str, tags: list[str], visibility: str, storage_uri: str,
                 classification: str = INTERNAL):
        self.owner = owner
        self.classification = classification  # INTERNAL for an item registered before labels existed
        self.title = title
        self.description = description
        self.kind = kind
        self.size_bytes = size_bytes
        self.content_type = content_type
        self.tags = tags
        self.visibility = visibility
        self.storage_uri = storage_uri
        self.removed = False
        # Uploaded content, oldest first: dicts of version, upload_id, object_key, content_type,
        # size_bytes, sha256, time.
        self.versions: list[dict[str, Any]] = []
        self.author_id = owner.removeprefix("profiles/")
        self._init_flags()

    @classmethod
    def register(cls, owner: str, fields: dict[str, Any]) -> MediaItem:
        values = validate_media_fields(fields, creating=True)
        values.setdefault("description", "")
        values.setdefault("tags", [])
        _check_label(values["visibility"], values["classification"], "classification")
        return cls(owner=owner, **values)

    def update(self, changes: dict[str, Any], by_owner: bool = True) -> None:
        if self.removed:
            raise FailedPrecondition("the media item is removed", field="name")
        fixed = [name for name in CONTENT_FIELDS if name in changes and self.versions]
        if fixed:
            raise FailedPrecondition("is set by the uploaded content; upload a new version instead", field=fixed[0])
        values = validate_media_fields(changes, creating=False)
        changed = [name for name in MEDIA_FIELDS if name in values and values[name] != getattr(self, name)]
        if not changed:
            return
        _check_label(values.get("visibility", self.visibility), values.get("classification", self.classification),
                     "visibility" if "classification" not in changed else "classification")
        self._updated(changed_fields=changed, owner=self.owner, **{name: values[name] if name in changed else getattr(self, name) for name in MEDIA_FIELDS})
        if by_owner:
            self._author_edited(changed)

    @event("MediaItemUpdated")
    def _updated(self, changed_fields: list[str], title: str, description: str, kind: str, size_bytes: int, content_type: str, tags: list[str], visibility: str, storage_uri: str,
                 classification: str = INTERNAL, owner: str = "") -> None:
        # ``owner``: whose key seals the title and description whoever changes them (a service's
        # change too); events recorded before it name nobody.
        for name in changed_fields:
            setattr(self, name, locals()[name])

    def remove(self, reason: str) -> None:
        if self.removed:
            raise FailedPrecondition("the media item is already removed", field="name")
        self._removed(reason=reason)

    @event("MediaItemRemoved")
    def _removed(self, reason: str) -> None:
        self.removed = True

    def visible_to(self, principal: Any) -> bool:
        return may_see_library(principal, Library(self.visibility, self.owner, classification=self.classification))

    # --- uploaded content -------------------------------------------------------------------
    def check_uploadable(self, principal: Any) -> None:
        self.check_owner(principal)
        if self.removed:
            raise FailedPrecondition("the media item is removed", field="parent")
        if self.storage_uri and not self.versions:
            raise FailedPrecondition("its content lives at its storage_uri, not in the object store", field="parent")

    def attach_content(self, upload_id: str, object_key: str, content_type: str, size_bytes: int, sha256: str, storage_uri: str) -> int:
        if self.removed:
            raise FailedPrecondition("the media item is removed", field="name")
        version = len(self.versions) + 1
        self.trigger_event(self.MediaContentAttached, version=version, upload_id=upload_id, object_key=object_key,
                           content_type=content_type, size_bytes=size_bytes, sha256=sha256, storage_uri=storage_uri)
        return version

    class MediaContentAttached(EventSourcedAggregate.Event):
        version: int
        upload_id: str
        object_key: str
        content_type: str
        size_bytes: int
        sha256: str
        storage_uri: str

        def apply(self, item: MediaItem) -> None:
            item.versions.append(dict(version=self.version, upload_id=self.upload_id, object_key=self.object_key, content_type=self.content_type,
                                      size_bytes=self.size_bytes, sha256=self.sha256, time=self.timestamp))
            item.size_bytes, item.content_type, item.storage_uri = self.size_bytes, self.content_type, self.storage_uri

    def content_version(self, version: int, field: str = "version") -> dict[str, Any]:
        """One version (0: the newest)."""
        if not self.versions:
            raise FailedPrecondition("the media item has no uploaded content", field="name")
        if not 0 <= version <= len(self.versions):
            raise InvalidArgument(f"must be between 1 and {len(self.versions)}, or 0 for the newest", field=field)
        return self.versions[version - 1] if version else self.versions[-1]

    def record_thumbnails(self, version: int, sizes: list[int], made_sizes: tuple[int, ...], image_types: frozenset[str]) -> bool:
        """Records the thumbnails of one image version; False (nothing recorded) when they are
        recorded already: a redelivered event, or its retry, changes nothing."""
        if not 1 <= version <= len(self.versions):
            raise InvalidArgument(f"must be between 1 and {len(self.versions)}" if self.versions else "the media item has no uploaded content", field="version")
        wanted = sorted(set(sizes), reverse=True)
        if not wanted or any(size not in made_sizes for size in wanted):
            raise InvalidArgument(f"must be some of {', '.join(map(str, made_sizes))}", field="sizes")
        chosen = self.versions[version - 1]
        if chosen["content_type"] not in image_types:
            raise FailedPrecondition(f"version {version} is {chosen['content_type']}, not an image", field="version")
        if chosen.get("thumbnail_sizes"):
            return False
        self.trigger_event(self.MediaThumbnailsMade, version=version, sizes=wanted)
        return True

    class MediaThumbnailsMade(EventSourcedAggregate.Event):
        version: int
        sizes: list[int]

        def apply(self, item: MediaItem) -> None:
            item.versions[self.version - 1]["thumbnail_sizes"] = list(self.sizes)

    def thumbnail_of(self, version: dict[str, Any], size: int, field: str = "thumbnail_size") -> int:
        """The size asked for, when that thumbnail of the version is made."""
        made = version.get("thumbnail_sizes") or []
        if size not in made:
            raise FailedPrecondition(
                f"version {version['version']} has thumbnails of {', '.join(map(str, made))} pixels" if made else f"version {version['version']} has no thumbnails (yet)",
                field=field,
            )
        return size

    @property
    def content_bytes(self) -> int:
        return sum(v["size_bytes"] for v in self.versions)

    def check_owner(self, principal: Any) -> None:
        if not (principal.is_service or self.owner == f"profiles/{principal.subject}"):
            raise PermissionDenied("only the owner may change a media item", field="name")

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class MediaUpload(Aggregate):
    """An upload under way: which object a presigned PUT may write and what it must hold.
    Bookkeeping (not published): only the confirmed content becomes an event of the item."""

    @event("Started")
    def __init__(self, media_id: str, owner: str, object_key: str, size_bytes: int, content_type: str, sha256: str, expire_time: str):
        self.media_id = media_id
        self.owner = owner
        self.object_key = object_key
        self.size_bytes = size_bytes
        self.content_type = content_type
        self.sha256 = sha256
        self.expire_time = expire_time  # ISO 8601, UTC
        self.attached_version = 0  # the item's version it became, once confirmed

    @property
    def upload_id(self) -> str:
        return str(self.id)

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.expire_time)

    def check_confirmable(self, now: dt.datetime) -> None:
        if self.attached_version:
            raise FailedPrecondition(f"the upload is confirmed already (version {self.attached_version})", field="name")
        if now > self.expires:
            raise FailedPrecondition("the upload expired; start a new one", field="name")

    @event("Confirmed")
    def confirmed(self, version: int) -> None:
        self.attached_version = version


class MediaQuota(Aggregate):
    """Bytes of content one person keeps, every version counted. Saved with each attached
    version, so two uploads racing for the last bytes collide instead of both passing; and so
    also the one record of which items hold a person's uploaded content (``media_ids``), which
    an erasure of the person removes (``LibraryApplication.erase_owner_media``)."""

    @staticmethod
    def create_id(owner: str) -> uuid.UUID:
        return stable_id("media-quota", owner)

    @event("Opened")
    def __init__(self, owner: str):
        self.owner = owner
        self.used_bytes = 0
        self.media_ids: list[str] = []

    def check_room(self, size_bytes: int, limit: int, field: str) -> None:
        if self.used_bytes + size_bytes > limit:
            raise ResourceExhausted(f"{self.owner} keeps {self.used_bytes} of {limit} bytes; {size_bytes} more do not fit", field=field)

    @event("Changed")
    def change(self, delta: int, media_id: str = "") -> None:
        # ``media_id``: the item whose content changed ("" in changes recorded before it).
        self.used_bytes = max(0, self.used_bytes + delta)
        if media_id and media_id not in self.media_ids:
            self.media_ids.append(media_id)


def sane_view_time(when: dt.datetime, created: dt.datetime, now: dt.datetime, field: str, skew: dt.timedelta = dt.timedelta(minutes=5)) -> None:
    """A view cannot happen in the future (beyond clock skew) nor before the item existed."""
    if when > now + skew:
        raise InvalidArgument("is in the future", field=field)
    if when < created - skew:
        raise InvalidArgument("is before the item existed", field=field)

"""Wiki and media library application: commands, queries, and the checks a view
or download passes before it is appended to its topic.

It shares the posts service's event store (``service_name = "posts"``), so its
events are published to `posts.events.v1` by the posts relay.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from watercooler import personaldata
from watercooler.auth import Principal
from watercooler.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from watercooler.eventstore import CommandContext, EventSourcedApplication
from watercooler.guidelines import GuidelinesAcceptance
from watercooler.text import has_control_characters
from watercooler.visibility import Library, may_see_library, reads_hidden

from ..membership import CommunityMembership
from . import content, thumbnails
from .contentstore import ContentStore
from .domainmodel import (
    MediaItem,
    MediaQuota,
    MediaUpload,
    Page,
    Space,
    TitleClaim,
    sane_view_time,
    space_id_of,
    title_claim_id,
    validate_space_id,
    validate_title,
)

MAX_BATCH = 1000
# Who removes an erased person's media items, and the request ids of those removals.
ERASURE_SUBJECT = "posts-erasure"
ERASURE_NAMESPACE = uuid.UUID("0f7c2d4e-8a51-4b7e-9d3c-5e2a61b4c8f0")
_KNOWN_TARGETS_MAX = 200_000
# The library applications of this process: an item flags hid (the posts application decides
# that) is dropped from their caches of known view targets at once.
_APPLICATIONS: weakref.WeakSet[LibraryApplication] = weakref.WeakSet()


def forget_everywhere(name: str) -> None:
    for app in list(_APPLICATIONS):
        app.forget_target(name)


@dataclass(frozen=True)
class Target:
    """What a view or download needs to know about the item it counts."""

    name: str  # pages/{id} or media/{id}
    space_id: str
    created: dt.datetime
    visibility: str
    owner: str
    members: tuple[str, ...]
    # Media whose bytes are in the object store: its downloads are counted as links are issued.
    uploaded: bool = False
    classification: str = "INTERNAL"


class LibraryApplication(EventSourcedApplication):
    service_name = "posts"

    def __init__(self, settings: Any, membership: CommunityMembership | None = None, store: ContentStore | None = None):
        super().__init__(settings)
        self.store = store or ContentStore(settings)
        # Spaces owned by a community are its members': asked of the profiles service, cached.
        self.membership = membership or CommunityMembership(settings)
        # Spaces, pages and media are written to be shared (a RESTRICTED space may gain members
        # at any time): every write but a deletion needs the guidelines accepted.
        self.guidelines = GuidelinesAcceptance(settings, "posts")
        # Views arrive thousands a second for a few hot pages: remember which targets
        # exist instead of replaying their aggregates every time.  Deleting or removing
        # in this process drops the entry; entries never need to change otherwise.
        self._known: dict[str, Target] = {}
        self._known_lock = threading.Lock()
        _APPLICATIONS.add(self)

    # --- spaces -----------------------------------------------------------------------------
    def create_space(self, ctx: CommandContext, fields: dict[str, Any], request_fingerprint: str) -> Space:
        principal = ctx.principal
        if not (principal.is_service or principal.is_employee):
            raise PermissionDenied("only employees create wiki spaces", field="space_id")
        space_id = validate_space_id(fields.get("space_id", ""))
        owner = fields.get("owner") or f"profiles/{principal.subject}"
        if not principal.is_service and owner.startswith("profiles/") and owner != f"profiles/{principal.subject}":
            raise PermissionDenied("a person creates spaces they own (or for a community)", field="owner")
        if not principal.is_service and owner.startswith("communities/") and not self.membership.is_member(owner.removeprefix("communities/"), principal.subject):
            # The space would be shown to that community's members in its name.
            raise PermissionDenied(f"only members of {owner} create spaces it owns", field="owner")

        def decide() -> Space:
            if self.exists(space_id_of(space_id)):
                raise AlreadyExists(f"spaces/{space_id} already exists", field="space_id")
            space = Space.create(space_id, fields.get("display_name", ""), fields.get("description", ""), owner, fields.get("visibility", ""), list(fields.get("members", [])),
                                 fields.get("classification", ""))
            self.guidelines.require(principal)
            return space

        try:
            return self.run_command(ctx, "CreateSpace", request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted:
            raise AlreadyExists(f"spaces/{space_id} already exists", field="space_id") from None

    def get_space(self, principal: Any, space_id: str, field: str = "name") -> Space:
        validate_space_id(space_id, field=field)
        space = self.load(space_id_of(space_id), Space, f"spaces/{space_id}", field=field)
        if not space.visible_to(principal, self.membership.is_member):
            # Not even its existence is disclosed.
            raise NotFound(f"spaces/{space_id} not found", field=field)
        return space

    def update_space(self, ctx: CommandContext, space_id: str, changes: dict[str, Any], etag: str, request_fingerprint: str) -> Space:
        """The space's owner changes it: the person who owns it, an owner of the community that
        owns it, or a service; a community's archived spaces stay as they are."""
        principal = ctx.principal

        def decide() -> Space:
            space = self.get_space(principal, space_id)  # a space the caller may not see is NOT_FOUND
            if not principal.is_service:
                community = space.owner.removeprefix("communities/")
                owns = space.owner == f"profiles/{principal.subject}" or (
                    community != space.owner and principal.kind == "employee" and principal.subject in self.membership.owners(community))
                if not owns or principal.kind != "employee":
                    raise PermissionDenied(f"only the owner of spaces/{space_id} changes it", field="name")
            self._check_owner_open(space, "name")
            if etag and etag != space.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {space.etag}", field="etag", current_etag=space.etag)
            space.update(changes, principal.subject)
            return space

        space = self.run_command(ctx, "UpdateSpace", request_fingerprint, decide)
        with self._known_lock:  # the view targets cached the space's old audience
            self._known.clear()
        return space  # type: ignore[return-value]

    # --- pages ------------------------------------------------------------------------------
    def create_page(self, ctx: CommandContext, space_id: str, title: str, body: str, summary: str, request_fingerprint: str) -> Page:
        def decide() -> list[Any]:
            space = self._writable_space(ctx, space_id)
            clean_title = validate_title(title)
            if self.exists(title_claim_id(space.space_id, clean_title)):
                raise AlreadyExists(f"a page titled {clean_title!r} already exists (or existed) in spaces/{space_id}", field="title")
            page = Page.create(space.space_id, clean_title, body, ctx.principal.subject, summary)
            self.guidelines.require(ctx.principal)  # after the input is checked
            return [page, TitleClaim(space_id=space.space_id, title=clean_title, page_id=page.page_id, author=ctx.principal.subject)]

        try:
            return self.run_command(ctx, "CreatePage", request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted:
            raise AlreadyExists(f"a page titled {title!r} was just created in spaces/{space_id}", field="title") from None

    def get_page(self, principal: Any, page_id: str, field: str = "name", include_deleted: bool = True) -> Page:
        page = self.load(_uuid(page_id, field), Page, f"pages/{page_id}", field=field)
        space = self.load(space_id_of(page.space_id), Space, f"pages/{page_id}", field=field)
        if not space.visible_to(principal, self.membership.is_member):
            raise NotFound(f"pages/{page_id} not found", field=field)
        if page.hidden and not reads_hidden(principal, page.author_id):
            raise NotFound(f"pages/{page_id} not found", field=field)  # hidden by flags: as if absent
        if page.deleted and not include_deleted:
            raise NotFound(f"pages/{page_id} is deleted", field=field)
        return page

    def lookup_page(self, principal: Any, space_id: str, title: str) -> Page:
        self.get_space(principal, space_id, field="space")
        title = validate_title(title)
        try:
            claim: TitleClaim = self.repository.get(title_claim_id(space_id, title))
        except AggregateNotFoundError:
            raise NotFound(f"no page titled {title!r} in spaces/{space_id}", field="title") from None
        return self.get_page(principal, claim.page_id, field="title")

    def edit_page(self, ctx: CommandContext, page_id: str, base_revision: int, body: str, summary: str, request_fingerprint: str) -> Page:
        def decide() -> Page:
            page = self._writable_page(ctx, page_id)
            page.edit(base_revision, body, ctx.principal.subject, summary)
            self.guidelines.require(ctx.principal)  # after the input is checked
            return page

        return self._run_page_command(ctx, "EditPage", request_fingerprint, decide, page_id)

    def restore_revision(self, ctx: CommandContext, page_id: str, base_revision: int, revision: int, request_fingerprint: str) -> Page:
        def decide() -> Page:
            page = self._writable_page(ctx, page_id)
            page.restore(base_revision, revision, ctx.principal.subject)
            self.guidelines.require(ctx.principal)  # after the input is checked
            return page

        return self._run_page_command(ctx, "RestoreRevision", request_fingerprint, decide, page_id)

    def rename_page(self, ctx: CommandContext, page_id: str, base_revision: int, title: str, request_fingerprint: str) -> Page:
        def decide() -> list[Any]:
            page = self._writable_page(ctx, page_id)
            page.rename(base_revision, title, ctx.principal.subject)
            self.guidelines.require(ctx.principal)  # after the input is checked
            claim_id = title_claim_id(page.space_id, page.title)
            if self.exists(claim_id):
                claim: TitleClaim = self.repository.get(claim_id)
                if claim.page_id != page.page_id:
                    raise AlreadyExists(f"a page titled {page.title!r} already exists (or existed) in spaces/{page.space_id}", field="title")
                return [page]  # back to one of its own former titles: the claim is its already
            return [page, TitleClaim(space_id=page.space_id, title=page.title, page_id=page.page_id, author=ctx.principal.subject)]

        return self._run_page_command(ctx, "RenamePage", request_fingerprint, decide, page_id)

    def delete_page(self, ctx: CommandContext, page_id: str, base_revision: int, request_fingerprint: str) -> Page:
        def decide() -> Page:
            page = self._writable_page(ctx, page_id)
            page.delete(base_revision, ctx.principal.subject)
            return page

        page = self._run_page_command(ctx, "DeletePage", request_fingerprint, decide, page_id)
        self.forget_target(f"pages/{page_id}")
        return page

    def _run_page_command(self, ctx: CommandContext, command: str, request_fingerprint: str, decide: Any, page_id: str) -> Page:
        try:
            return self.run_command(ctx, command, request_fingerprint, decide)  # type: ignore[return-value]
        except Aborted as error:
            if "current_revision" in error.details:
                raise
            # Lost the race to a concurrent writer after the base check: tell the caller where the page is now.
            current = self.load(_uuid(page_id, "name"), Page, f"pages/{page_id}")
            raise Aborted(
                f"the page changed concurrently; the current revision is {current.revision}",
                field="base_revision",
                current_revision=current.revision,
            ) from None

    def _writable_space(self, ctx: CommandContext, space_id: str) -> Space:
        space = self.get_space(ctx.principal, space_id, field="space")
        if not space.may_edit(ctx.principal, self.membership.is_member):
            raise PermissionDenied(f"you may not edit spaces/{space_id}", field="space")
        self._check_owner_open(space, "space")
        return space

    def _writable_page(self, ctx: CommandContext, page_id: str) -> Page:
        page = self.get_page(ctx.principal, page_id)
        space = self.load(space_id_of(page.space_id), Space, f"spaces/{page.space_id}")
        if not space.may_edit(ctx.principal, self.membership.is_member):
            raise PermissionDenied(f"you may not edit pages/{page_id}", field="name")
        self._check_owner_open(space, "name")
        return page

    def _check_owner_open(self, space: Space, field: str) -> None:
        """The spaces of an archived community are read-only, as the community is."""
        community = space.owner.removeprefix("communities/")
        if community != space.owner and self.membership.archived(community):
            raise FailedPrecondition(f"{space.owner} is archived (read-only)", field=field)

    # --- media ------------------------------------------------------------------------------
    def register_media_item(self, ctx: CommandContext, fields: dict[str, Any], request_fingerprint: str) -> MediaItem:
        principal = ctx.principal
        if not (principal.is_service or principal.is_employee):
            raise PermissionDenied("only employees share media", field="owner")
        owner = f"profiles/{principal.subject}"

        def decide() -> MediaItem:
            item = MediaItem.register(owner, fields)
            self.guidelines.require(principal)
            return item

        return self.run_command(ctx, "RegisterMediaItem", request_fingerprint, decide)  # type: ignore[return-value]

    def get_media_item(self, principal: Any, media_id: str, field: str = "name") -> MediaItem:
        item = self.load(_uuid(media_id, field), MediaItem, f"media/{media_id}", field=field)
        if not item.visible_to(principal) or (item.hidden and not reads_hidden(principal, item.author_id)):
            raise NotFound(f"media/{media_id} not found", field=field)
        return item

    def update_media_item(self, ctx: CommandContext, media_id: str, changes: dict[str, Any], etag: str, request_fingerprint: str) -> MediaItem:
        def decide() -> MediaItem:
            item = self.get_media_item(ctx.principal, media_id)
            item.check_owner(ctx.principal)
            if etag and etag != item.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {item.etag}", field="etag", current_etag=item.etag)
            item.update(changes, by_owner=not ctx.principal.is_service)
            self.guidelines.require(ctx.principal)  # after the input is checked
            return item

        item = self.run_command(ctx, "UpdateMediaItem", request_fingerprint, decide)
        self.forget_target(f"media/{media_id}")  # its visibility may have changed
        return item  # type: ignore[return-value]

    def remove_media_item(self, ctx: CommandContext, media_id: str, etag: str, request_fingerprint: str) -> MediaItem:
        def decide() -> MediaItem:
            item = self.get_media_item(ctx.principal, media_id)
            item.check_owner(ctx.principal)
            if etag and etag != item.etag:
                raise Aborted(f"etag {etag} is stale; the current etag is {item.etag}", field="etag", current_etag=item.etag)
            item.remove("removed by its owner" if not ctx.principal.is_service else "removed by a service")
            if not item.versions:
                return item
            quota = self._quota(item.owner)
            quota.change(-item.content_bytes, str(item.id))  # a removed item's content no longer counts
            return [item, quota]

        item: MediaItem = self._with_quota_retries(lambda: self.run_command(ctx, "RemoveMediaItem", request_fingerprint, decide))
        self.forget_target(f"media/{media_id}")
        for key in self.store.media_keys(item):  # nobody may download them any more; links already out stop working
            self.store.delete(key)
        return item

    def erase_owner_media(self, employee_id: str, erasure_id: str) -> list[str]:
        """After ``ProfileErased``: remove every item holding content the person uploaded (their
        avatar and status photos included) and delete its objects, every version and thumbnail.

        Every version of an item is its owner's (only the owner uploads), so the item goes as a
        whole, as if its owner had removed it: recorded (``MediaItemRemoved``), so a download
        or a link answers NOT_FOUND from then on, and the sweeper deletes whatever object a
        failed delete leaves. Idempotent: a removed item is left as it is, its objects deleted
        again; each removal carries a request id derived from the erasure and the item.
        Returns the ids of the items it went through."""
        owner = f"profiles/{employee_id}"
        quota_id = MediaQuota.create_id(owner)
        if not self.exists(quota_id):
            return []
        quota: MediaQuota = self.repository.get(quota_id)
        for media_id in quota.media_ids:
            ctx = CommandContext(Principal(ERASURE_SUBJECT, "service"), request_id=str(uuid.uuid5(ERASURE_NAMESPACE, f"{erasure_id}/media/{media_id}")))

            def decide(media_id: str = media_id) -> Any:
                item: MediaItem = self.load(uuid.UUID(media_id), MediaItem, f"media/{media_id}")
                if item.removed:
                    return item
                item.remove(personaldata.ERASED_OWNER_REASON)
                if not item.versions:
                    return item
                owner_quota = self._quota(item.owner)
                owner_quota.change(-item.content_bytes, media_id)
                return [item, owner_quota]

            try:
                item: MediaItem = self._with_quota_retries(lambda decide=decide, ctx=ctx: self.run_command(ctx, "EraseOwnerMedia", "", decide))
            except NotFound:
                continue  # nothing of it to remove; an error that would stop every later erasure otherwise
            self.forget_target(f"media/{media_id}")
            for key in self.store.media_keys(item):
                self.store.delete(key)
        return list(quota.media_ids)

    # --- content: uploads and downloads -----------------------------------------------------
    def _quota(self, owner: str) -> MediaQuota:
        quota_id = MediaQuota.create_id(owner)
        return self.repository.get(quota_id) if self.exists(quota_id) else MediaQuota(owner=owner)

    @staticmethod
    def _with_quota_retries(run: Any, attempts: int = 8) -> Any:
        """A person's uploads confirmed at once all change their one quota record: the losers of
        that race decide again on the new total (the item's etag is not involved, so no caller
        needs to re-read anything)."""
        for attempt in range(attempts):
            try:
                return run()
            except Aborted as error:
                # A stale etag the caller sent (current_etag given) is theirs to resolve.
                if attempt == attempts - 1 or error.field != "etag" or "current_etag" in error.details:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def create_upload(self, ctx: CommandContext, media_id: str, size_bytes: int, content_type: str, sha256: str, request_fingerprint: str) -> MediaUpload:
        """Reserves nothing: the quota is checked now and again, exactly, when the content is confirmed."""

        def decide() -> MediaUpload:
            item = self.get_media_item(ctx.principal, media_id, field="parent")
            item.check_uploadable(ctx.principal)
            size, declared_type, digest = content.validate_declared(size_bytes, content_type, sha256)
            self._quota(item.owner).check_room(size, content.quota_bytes(), field="upload.size_bytes")
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=content.upload_ttl_seconds())
            return MediaUpload(media_id=media_id, owner=item.owner, object_key=self.store.new_key(media_id), size_bytes=size,
                               content_type=declared_type, sha256=digest, expire_time=expires.isoformat())

        return self.run_command(ctx, "CreateUpload", request_fingerprint, decide)  # type: ignore[return-value]

    def get_upload(self, principal: Any, media_id: str, upload_id: str) -> MediaUpload:
        name = f"media/{media_id}/uploads/{upload_id}"
        item = self.get_media_item(principal, media_id)
        upload = self.load(_uuid(upload_id, "name"), MediaUpload, name)
        if upload.media_id != media_id:
            raise NotFound(f"{name} not found", field="name")
        item.check_owner(principal)
        return upload

    def confirm_upload(self, ctx: CommandContext, media_id: str, upload_id: str, request_fingerprint: str) -> MediaItem:
        """Reads the object back and checks it before anything is recorded; refused bytes are deleted."""
        upload = self.get_upload(ctx.principal, media_id, upload_id)
        checked: tuple[str, int, str] | None = None
        if not upload.attached_version:  # a confirmed one is answered below (a retry) without reading again
            upload.check_confirmable(dt.datetime.now(dt.UTC))
            read = self.store.read_back(upload.object_key, upload.sha256, whole=upload.content_type in content.ZIP_TYPES)
            if read is None:
                raise FailedPrecondition("nothing was uploaded yet: PUT the content to the upload_uri first", field="name")
            try:
                sniffed = content.check_content(upload.content_type, upload.size_bytes, upload.sha256, read.size, read.sha256, read.head, read.body)
            except FailedPrecondition:
                self.store.delete(upload.object_key)
                raise
            finally:
                read.body.close()
            checked = (sniffed, read.size, read.sha256)

        def decide() -> list[Any]:
            item = self.get_media_item(ctx.principal, media_id)
            item.check_uploadable(ctx.principal)
            current: MediaUpload = self.repository.get(upload.id)
            current.check_confirmable(dt.datetime.now(dt.UTC))
            assert checked is not None
            sniffed, size, digest = checked
            quota = self._quota(item.owner)
            quota.check_room(size, content.quota_bytes(), field="size_bytes")
            version = item.attach_content(upload_id, upload.object_key, sniffed, size, digest, self.store.storage_uri(upload.object_key))
            current.confirmed(version)
            quota.change(size, media_id)
            return [item, current, quota]

        try:
            item: MediaItem = self._with_quota_retries(lambda: self.run_command(ctx, "ConfirmUpload", request_fingerprint, decide))
        except ResourceExhausted:
            self.store.delete(upload.object_key)
            raise
        self.forget_target(f"media/{media_id}")
        return item

    def download(self, principal: Any, media_id: str, version: int, client: str) -> tuple[MediaItem, dict[str, Any], Target]:
        """The version to link to, for a caller who may see the item now, and the target its
        download fact counts against."""
        if len(client) > 64 or has_control_characters(client):
            raise InvalidArgument("must be at most 64 printable characters", field="client")
        item = self.get_media_item(principal, media_id)
        if item.removed:
            raise NotFound(f"media/{media_id} not found", field="name")
        chosen = item.content_version(version)
        return item, chosen, Target(f"media/{media_id}", "", item.created_on, item.visibility, item.owner, (), uploaded=True)

    def thumbnail(self, principal: Any, media_id: str, version: int, size: int) -> tuple[MediaItem, dict[str, Any], str]:
        """The key of a thumbnail of the version, for exactly whoever may download the content
        (the same checks, the same NOT_FOUND). Not a counted download."""
        if size not in thumbnails.THUMBNAIL_SIZES:
            raise InvalidArgument(f"must be 0 (the content) or one of {', '.join(map(str, thumbnails.THUMBNAIL_SIZES))}", field="thumbnail_size")
        item, chosen, _ = self.download(principal, media_id, version, "")
        item.thumbnail_of(chosen, size)
        return item, chosen, self.store.thumbnail_key(media_id, chosen["version"], size)

    def record_thumbnails(self, ctx: CommandContext, media_id: str, version: int, sizes: list[int], request_fingerprint: str) -> MediaItem:
        """The thumbnail maker's report (a service); once per version, whatever the retries."""

        def decide() -> MediaItem:
            item = self.get_media_item(ctx.principal, media_id)
            if not ctx.principal.is_service:
                raise PermissionDenied("only the thumbnail maker (a service) records thumbnails", field="name")
            if item.removed:
                raise FailedPrecondition("the media item is removed", field="name")
            item.record_thumbnails(version, sizes, thumbnails.THUMBNAIL_SIZES, thumbnails.IMAGE_TYPES)
            return item

        return self.run_command(ctx, "RecordThumbnails", request_fingerprint, decide)  # type: ignore[return-value]

    def sweep(self, now: dt.datetime | None = None) -> int:
        """Deletes objects no version holds (abandoned or refused uploads, removed items,
        thumbnails never recorded) once no confirm can still be running on them: unconfirmed
        uploads expire after the TTL, and a confirm started just before then has another TTL (at
        least 10 s) to finish. (The thumbnail maker records within seconds of writing, and writes
        again on every retry.)"""
        ttl = content.upload_ttl_seconds()
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=ttl + max(ttl, 10))
        deleted = 0
        for media_id, key in self.store.older_than(cutoff):
            try:
                item: MediaItem | None = self.repository.get(uuid.UUID(media_id))
            except (AggregateNotFoundError, ValueError):
                item = None
            if item is None or item.removed or key not in self.store.media_keys(item):
                self.store.delete(key)
                deleted += 1
        return deleted

    # --- views and downloads ----------------------------------------------------------------
    def check_views(self, principal: Any, views: list[tuple[str, str, dt.datetime | None, str]], field: str) -> list[tuple[Target, str, dt.datetime]]:
        """Validate a batch of (target name, viewer, time, client): every one or none.

        Returns (target, viewer, time) for each, in order.  Raises on the first bad one,
        naming it (``views[3].page``)."""
        if not views:
            raise InvalidArgument("at least one is required", field=field)
        if len(views) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} per batch", field=field)
        now = dt.datetime.now(dt.UTC)
        checked = []
        for index, (name, viewer, when, client) in enumerate(views):
            prefix = f"{field}[{index}]" if field.endswith("s") else field
            if len(client) > 64 or has_control_characters(client):
                raise InvalidArgument("must be at most 64 printable characters", field=f"{prefix}.client")
            target_field = "page" if name.startswith("pages/") else "media_item"
            target = self.known_target(principal, name, f"{prefix}.{target_field}")
            if target.uploaded:
                # Counted where they happen: CreateDownloadLink. A client's report would count twice.
                raise FailedPrecondition("its content is in the object store: downloads are counted when CreateDownloadLink issues a link", field=f"{prefix}.{target_field}")
            if viewer and not principal.is_service and viewer != principal.subject:
                raise PermissionDenied("only a service may record views for someone else", field=f"{prefix}.viewer")
            viewer = viewer or ("" if principal.is_service else principal.subject)
            if not viewer:
                raise InvalidArgument("a service must name the viewer", field=f"{prefix}.viewer")
            when = when or now
            sane_view_time(when, target.created, now, field=f"{prefix}.{'view_time' if target_field == 'page' else 'download_time'}")
            checked.append((target, viewer, when))
        return checked

    def known_target(self, principal: Any, name: str, field: str) -> Target:
        target = self._known.get(name)
        if target is None:
            kind, _, raw_id = name.partition("/")
            if kind == "pages":
                page = self.get_page(principal, raw_id, field=field, include_deleted=False)
                space = self.load(space_id_of(page.space_id), Space, name, field=field)
                target = Target(name, page.space_id, page.created_on, space.visibility, space.owner, tuple(space.members), classification=space.classification)
            elif kind == "media":
                item = self.get_media_item(principal, raw_id, field=field)
                if item.removed:
                    raise NotFound(f"{name} is removed", field=field)
                target = Target(name, "", item.created_on, item.visibility, item.owner, (), uploaded=bool(item.versions), classification=item.classification)
            else:
                raise InvalidArgument("must be 'pages/{id}' or 'media/{id}'", field=field)
            with self._known_lock:
                if len(self._known) >= _KNOWN_TARGETS_MAX:
                    self._known.clear()
                self._known[name] = target
        elif not may_see_library(principal, Library(target.visibility, target.owner, target.members, classification=target.classification), self.membership.is_member):
            raise NotFound(f"{name} not found", field=field)
        return target

    def forget_target(self, name: str) -> None:
        with self._known_lock:
            self._known.pop(name, None)


def _uuid(raw: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("not found (not an id this service issued)", field=field) from None


APPLICATION = LibraryApplication

"""gRPC faces of the wiki and the media library: translate messages, nothing more."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import grpc

from watercooler.auth import current_principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.posts.v1 import media_pb2, media_pb2_grpc, posts_pb2, wiki_pb2, wiki_pb2_grpc
from watercooler.rpc import (
    command_context,
    decode_page_token,
    encode_page_token,
    enum_name,
    fields_under,
    in_thread,
    page_size,
    parse_name,
    request_fingerprint,
    validate_request_id,
)

from . import content, thumbnails
from .application import LibraryApplication
from .contentstore import ContentStore
from .domainmodel import MediaItem, MediaUpload, Page, Space
from .erasure import start_erasure_follower
from .viewlog import DOWNLOADS, VIEWS, FactLog, ensure_fact_topics

log = logging.getLogger(__name__)


def _ts(message: Any, field: str, value: dt.datetime) -> None:
    getattr(message, field).FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))


def space_to_proto(space: Space) -> wiki_pb2.Space:
    message = wiki_pb2.Space(
        name=f"spaces/{space.space_id}",
        space_id=space.space_id,
        display_name=space.display_name,
        description=space.description,
        owner=space.owner,
        visibility=wiki_pb2.Visibility.Value(space.visibility),
        members=space.members,
        etag=space.etag,
        classification=posts_pb2.Classification.Label.Value(space.classification),
    )
    _ts(message, "create_time", space.created_on)
    return message


def page_to_proto(page: Page) -> wiki_pb2.Page:
    message = wiki_pb2.Page(
        name=f"pages/{page.page_id}",
        space=f"spaces/{page.space_id}",
        title=page.title,
        body=page.body,
        revision=page.revision,
        links=page.links,
        former_titles=page.former_titles,
        deleted=page.deleted,
        etag=page.etag,
        author=page.author,
        hidden=page.hidden,
        hide_reason=page.hide_reason,
    )
    _ts(message, "create_time", page.created_on)
    _ts(message, "update_time", page.modified_on)
    return message


def revision_to_proto(page: Page, entry: dict[str, Any], with_body: bool) -> wiki_pb2.Revision:
    message = wiki_pb2.Revision(
        name=f"pages/{page.page_id}/revisions/{entry['revision']}",
        revision=entry["revision"],
        title=entry["title"],
        body=entry["body"] if with_body else "",
        author=entry["author"],
        summary=entry["summary"],
        action=entry["action"],
        size_bytes=len(entry["body"].encode()),
    )
    _ts(message, "create_time", entry["time"] or page.created_on)
    return message


def media_to_proto(item: MediaItem) -> media_pb2.MediaItem:
    message = media_pb2.MediaItem(
        name=f"media/{item.id}",
        owner=item.owner,
        title=item.title,
        description=item.description,
        kind=media_pb2.MediaItem.Kind.Value(item.kind),
        size_bytes=item.size_bytes,
        content_type=item.content_type,
        tags=item.tags,
        visibility=wiki_pb2.Visibility.Value(item.visibility),
        classification=posts_pb2.Classification.Label.Value(item.classification),
        storage_uri=item.storage_uri,
        removed=item.removed,
        hidden=item.hidden,
        etag=item.etag,
    )
    _ts(message, "create_time", item.created_on)
    _ts(message, "update_time", item.modified_on)
    for version in item.versions:
        entry = message.versions.add(version=version["version"], size_bytes=version["size_bytes"], content_type=version["content_type"], sha256=version["sha256"],
                                     thumbnail_sizes=version.get("thumbnail_sizes") or [])
        _ts(entry, "create_time", version["time"])
    return message


def upload_to_proto(upload: MediaUpload, store: ContentStore) -> media_pb2.Upload:
    message = media_pb2.Upload(
        name=f"media/{upload.media_id}/uploads/{upload.upload_id}",
        size_bytes=upload.size_bytes,
        content_type=upload.content_type,
        sha256=upload.sha256,
        version=upload.attached_version,
    )
    _ts(message, "expire_time", upload.expires)
    seconds = int((upload.expires - dt.datetime.now(dt.UTC)).total_seconds())
    if not upload.attached_version and seconds > 0:  # a retry of CreateUpload gets a fresh signature, same object
        message.upload_uri, headers = store.presign_put(upload.object_key, upload.size_bytes, upload.content_type, seconds, upload.sha256)
        message.upload_headers.update(headers)
    return message


def parse_upload_name(name: str) -> tuple[str, str]:
    """``media/{media_id}/uploads/{upload_id}`` -> (media_id, upload_id)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "media" or parts[2] != "uploads" or not parts[1] or not parts[3]:
        raise InvalidArgument("must look like 'media/{id}/uploads/{upload_id}'" if name else "required, as 'media/{id}/uploads/{upload_id}'", field="name")
    return parts[1], parts[3]


def _visibility(value: int) -> str:
    return enum_name(wiki_pb2.Visibility, value, "visibility")


def _classification(value: int) -> str:
    return enum_name(posts_pb2.Classification.Label, value, "classification", zero="INTERNAL")


def _time_or_none(message: Any, field: str) -> dt.datetime | None:
    return getattr(message, field).ToDatetime(tzinfo=dt.UTC) if message.HasField(field) else None


# What UpdateSpace changes (field-mask paths).
SPACE_MASK_FIELDS = ("display_name", "description", "visibility", "members", "classification")

class WikiServicer(wiki_pb2_grpc.WikiServiceServicer):
    def __init__(self, app: LibraryApplication, facts: FactLog):
        self.app = app
        self.facts = facts

    async def CreateSpace(self, request, context):
        space = request.space
        ctx = command_context(context, request.request_id)
        fields = {
            "space_id": space.space_id,
            "display_name": space.display_name,
            "description": space.description,
            "owner": space.owner,
            "visibility": _visibility(space.visibility),
            "members": list(space.members),
            "classification": _classification(space.classification),
        }
        with fields_under("space"):
            created = await in_thread(self.app.create_space, ctx, fields, request_fingerprint(request))
        return space_to_proto(created)

    async def UpdateSpace(self, request, context):
        space = request.space
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else [p for p in SPACE_MASK_FIELDS if getattr(space, p)]
        unknown = [p for p in paths if p not in SPACE_MASK_FIELDS]
        if unknown:
            raise InvalidArgument(f"unknown or read-only field(s): {', '.join(unknown)}; updatable: {', '.join(SPACE_MASK_FIELDS)}", field="update_mask")
        if not paths:
            raise InvalidArgument("names no field to change", field="update_mask")
        ctx = command_context(context, request.request_id)
        with fields_under("space"):
            space_id = parse_name(space.name, "spaces")
            values = {"display_name": space.display_name, "description": space.description, "members": list(space.members)}
            if "visibility" in paths:
                values["visibility"] = _visibility(space.visibility)
            if "classification" in paths:
                values["classification"] = _classification(space.classification)
            changes = {p: values[p] for p in paths}
            updated = await in_thread(self.app.update_space, ctx, space_id, changes, space.etag, request_fingerprint(request))
        return space_to_proto(updated)

    async def GetSpace(self, request, context):
        space_id = parse_name(request.name, "spaces")
        return space_to_proto(await in_thread(self.app.get_space, current_principal(), space_id))

    async def CreatePage(self, request, context):
        space_id = parse_name(request.page.space, "spaces", field="page.space")
        ctx = command_context(context, request.request_id)
        with fields_under("page", request_level=("request_id", "summary")):
            page = await in_thread(self.app.create_page, ctx, space_id, request.page.title, request.page.body, request.summary, request_fingerprint(request))
        return page_to_proto(page)

    async def GetPage(self, request, context):
        page_id = parse_name(request.name, "pages")
        return page_to_proto(await in_thread(self.app.get_page, current_principal(), page_id))

    async def LookupPage(self, request, context):
        space_id = parse_name(request.space, "spaces", field="space")
        return page_to_proto(await in_thread(self.app.lookup_page, current_principal(), space_id, request.title))

    async def EditPage(self, request, context):
        page_id = parse_name(request.name, "pages")
        ctx = command_context(context, request.request_id)
        page = await in_thread(self.app.edit_page, ctx, page_id, request.base_revision, request.body, request.summary, request_fingerprint(request))
        return page_to_proto(page)

    async def RenamePage(self, request, context):
        page_id = parse_name(request.name, "pages")
        ctx = command_context(context, request.request_id)
        page = await in_thread(self.app.rename_page, ctx, page_id, request.base_revision, request.title, request_fingerprint(request))
        return page_to_proto(page)

    async def RestoreRevision(self, request, context):
        page_id = parse_name(request.name, "pages")
        ctx = command_context(context, request.request_id)
        page = await in_thread(self.app.restore_revision, ctx, page_id, request.base_revision, request.revision, request_fingerprint(request))
        return page_to_proto(page)

    async def DeletePage(self, request, context):
        page_id = parse_name(request.name, "pages")
        ctx = command_context(context, request.request_id)
        page = await in_thread(self.app.delete_page, ctx, page_id, request.base_revision, request_fingerprint(request))
        return page_to_proto(page)

    async def ListRevisions(self, request, context):
        page_id = parse_name(request.name, "pages")
        size = page_size(request.page_size)
        start = decode_page_token(request.page_token, page_id)
        page = await in_thread(self.app.get_page, current_principal(), page_id)
        newest = int(start) if start is not None else page.revision
        numbers = list(range(newest, max(0, newest - size), -1))
        response = wiki_pb2.ListRevisionsResponse(revisions=[revision_to_proto(page, page.revision_at(n), with_body=False) for n in numbers])
        if numbers and numbers[-1] > 1:
            response.next_page_token = encode_page_token(numbers[-1] - 1, page_id)
        return response

    async def GetRevision(self, request, context):
        page_id = parse_name(request.name, "pages")
        page = await in_thread(self.app.get_page, current_principal(), page_id)
        return revision_to_proto(page, page.revision_at(request.revision), with_body=True)

    async def DiffRevisions(self, request, context):
        page_id = parse_name(request.name, "pages")
        page = await in_thread(self.app.get_page, current_principal(), page_id)
        diff, old, new = page.diff(request.from_revision, request.to_revision)
        return wiki_pb2.DiffRevisionsResponse(diff=diff, from_title=old["title"], to_title=new["title"])

    async def RecordPageView(self, request, context):
        return await self._record([request.view], "view", request)

    async def BatchRecordPageViews(self, request, context):
        return await self._record(list(request.views), "views", request)

    async def _record(self, views: list[wiki_pb2.PageView], field: str, request: Any) -> wiki_pb2.RecordViewsResponse:
        for index, view in enumerate(views):
            if not view.page.startswith("pages/"):
                prefix = f"{field}[{index}]" if field.endswith("s") else field
                raise InvalidArgument("must look like 'pages/{id}'", field=f"{prefix}.page")
        raw = [(v.page, v.viewer, _time_or_none(v, "view_time"), v.client) for v in views]
        if request.request_id:
            validate_request_id(request.request_id)
        checked = await in_thread(self.app.check_views, current_principal(), raw, field)
        recorded = await self.facts.append(
            VIEWS, checked, [v.client for v in views], current_principal().subject, request.request_id, request_fingerprint(request)
        )
        return wiki_pb2.RecordViewsResponse(recorded=recorded)


MEDIA_MASK = ("title", "description", "kind", "size_bytes", "content_type", "tags", "visibility", "storage_uri", "classification")


def _media_fields(item: media_pb2.MediaItem, paths: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for path in paths:
        value = getattr(item, path)
        if path == "kind":
            value = enum_name(media_pb2.MediaItem.Kind, value, "media_item.kind")
        elif path == "visibility":
            value = _visibility(value)
        elif path == "classification":
            value = _classification(value)
        elif path == "tags":
            value = list(value)
        fields[path] = value
    return fields


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, app: LibraryApplication, facts: FactLog):
        self.app = app
        self.facts = facts

    async def RegisterMediaItem(self, request, context):
        ctx = command_context(context, request.request_id)
        with fields_under("media_item"):
            fields = _media_fields(request.media_item, list(MEDIA_MASK))
            item = await in_thread(self.app.register_media_item, ctx, fields, request_fingerprint(request))
        return media_to_proto(item)

    async def GetMediaItem(self, request, context):
        media_id = parse_name(request.name, "media")
        return media_to_proto(await in_thread(self.app.get_media_item, current_principal(), media_id))

    async def UpdateMediaItem(self, request, context):
        media_id = parse_name(request.media_item.name, "media", field="media_item.name")
        if request.HasField("update_mask"):
            paths = list(request.update_mask.paths)
            unknown = [p for p in paths if p not in MEDIA_MASK and p != "*"]
            if unknown:
                raise InvalidArgument(f"unknown or read-only field(s): {', '.join(unknown)}", field="update_mask")
            if "*" in paths:
                paths = list(MEDIA_MASK)
        else:
            paths = [p for p in MEDIA_MASK if _is_set(request.media_item, p)]
        ctx = command_context(context, request.request_id)
        with fields_under("media_item"):
            changes = _media_fields(request.media_item, paths)
            item = await in_thread(self.app.update_media_item, ctx, media_id, changes, request.media_item.etag, request_fingerprint(request))
        return media_to_proto(item)

    async def RemoveMediaItem(self, request, context):
        media_id = parse_name(request.name, "media")
        ctx = command_context(context, request.request_id)
        return media_to_proto(await in_thread(self.app.remove_media_item, ctx, media_id, request.etag, request_fingerprint(request)))

    async def CreateUpload(self, request, context):
        media_id = parse_name(request.parent, "media", field="parent")
        ctx = command_context(context, request.request_id)
        upload = request.upload
        upload_ = await in_thread(self.app.create_upload, ctx, media_id, upload.size_bytes, upload.content_type, upload.sha256, request_fingerprint(request))
        return upload_to_proto(upload_, self.app.store)

    async def ConfirmUpload(self, request, context):
        media_id, upload_id = parse_upload_name(request.name)
        ctx = command_context(context, request.request_id)
        return media_to_proto(await in_thread(self.app.confirm_upload, ctx, media_id, upload_id, request_fingerprint(request)))

    async def CreateDownloadLink(self, request, context):
        media_id = parse_name(request.name, "media")
        if request.request_id:
            validate_request_id(request.request_id)
        principal = current_principal()
        if request.thumbnail_size:
            return await self._thumbnail_link(principal, media_id, request)
        item, version, target = await in_thread(self.app.download, principal, media_id, request.version, request.client)
        # The link is the download: counted (once per request_id) before the caller has it.
        await self.facts.append(DOWNLOADS, [(target, principal.subject, dt.datetime.now(dt.UTC))], [request.client], principal.subject,
                                request.request_id, request_fingerprint(request))
        seconds = content.download_link_ttl_seconds()
        link = media_pb2.DownloadLink(
            media_item=f"media/{media_id}",
            version=version["version"],
            uri=self.app.store.presign_get(version["object_key"], seconds, version["content_type"]),
            size_bytes=version["size_bytes"],
            content_type=version["content_type"],
            sha256=version["sha256"],
        )
        _ts(link, "expire_time", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
        return link

    async def _thumbnail_link(self, principal: Any, media_id: str, request: Any) -> media_pb2.DownloadLink:
        """Not counted: a thumbnail shown in a list is no download of the content."""
        _, version, key = await in_thread(self.app.thumbnail, principal, media_id, request.version, request.thumbnail_size)
        seconds = content.download_link_ttl_seconds()
        link = media_pb2.DownloadLink(
            media_item=f"media/{media_id}",
            version=version["version"],
            uri=self.app.store.presign_get(key, seconds, thumbnails.THUMBNAIL_CONTENT_TYPE),
            content_type=thumbnails.THUMBNAIL_CONTENT_TYPE,
            thumbnail_size=request.thumbnail_size,
        )
        _ts(link, "expire_time", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
        return link

    async def RecordThumbnails(self, request, context):
        media_id = parse_name(request.name, "media")
        ctx = command_context(context, request.request_id)
        item = await in_thread(self.app.record_thumbnails, ctx, media_id, request.version, list(request.sizes), request_fingerprint(request))
        return media_to_proto(item)

    async def RecordDownload(self, request, context):
        return await self._record([request.download], "download", request)

    async def BatchRecordDownloads(self, request, context):
        return await self._record(list(request.downloads), "downloads", request)

    async def _record(self, downloads: list[media_pb2.Download], field: str, request: Any) -> wiki_pb2.RecordViewsResponse:
        for index, download in enumerate(downloads):
            if not download.media_item.startswith("media/"):
                prefix = f"{field}[{index}]" if field.endswith("s") else field
                raise InvalidArgument("must look like 'media/{id}'", field=f"{prefix}.media_item")
        raw = [(d.media_item, d.viewer, _time_or_none(d, "download_time"), d.client) for d in downloads]
        if request.request_id:
            validate_request_id(request.request_id)
        checked = await in_thread(self.app.check_views, current_principal(), raw, field)
        recorded = await self.facts.append(
            DOWNLOADS, checked, [d.client for d in downloads], current_principal().subject, request.request_id, request_fingerprint(request)
        )
        return wiki_pb2.RecordViewsResponse(recorded=recorded)


def _is_set(message: Any, path: str) -> bool:
    value = getattr(message, path)
    return bool(len(value)) if isinstance(value, (str, bytes)) or hasattr(value, "__len__") else bool(value)


def start_sweeper(app: LibraryApplication) -> threading.Thread:
    """Deletes what abandoned uploads and removed items leave in the store, every few minutes.

    A sweeper rather than an S3 lifecycle rule: an expiry rule deletes by age alone, which
    would also take confirmed versions, and no rule can ask the event store whether a key
    is attached; lifecycle support also differs between S3 implementations. Every replica
    sweeps; deleting twice is harmless."""

    def run() -> None:
        while True:
            time.sleep(content.sweep_interval_seconds())
            try:
                deleted = app.sweep()
                if deleted:
                    log.info("swept objects no version holds", extra={"deleted": deleted})
            except Exception as error:  # noqa: BLE001 - the store may be down for a while; try again later
                log.warning("sweeping the object store failed", extra={"error": repr(error)})

    thread = threading.Thread(target=run, name="media-sweeper", daemon=True)
    thread.start()
    return thread


def register(server: grpc.aio.Server, settings: Settings) -> list[str]:
    """Adds WikiService and MediaService to the posts server (its own application
    object over the posts store, and the producer of view/download facts)."""
    app = LibraryApplication(settings)
    ensure_fact_topics(settings)
    facts = FactLog(settings)
    start_sweeper(app)
    start_erasure_follower(app, settings)
    wiki_pb2_grpc.add_WikiServiceServicer_to_server(WikiServicer(app, facts), server)
    media_pb2_grpc.add_MediaServiceServicer_to_server(MediaServicer(app, facts), server)
    return [
        wiki_pb2.DESCRIPTOR.services_by_name["WikiService"].full_name,
        media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name,
    ]

"""The media library through the real gRPC API, Kafka and Elasticsearch."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def item(**overrides) -> mp.MediaItem:
    fields = dict(title="Jam keynote", description="The 2006 opening", kind=mp.MediaItem.VIDEO, size_bytes=734_003_200, content_type="video/mp4", tags=["Jam", "keynote"], visibility=wp.INTERNAL, storage_uri="s3://media/keynote.mp4")
    fields.update(overrides)
    return mp.MediaItem(**fields)


def test_media_lifecycle(platform):
    media = platform.stub(mg.MediaServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    owner, other, guest = unique("m"), unique("o"), unique("g")
    md, md_other, md_guest = platform.author(owner), platform.author(other), platform.metadata(guest, "guest")
    tag = unique("tag")

    video = media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item(tags=[tag, "Jam"]), request_id=str(uuid.uuid4())), metadata=md)
    assert video.name.startswith("media/") and video.owner == f"profiles/{owner}" and list(video.tags) == [tag, "jam"] and video.etag == '"1"'
    slides = media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item(title="Slides", kind=mp.MediaItem.PRESENTATION, content_type="application/pdf", tags=[tag], visibility=wp.RESTRICTED, storage_uri="gs://b/s.pdf")), metadata=md)
    assert media.GetMediaItem(mp.GetMediaItemRequest(name=video.name), metadata=md_other).title == "Jam keynote"
    # Restricted: only the owner; internal: not guests.
    assert rpc_error(media.GetMediaItem, mp.GetMediaItemRequest(name=slides.name), metadata=md_other).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(media.GetMediaItem, mp.GetMediaItemRequest(name=video.name), metadata=md_guest).code() == grpc.StatusCode.NOT_FOUND

    updated = media.UpdateMediaItem(mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=video.name, title="Jam keynote (2006)", etag=video.etag), update_mask=FieldMask(paths=["title"])), metadata=md)
    assert updated.title == "Jam keynote (2006)" and updated.description == "The 2006 opening" and updated.etag == '"2"'
    stale = rpc_error(media.UpdateMediaItem, mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=video.name, title="x", etag=video.etag), update_mask=FieldMask(paths=["title"])), metadata=md)
    assert stale.code() == grpc.StatusCode.ABORTED
    not_owner = rpc_error(media.UpdateMediaItem, mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=video.name, title="mine"), update_mask=FieldMask(paths=["title"])), metadata=md_other)
    assert not_owner.code() == grpc.StatusCode.PERMISSION_DENIED

    # Listing by owner and by tag (search), as each caller may see.
    def listed(md_, **query):
        return [m.media_item for m in search.ListMediaItems(sp.ListMediaItemsRequest(**query), metadata=md_).media_items]

    eventually(lambda: listed(md, owner=f"profiles/{owner}") == [slides.name, video.name], message="both items by owner")
    assert listed(md_other, tag=tag) == [video.name]
    assert listed(md_guest, tag=tag) == []
    eventually(lambda: search.ListMediaItems(sp.ListMediaItemsRequest(tag=tag), metadata=md_other).media_items[0].title == "Jam keynote (2006)", message="update projected")

    removed = media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=video.name, etag='"2"'), metadata=md)
    assert removed.removed
    eventually(lambda: listed(md, owner=f"profiles/{owner}") == [slides.name], message="removed item unlisted")
    assert rpc_error(media.RemoveMediaItem, mp.RemoveMediaItemRequest(name=video.name), metadata=md).code() == grpc.StatusCode.FAILED_PRECONDITION
    types = [e.type_name for e in read_events(platform.settings, "posts") if e.aggregate_id == video.name.split("/")[1]]
    assert types == ["MediaItemRegistered", "MediaItemUpdated", "MediaItemRemoved"]


def test_media_bad_input_is_named_and_stores_nothing(platform):
    media = platform.stub(mg.MediaServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    owner = unique("m")
    md = platform.author(owner)
    for overrides, field in [
        ({"kind": mp.MediaItem.KIND_UNSPECIFIED}, "media_item.kind"),
        ({"size_bytes": 0}, "media_item.size_bytes"),
        ({"content_type": "mp4"}, "media_item.content_type"),
        ({"storage_uri": "ftp://x"}, "media_item.storage_uri"),
        ({"visibility": wp.VISIBILITY_UNSPECIFIED}, "media_item.visibility"),
        ({"title": ""}, "media_item.title"),
        ({"tags": ["x" * 51]}, "media_item.tags"),
    ]:
        error = rpc_error(media.RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=item(**overrides)), metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == [field], overrides
    assert rpc_error(media.GetMediaItem, mp.GetMediaItemRequest(name=f"media/{uuid.uuid4()}"), metadata=md).code() == grpc.StatusCode.NOT_FOUND
    # A good one afterwards is the only one listed: the rejected ones stored nothing.
    good = media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item()), metadata=md)
    eventually(lambda: [m.media_item for m in search.ListMediaItems(sp.ListMediaItemsRequest(owner=f"profiles/{owner}"), metadata=md).media_items] == [good.name], message="only the good item")


def test_media_pages_end_on_a_unique_key_so_items_alike_in_time_and_title_are_all_listed(infra):
    """ListMediaItems pages by (created_at, title) and now the item's id: five items of one
    title registered in the same millisecond (a bulk import) were cut after the first page,
    search_after skipping every item equal to the page's last. Documents as the media
    projection writes them, in an index namespace of their own, read two a page."""
    import asyncio
    import dataclasses

    from services.search import library
    from services.search.readmodels.projections.media import MediaProjection
    from watercooler import config
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    settings = dataclasses.replace(config.load(), namespace=f"u{uuid.uuid4().hex[:10]}")
    ids = sorted(str(uuid.uuid4()) for _ in range(5))

    async def pages() -> list[list[str]]:
        es = es_client(settings)
        projection = MediaProjection(settings)
        try:
            await projection.ensure_index(es)
            for media_id in reversed(ids):
                await es.index(index=projection.alias, id=media_id, document={
                    "media_id": media_id, "owner": "profiles/ana", "title": "IMG_0001", "kind": "PHOTO", "visibility": "INTERNAL", "classification": "INTERNAL",
                    "created_at": "2026-12-07T09:00:00.123+00:00", "deleted": False, "hidden": False, "size_bytes": 1, "content_type": "image/jpeg", "tags": []})
            await es.indices.refresh(index=projection.alias)
            read, after = [], None
            while True:
                items, after, total = await library.list_media(es, settings, Principal("svc", "service"), "", "", 2, after)
                assert total == 5
                read.append([item["media_item"] for item in items])
                if after is None:
                    return read
        finally:
            await es.indices.delete(index=f"{settings.namespace}-*", ignore_unavailable=True, allow_no_indices=True)
            await es.close()

    assert asyncio.run(pages()) == [[f"media/{i}" for i in ids[:2]], [f"media/{i}" for i in ids[2:4]], [f"media/{ids[4]}"]]

"""Thumbnails of uploaded images, made by the thumbnail maker (services/posts/thumbnails.py)
from MediaContentAttached, against the real object store, Kafka and the gRPC API."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections import Counter

import grpc
import pytest
from PIL import Image

from tests.conftest import eventually
from tests.integration.helpers import read_events, rpc_error
from tests.integration.test_media_content import Person, get
from watercooler import objectstore
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import wiki_pb2 as wp

pytestmark = pytest.mark.integration

SIZES = [256, 64]


def image(width: int, height: int, fmt: str = "PNG", mode: str = "RGBA", orientation: int = 0) -> bytes:
    picture = Image.new(mode, (width, height), (200, 30, 30, 128) if mode == "RGBA" else (30, 30, 200))
    picture.paste((0, 0, 0) if mode == "RGB" else (0, 0, 0, 255), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    if orientation:
        exif = picture.getexif()
        exif[0x0112] = orientation
        picture.save(out, fmt, exif=exif)
    else:
        picture.save(out, fmt)
    return out.getvalue()


def hostile_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header announcing ten billion pixels, with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def sizes_of(person: Person, name: str) -> list[int]:
    return list(person.media.GetMediaItem(mp.GetMediaItemRequest(name=name), metadata=person.md).versions[-1].thumbnail_sizes)


def thumbnail(person: Person, name: str, size: int) -> mp.DownloadLink:
    return person.media.CreateDownloadLink(mp.CreateDownloadLinkRequest(name=name, thumbnail_size=size, client="web"), metadata=person.md)


def made_events(platform) -> Counter:
    return Counter(e.aggregate_id for e in read_events(platform.settings, "posts") if e.type_name == "MediaThumbnailsMade")


def test_images_get_thumbnails_others_none_and_hostile_images_are_refused(platform):
    owner, stranger = Person(platform), Person(platform)
    hostile = owner.register()
    owner.upload(hostile.name, hostile_png())
    text = owner.register(kind=mp.MediaItem.DOCUMENT)
    owner.upload(text.name, b"minutes of the meeting\n" * 20, "text/plain")
    # Uploaded after the hostile one: the maker went on.
    wide = owner.register(visibility=wp.RESTRICTED)
    owner.upload(wide.name, image(800, 400))
    turned = owner.register(visibility=wp.INTERNAL)
    owner.upload(turned.name, image(300, 600, "JPEG", "RGB", orientation=6), "image/jpeg")  # shown rotated: 600 x 300

    for name in (wide.name, turned.name):
        assert eventually(lambda name=name: sizes_of(owner, name) == SIZES, timeout=120, message="thumbnails recorded")
    for name, expected in ((wide.name, {256: (256, 128), 64: (64, 32)}), (turned.name, {256: (256, 128), 64: (64, 32)})):
        for size, dimensions in expected.items():
            link = thumbnail(owner, name, size)
            assert (link.thumbnail_size, link.content_type) == (size, "image/jpeg")
            status, data = get(link.uri)
            assert status == 200
            with Image.open(io.BytesIO(data)) as made:
                assert (made.format, made.size) == ("JPEG", dimensions)

    # Seen exactly as the content is, by the item's current visibility: a caller who may not
    # see the item learns nothing; a removed item's thumbnails are deleted with its content.
    assert rpc_error(thumbnail, stranger, wide.name, 256).code() == grpc.StatusCode.NOT_FOUND
    shown = thumbnail(stranger, turned.name, 64)
    owner.media.UpdateMediaItem(mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=turned.name, visibility=wp.RESTRICTED),
                                                          update_mask={"paths": ["visibility"]}), metadata=owner.md)
    assert rpc_error(thumbnail, stranger, turned.name, 64).code() == grpc.StatusCode.NOT_FOUND
    owner.media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=turned.name), metadata=owner.md)
    assert rpc_error(thumbnail, owner, turned.name, 64).code() == grpc.StatusCode.NOT_FOUND
    assert get(shown.uri)[0] == 404
    # Sizes that are not made are named.
    error = rpc_error(thumbnail, owner, wide.name, 128)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "thumbnail_size" in error.details()

    log = platform.platform.log_dir / "thumbnails.log"
    assert eventually(lambda: hostile.name in log.read_text() and "image refused" in log.read_text(), message="the refusal logged")
    for name in (hostile.name, text.name):
        assert sizes_of(owner, name) == []
        error = rpc_error(thumbnail, owner, name, 64)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "thumbnail_size" in error.details()
    # A version that is no image is refused thumbnails by the item itself.
    service = platform.metadata()
    error = rpc_error(owner.media.RecordThumbnails, mp.RecordThumbnailsRequest(name=text.name, version=1, sizes=SIZES), metadata=service)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "version" in error.details()
    assert eventually(lambda: made_events(platform)[wide.name.split("/")[1]] == 1, message="one MediaThumbnailsMade")


def test_thumbnails_are_made_once_when_the_maker_is_killed_while_making_them(platform):
    owner = Person(platform)
    platform.platform.kill("thumbnails")  # the images wait for it, then arrive in one batch
    try:
        items = [owner.register() for _ in range(6)]
        for index, item in enumerate(items):
            owner.upload(item.name, image(1600 + index, 1200, "PNG", "RGB"))
        ids = {item.name.split("/")[1] for item in items}
    finally:
        platform.platform.restart("thumbnails")
    s3 = objectstore.client(platform.settings)
    prefix = f"{platform.settings.object_prefix()}media/"
    # What a maker leaves for an item gone meanwhile: swept once old, while recorded ones stay.
    stray = f"{prefix}{uuid.uuid4()}/thumbnails/v1-64px.jpg"
    s3.put_object(Bucket=platform.settings.s3_bucket, Key=stray, Body=b"left behind")

    def some_made() -> bool:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=platform.settings.s3_bucket, Prefix=prefix)
                for o in page.get("Contents", [])]
        return any("/thumbnails/" in key and key[len(prefix):].split("/")[0] in ids for key in keys)

    eventually(some_made, timeout=120, interval=0.05, message="the first thumbnails written")
    platform.platform.kill("thumbnails")  # SIGKILL before the batch's offsets are committed
    platform.platform.restart("thumbnails")

    for item in items:
        assert eventually(lambda item=item: sizes_of(owner, item.name) == SIZES, timeout=120, message="every image's thumbnails")
    made = eventually(lambda: (counts := made_events(platform)) and all(counts[i] for i in ids) and counts, message="the events published")
    assert {media_id: made[media_id] for media_id in ids} == dict.fromkeys(ids, 1)
    eventually(lambda: "Contents" not in s3.list_objects_v2(Bucket=platform.settings.s3_bucket, Prefix=stray), timeout=180, message="the stray swept")
    status, data = get(thumbnail(owner, items[0].name, 64).uri)
    with Image.open(io.BytesIO(data)) as small:
        assert status == 200 and small.size == (64, 48)

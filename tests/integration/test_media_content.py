"""Media content in the real object store (SeaweedFS or WC_S3_ENDPOINT) through the gRPC API:
upload, confirm, versions, downloads counted where they are served, quota, hostile files,
abandoned uploads."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import uuid
import zipfile

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler import objectstore
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration

# Set for the test platform in tests/conftest.py.
QUOTA = 4 << 20
UPLOAD_TTL = 12


def png(tag: bytes, size: int = 2048) -> bytes:
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + tag
    return head + b"\x00" * (size - len(head))


def put(url: str, headers: dict[str, str], data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


class Person:
    def __init__(self, platform, kind: str = "employee"):
        self.subject = f"p{uuid.uuid4().hex[:10]}"
        # An employee who publishes has accepted the participation guidelines.
        self.md = platform.author(self.subject) if kind == "employee" else platform.metadata(self.subject, kind)
        self.media = platform.stub(mg.MediaServiceStub, "posts")

    def register(self, visibility=wp.RESTRICTED, kind=mp.MediaItem.IMAGE) -> mp.MediaItem:
        item = mp.MediaItem(title=f"Photo {uuid.uuid4().hex[:6]}", kind=kind, visibility=visibility)
        return self.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=self.md)

    def start(self, name: str, data: bytes, content_type: str = "image/png", sha256: str = "", request_id: str = "") -> mp.Upload:
        upload = mp.Upload(size_bytes=len(data), content_type=content_type, sha256=sha256)
        return self.media.CreateUpload(mp.CreateUploadRequest(parent=name, upload=upload, request_id=request_id), metadata=self.md)

    def upload(self, name: str, data: bytes, content_type: str = "image/png") -> mp.MediaItem:
        started = self.start(name, data, content_type, hashlib.sha256(data).hexdigest())
        assert put(started.upload_uri, started.upload_headers, data) == 200
        return self.media.ConfirmUpload(mp.ConfirmUploadRequest(name=started.name, request_id=str(uuid.uuid4())), metadata=self.md)

    def link(self, name: str, version: int = 0, request_id: str = "") -> mp.DownloadLink:
        return self.media.CreateDownloadLink(mp.CreateDownloadLinkRequest(name=name, version=version, client="web", request_id=request_id), metadata=self.md)


def objects_of(platform, name: str) -> list[str]:
    s3 = objectstore.client(platform.settings)
    prefix = f"{platform.settings.object_prefix()}{name}/"
    return [o["Key"] for o in s3.list_objects_v2(Bucket=platform.settings.s3_bucket, Prefix=prefix).get("Contents", [])]


def test_upload_versions_and_counted_downloads(platform):
    owner, other, guest = Person(platform), Person(platform), Person(platform, "guest")
    item = owner.register()
    first, second = png(b"first"), png(b"second", 3000)

    started = owner.start(item.name, first, request_id=(rid := str(uuid.uuid4())))
    assert started.name.startswith(f"{item.name}/uploads/") and started.upload_headers["Content-Length"] == str(len(first))
    # The presigned PUT is scoped: another length is refused by the store itself.
    assert put(started.upload_uri, {**started.upload_headers, "Content-Length": "10"}, first[:10]) == 403
    assert owner.start(item.name, first, request_id=rid).name == started.name  # request_id: the same upload
    assert put(started.upload_uri, started.upload_headers, first) == 200
    assert not owner.media.GetMediaItem(mp.GetMediaItemRequest(name=item.name), metadata=owner.md).versions  # nothing before confirming
    confirmed = owner.media.ConfirmUpload(mp.ConfirmUploadRequest(name=started.name), metadata=owner.md)
    assert [(v.version, v.size_bytes, v.content_type, v.sha256) for v in confirmed.versions] == [(1, len(first), "image/png", hashlib.sha256(first).hexdigest())]
    assert confirmed.size_bytes == len(first) and confirmed.storage_uri.startswith("s3://")

    # The owner downloads; another employee and a guest get exactly what an absent item gives.
    link = owner.link(item.name)
    assert link.version == 1 and get(link.uri) == (200, first)
    absent = rpc_error(other.link, f"media/{uuid.uuid4()}")
    for refused in (other, guest):
        error = rpc_error(refused.link, item.name)
        assert (error.code(), bad_request_fields(error)) == (absent.code(), bad_request_fields(absent)) == (grpc.StatusCode.NOT_FOUND, ["name"])

    # Announcing the SHA-256 makes the store itself refuse other bytes.
    announced = owner.start(item.name, second, sha256=hashlib.sha256(second).hexdigest())
    assert put(announced.upload_uri, announced.upload_headers, png(b"forged", len(second))) == 400

    # A new upload is a new version; the old one stays downloadable.
    assert [v.version for v in owner.upload(item.name, second, "image/png").versions] == [1, 2]
    assert get(owner.link(item.name).uri) == (200, second)
    assert get(owner.link(item.name, version=1, request_id=(again := str(uuid.uuid4()))).uri) == (200, first)
    owner.link(item.name, version=1, request_id=again)  # a retry: counted once
    assert rpc_error(owner.link, item.name, version=3).code() == grpc.StatusCode.INVALID_ARGUMENT

    # What the service recorded: the attached versions, for processors (thumbnails) to follow.
    def both_attached():
        found = [e for e in read_events(platform.settings, "posts") if e.type_name == "MediaContentAttached" and e.aggregate_id == item.name.split("/")[1]]
        return found if len(found) == 2 else None  # the second may still be on its way to Kafka

    attached = eventually(both_attached, message="attached events")
    assert [(e.payload.version, e.payload.content_type, e.payload.size_bytes) for e in attached] == [(1, "image/png", len(first)), (2, "image/png", len(second))]
    assert all(e.payload.object_key.startswith(platform.settings.object_prefix()) for e in attached)

    # Downloads are counted where they happen: three links issued (a fourth was a retry), none for the refused callers.
    search = platform.stub(sg.SearchServiceStub, "search")

    def counted():
        return search.GetStats(sp.GetStatsRequest(metric="media_downloads", target=item.name), metadata=platform.metadata()).total

    eventually(lambda: counted() == 3, message="three downloads counted")
    # A client's own report no longer counts for uploaded content.
    error = rpc_error(owner.media.RecordDownload, mp.RecordDownloadRequest(download=mp.Download(media_item=item.name)), metadata=owner.md)
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.FAILED_PRECONDITION, ["download.media_item"])

    # Removing the item: no more links, links already out stop working, its objects are gone.
    owner.media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=item.name), metadata=owner.md)
    assert rpc_error(owner.link, item.name).code() == grpc.StatusCode.NOT_FOUND
    assert get(link.uri)[0] == 404 and objects_of(platform, item.name) == []


def test_quota_counts_every_version_and_frees_on_removal(platform):
    owner = Person(platform)
    item = owner.register()
    owner.upload(item.name, png(b"a", 2 << 20))
    error = rpc_error(owner.start, item.name, png(b"b", 2 << 20) + b"\x00" * 4096)  # 2 MiB + a little: over 4 MiB
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, ["upload.size_bytes"])
    owner.media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=item.name), metadata=owner.md)
    fresh = owner.register()
    assert owner.start(fresh.name, png(b"c", QUOTA - 1024)).upload_uri


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.txt", b"\0" * (20 << 20))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "content_type", "field"),
    [
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 512, "image/png", "content_type"),  # a program posing as a photo
        (b"%PDF-1.7\n" + b"x" * 512, "image/png", "content_type"),  # another type than declared
        (zip_bomb(), "application/zip", "content"),
    ],
    ids=["executable", "mismatched-type", "zip-bomb"],
)
def test_hostile_content_is_refused_on_confirm_and_deleted(platform, data, content_type, field):
    owner = Person(platform)
    item = owner.register(kind=mp.MediaItem.DOCUMENT)
    started = owner.start(item.name, data, content_type)
    assert put(started.upload_uri, started.upload_headers, data) == 200
    error = rpc_error(owner.media.ConfirmUpload, mp.ConfirmUploadRequest(name=started.name), metadata=owner.md)
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.FAILED_PRECONDITION, [field])
    assert not owner.media.GetMediaItem(mp.GetMediaItemRequest(name=item.name), metadata=owner.md).versions
    assert objects_of(platform, item.name) == []


def test_bad_uploads_are_refused_up_front(platform):
    owner, other = Person(platform), Person(platform)
    item = owner.register(visibility=wp.INTERNAL)
    cases = [
        (b"", "image/png", grpc.StatusCode.INVALID_ARGUMENT, "upload.size_bytes"),
        (b"MZ" + b"\x00" * 100, "application/x-msdownload", grpc.StatusCode.INVALID_ARGUMENT, "upload.content_type"),
        (b"abc", "application/x-sh", grpc.StatusCode.INVALID_ARGUMENT, "upload.content_type"),
    ]
    for data, content_type, code, field in cases:
        error = rpc_error(owner.start, item.name, data, content_type)
        assert (error.code(), bad_request_fields(error)) == (code, [field]), (content_type, error.details())
    error = rpc_error(owner.media.CreateUpload, mp.CreateUploadRequest(parent=item.name, upload=mp.Upload(size_bytes=1 << 40, content_type="video/mp4")), metadata=owner.md)
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["upload.size_bytes"])
    # Someone who sees the item but does not own it may not upload to it.
    assert rpc_error(other.start, item.name, png(b"x")).code() == grpc.StatusCode.PERMISSION_DENIED
    # Confirming before anything was put names the upload.
    started = owner.start(item.name, png(b"y"))
    error = rpc_error(owner.media.ConfirmUpload, mp.ConfirmUploadRequest(name=started.name), metadata=owner.md)
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.FAILED_PRECONDITION, ["name"])


def test_abandoned_upload_leaves_nothing_and_is_swept(platform):
    owner = Person(platform)
    item = owner.register()
    data = png(b"abandoned")
    started = owner.start(item.name, data)
    assert put(started.upload_uri, started.upload_headers, data) == 200
    assert len(objects_of(platform, item.name)) == 1
    assert not owner.media.GetMediaItem(mp.GetMediaItemRequest(name=item.name), metadata=owner.md).versions
    # The sweeper deletes it once the upload expired (and a confirm could no longer be running)...
    eventually(lambda: objects_of(platform, item.name) == [], timeout=UPLOAD_TTL * 6, interval=0.5, message="the abandoned object is swept")
    # ...and it can no longer be confirmed.
    error = rpc_error(owner.media.ConfirmUpload, mp.ConfirmUploadRequest(name=started.name), metadata=owner.md)
    assert (error.code(), bad_request_fields(error)) == (grpc.StatusCode.FAILED_PRECONDITION, ["name"]) and "expired" in error.details()
    assert not owner.media.GetMediaItem(mp.GetMediaItemRequest(name=item.name), metadata=owner.md).versions

"""The media library's bytes in the object store (any S3 API, through boto3).

Object keys: ``<namespace>/media/<media_id>/<object_id>``, one object per upload, never
overwritten: a version's key is fixed once attached, so a link to an old version stays
valid for as long as it is signed. Only the posts service holds the credentials; clients
get presigned URLs scoped to one key, method, size and type.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import logging
import tempfile
import uuid
from dataclasses import dataclass
from typing import IO, Any

from watercooler import objectstore
from watercooler.config import Settings

from .content import SNIFF_BYTES

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


@dataclass
class ReadBack:
    """What the store holds under a key, measured while reading it."""

    size: int
    sha256: str
    head: bytes
    body: IO[bytes]  # a spooled copy, for checks that need the whole file (archives)


class ContentStore:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.object_prefix()
        self._client: Any = None
        self._signer: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = objectstore.client(self.settings)
        return self._client

    @property
    def signer(self) -> Any:
        """Signs for the address clients reach (WC_S3_PUBLIC_ENDPOINT); signing is local, no call."""
        if self._signer is None:
            self._signer = objectstore.client(self.settings, public=True)
        return self._signer

    def new_key(self, media_id: str) -> str:
        return f"{self.prefix}media/{media_id}/{uuid.uuid4()}"

    def thumbnail_key(self, media_id: str, version: int, size: int) -> str:
        """Fixed by the version and the size, so a thumbnail made twice (a redelivered event)
        overwrites the same object. Under ``thumbnails/``: the sweeper, which looks at
        ``media/<id>/<object>`` keys only, leaves them alone."""
        return f"{self.prefix}media/{media_id}/thumbnails/v{version}-{size}px.jpg"

    def media_keys(self, item: Any) -> set[str]:
        """Every object a media item holds: its versions' content and recorded thumbnails."""
        media_id = str(item.id)
        return {v["object_key"] for v in item.versions} | {
            self.thumbnail_key(media_id, v["version"], size) for v in item.versions for size in v.get("thumbnail_sizes") or ()
        }

    def get_bytes(self, key: str) -> bytes | None:
        """A whole object in memory (images for thumbnails: uploads are size-limited), or None."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def storage_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def presign_put(self, key: str, size: int, content_type: str, seconds: int, sha256: str = "") -> tuple[str, dict[str, str]]:
        """A PUT of exactly ``size`` bytes of ``content_type`` to ``key``: the headers are signed,
        so the store refuses any other length, type or key. With the content's SHA-256 the store
        also refuses other bytes (x-amz-checksum-sha256) and keeps the checksum it verified."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size}
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        if sha256:
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = _b64(sha256)
        return self.signer.generate_presigned_url("put_object", Params=params, ExpiresIn=seconds), headers

    def presign_get(self, key: str, seconds: int, content_type: str) -> str:
        return self.signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type}, ExpiresIn=seconds
        )

    def read_back(self, key: str, expected_sha256: str = "", whole: bool = False) -> ReadBack | None:
        """The object's bytes measured (size, SHA-256, first bytes), or None when nothing is there.

        When the store verified the expected SHA-256 at PUT time (the signed checksum header),
        its size and checksum are taken from a HEAD and only the first bytes are read for
        sniffing: half the store's work for a large upload. Otherwise (or ``whole``, for
        archives that are opened) every byte is read and hashed here."""
        if expected_sha256 and not whole:
            verified = self._verified_by_store(key, expected_sha256)
            if verified is not None:
                return verified
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        digest = hashlib.sha256()
        body = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - handed to the caller, who closes it
        head = b""
        size = 0
        stream = response["Body"]
        try:
            for chunk in iter(lambda: stream.read(READ_CHUNK), b""):
                digest.update(chunk)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                body.write(chunk)
                size += len(chunk)
        finally:
            stream.close()
        body.seek(0)
        return ReadBack(size, digest.hexdigest(), head, body)

    def _verified_by_store(self, key: str, expected_sha256: str) -> ReadBack | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError:
            return None  # absent: the full read answers that
        if head.get("ChecksumSHA256") != _b64(expected_sha256) or not head.get("ContentLength"):
            return None  # a store that keeps no checksum: read it all
        first = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}")["Body"].read()
        return ReadBack(head["ContentLength"], expected_sha256, first, io.BytesIO(first))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # noqa: BLE001 - the sweeper retries what is left behind
            log.warning("could not delete an object; the sweeper will", extra={"key": key, "error": repr(error)})

    def older_than(self, cutoff: dt.datetime) -> list[tuple[str, str]]:
        """(media_id, key) of every object of this namespace last written before ``cutoff``:
        uploads (``media/<id>/<object>``) and thumbnails (``media/<id>/thumbnails/<file>``)."""
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}media/"):
            for obj in page.get("Contents", []):
                if obj["LastModified"] < cutoff:
                    parts = obj["Key"][len(self.prefix):].split("/")
                    if len(parts) == 3 or (len(parts) == 4 and parts[2] == "thumbnails"):
                        found.append((parts[1], obj["Key"]))
        return found


def _b64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()

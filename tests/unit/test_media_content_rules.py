"""What uploaded content may be (services/posts/library/content.py), without servers."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from services.posts.library import content
from watercooler.errors import FailedPrecondition, InvalidArgument

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 200


def check(data: bytes, declared: str, declared_size: int | None = None, declared_sha: str = "") -> str:
    digest = hashlib.sha256(data).hexdigest()
    size = len(data) if declared_size is None else declared_size
    return content.check_content(declared, size, declared_sha, len(data), digest, data[: content.SNIFF_BYTES], io.BytesIO(data))


def field_of(error: pytest.ExceptionInfo) -> str:
    return error.value.field


def test_types_are_sniffed_from_the_bytes():
    assert content.sniff(PNG) == "image/png"
    assert content.sniff(b"%PDF-1.7\n") == "application/pdf"
    assert content.sniff("plain text, café".encode()) == "text/plain"
    assert content.sniff(b"#!/bin/sh\nrm -rf /\n") in content.EXECUTABLE_TYPES
    assert content.sniff(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 60) in content.EXECUTABLE_TYPES
    assert content.sniff(b"MZ\x90\x00" + b"\x00" * 60) in content.EXECUTABLE_TYPES


def test_declared_uploads_are_checked_up_front():
    for size, content_type, field in [(0, "image/png", "upload.size_bytes"), (content.max_upload_bytes() + 1, "image/png", "upload.size_bytes"),
                                      (10, "application/x-msdownload", "upload.content_type"), (10, "text/html", "upload.content_type")]:
        with pytest.raises(InvalidArgument) as error:
            content.validate_declared(size, content_type, "")
        assert field_of(error) == field
    with pytest.raises(InvalidArgument) as error:
        content.validate_declared(10, "image/png", "xyz")
    assert field_of(error) == "upload.sha256"
    assert content.validate_declared(10, " Image/PNG ", "") == (10, "image/png", "")


def test_the_bytes_must_be_what_was_announced():
    assert check(PNG, "image/png") == "image/png"
    assert check(b"a,b\n1,2\n", "text/csv") == "text/csv"
    for data, declared, kwargs, field in [
        (b"", "image/png", {"declared_size": 10}, "size_bytes"),
        (PNG, "image/png", {"declared_size": len(PNG) + 1}, "size_bytes"),
        (PNG, "image/png", {"declared_sha": "0" * 64}, "sha256"),
        (b"%PDF-1.7\n" + b"x" * 100, "image/png", {}, "content_type"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 60, "application/zip", {}, "content_type"),
    ]:
        with pytest.raises(FailedPrecondition) as error:
            check(data, declared, **kwargs)
        assert field_of(error) == field, data[:10]


def test_zip_bombs_and_nested_archives_are_refused_but_plain_zips_pass():
    def archive(entries: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in entries.items():
                z.writestr(name, data)
        return buffer.getvalue()

    assert check(archive({"notes.txt": bytes(range(256)) * 40}), "application/zip") == "application/zip"
    for bomb in (archive({"zeros.bin": b"\0" * (8 << 20)}), archive({"inner.zip": archive({"a": b"x"})})):
        with pytest.raises(FailedPrecondition) as error:
            check(bomb, "application/zip")
        assert field_of(error) == "content"

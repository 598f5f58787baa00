"""What uploaded content may be: sizes, types, and the checks run on the bytes themselves.

The client's word is checked, never trusted: the type is sniffed from the first bytes
(``filetype``, magic numbers), the size and SHA-256 are measured while the object is read
back from the store, and archives are opened to see what they would expand to.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import IO

import filetype

from watercooler.errors import FailedPrecondition, InvalidArgument

MiB = 1 << 20
SNIFF_BYTES = 64 * 1024  # enough for filetype to tell an OOXML document from a plain zip


def max_upload_bytes() -> int:
    return int(os.environ.get("WC_MEDIA_MAX_BYTES") or 200 * MiB)


def quota_bytes() -> int:
    return int(os.environ.get("WC_MEDIA_QUOTA_BYTES") or 2048 * MiB)


# Content types an upload may declare, by media kind. Anything else is refused up front.
ALLOWED_TYPES = {
    "image/jpeg": "IMAGE", "image/png": "IMAGE", "image/gif": "IMAGE", "image/webp": "IMAGE",
    "video/mp4": "VIDEO", "video/webm": "VIDEO", "video/quicktime": "VIDEO",
    "audio/mpeg": "AUDIO", "audio/ogg": "AUDIO", "audio/x-wav": "AUDIO", "audio/mp4": "AUDIO",
    "application/pdf": "DOCUMENT", "text/plain": "DOCUMENT", "text/csv": "DOCUMENT", "text/markdown": "DOCUMENT",
    "application/zip": "DOCUMENT",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCUMENT",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "DOCUMENT",
    "application/vnd.oasis.opendocument.text": "DOCUMENT",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PRESENTATION",
    "application/vnd.oasis.opendocument.presentation": "PRESENTATION",
}
# Sniffed types that are programs: refused whatever was declared.
EXECUTABLE_TYPES = frozenset({
    "application/x-msdownload", "application/x-executable", "application/x-sharedlib", "application/x-mach-binary",
    "application/x-elf", "application/wasm", "application/x-dosexec", "text/x-shellscript", "application/x-deb",
    "application/x-rpm", "application/vnd.microsoft.portable-executable",
})
# Text types are told apart by their declaration only: the bytes say "text", not "CSV".
TEXT_TYPES = frozenset({"text/plain", "text/csv", "text/markdown"})
# Archives (and the document formats that are zips inside) are opened before they are accepted.
ZIP_TYPES = frozenset({t for t in ALLOWED_TYPES if t.startswith("application/vnd.") or t == "application/zip"} | {"application/epub+zip"})
MAX_EXPANDED_BYTES = 1 << 30
MAX_EXPANSION_RATIO = 100
MAX_ARCHIVE_ENTRIES = 10_000

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MACH_O = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def validate_declared(size_bytes: int, content_type: str, sha256: str, field: str = "upload") -> tuple[int, str, str]:
    """What CreateUpload may ask for: a size within the limit and an allowed, non-executable type."""
    if size_bytes <= 0:
        raise InvalidArgument("is required: the exact size of the content, at least 1 byte (empty files are not stored)", field=f"{field}.size_bytes")
    if size_bytes > max_upload_bytes():
        raise InvalidArgument(f"must be at most {max_upload_bytes()} bytes", field=f"{field}.size_bytes")
    content_type = (content_type or "").strip().lower()
    if content_type in EXECUTABLE_TYPES:
        raise InvalidArgument("executable content is not accepted", field=f"{field}.content_type")
    if content_type not in ALLOWED_TYPES:
        raise InvalidArgument(f"must be one of: {', '.join(sorted(ALLOWED_TYPES))}", field=f"{field}.content_type")
    sha256 = (sha256 or "").strip().lower()
    if sha256 and not _SHA256.match(sha256):
        raise InvalidArgument("must be 64 lowercase hex digits (SHA-256), or empty", field=f"{field}.sha256")
    return size_bytes, content_type, sha256


def sniff(head: bytes) -> str:
    """The content type the bytes show, from their magic numbers."""
    if head.startswith(b"#!") or head.startswith(_MACH_O):
        return "text/x-shellscript" if head.startswith(b"#!") else "application/x-mach-binary"
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
                return "text/plain"
    return "application/octet-stream"


def check_content(declared_type: str, declared_size: int, declared_sha256: str, size: int, sha256: str, head: bytes, body: IO[bytes]) -> str:
    """Checks the bytes read back from the store; returns the sniffed content type.

    FAILED_PRECONDITION (the upload is not what was announced or not acceptable), naming the
    upload's field that does not hold."""
    if size == 0:
        raise FailedPrecondition("the uploaded object is empty (0 bytes)", field="size_bytes")
    if size != declared_size:
        raise FailedPrecondition(f"the uploaded object has {size} bytes, not the {declared_size} announced", field="size_bytes")
    if declared_sha256 and sha256 != declared_sha256:
        raise FailedPrecondition(f"the uploaded bytes have SHA-256 {sha256}, not the one announced", field="sha256")
    sniffed = sniff(head)
    if sniffed in EXECUTABLE_TYPES:
        raise FailedPrecondition(f"the bytes are an executable ({sniffed})", field="content_type")
    same = sniffed == declared_type or (declared_type in TEXT_TYPES and sniffed == "text/plain")
    if not same:
        raise FailedPrecondition(f"the bytes are {sniffed}, not the {declared_type} announced", field="content_type")
    if sniffed in ZIP_TYPES:
        check_archive(body, size)
    return declared_type if declared_type in TEXT_TYPES else sniffed


def check_archive(body: IO[bytes], size: int) -> None:
    """Refuses a zip bomb: what the entries claim to expand to, before anything is expanded."""
    body.seek(0)
    try:
        with zipfile.ZipFile(body) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise FailedPrecondition(f"the archive cannot be read: {error}", field="content") from None
    if len(entries) > MAX_ARCHIVE_ENTRIES:
        raise FailedPrecondition(f"the archive has {len(entries)} entries, at most {MAX_ARCHIVE_ENTRIES} are accepted", field="content")
    expanded = sum(entry.file_size for entry in entries)
    if expanded > MAX_EXPANDED_BYTES or expanded > MAX_EXPANSION_RATIO * max(size, 1):
        raise FailedPrecondition(
            f"the archive would expand to {expanded} bytes from {size} (a zip bomb); at most {MAX_EXPANSION_RATIO}x and {MAX_EXPANDED_BYTES} bytes",
            field="content",
        )
    if any(entry.filename.lower().endswith((".zip", ".jar")) for entry in entries):
        raise FailedPrecondition("the archive holds another archive (nested archives are how zip bombs hide)", field="content")


def upload_ttl_seconds() -> int:
    """How long a presigned PUT is valid and an upload may be confirmed."""
    return int(os.environ.get("WC_UPLOAD_TTL_SECONDS") or 3600)


def download_link_ttl_seconds() -> int:
    return int(os.environ.get("WC_DOWNLOAD_LINK_TTL_SECONDS") or 300)


def sweep_interval_seconds() -> float:
    return float(os.environ.get("WC_UPLOAD_SWEEP_SECONDS") or 300)

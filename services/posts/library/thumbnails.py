"""Thumbnails of uploaded images: which sizes, and how they are made from untrusted bytes.

Pillow (a well-kept library, no native tool to install) opens the image; every limit is
checked before a pixel is decoded: the declared dimensions against ``max_pixels()`` (Pillow's
own decompression-bomb check, made an error at our limit instead of a warning), and the
frame count. A refused image gets no thumbnail and a log line, never an exception that would
make the processor crash and be restarted into the same record forever.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Pixels on the longer side, largest first (the list view's and the avatar's sizes).
THUMBNAIL_SIZES = (256, 64)
THUMBNAIL_CONTENT_TYPE = "image/jpeg"
# The content types thumbnails are made of: those uploads accept as IMAGE (content.ALLOWED_TYPES).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def max_pixels() -> int:
    """The largest image (width x height) decoded: 50 MP by default, a 200 MB RGBA buffer."""
    return int(os.environ.get("WC_THUMBNAIL_MAX_PIXELS") or 50_000_000)


def max_source_bytes() -> int:
    """The largest image file read for thumbnails (64 MiB): it is read into memory whole."""
    return int(os.environ.get("WC_THUMBNAIL_MAX_BYTES") or 64 << 20)


class Refused(Exception):
    """The image is not made into thumbnails; the message says why (logged)."""


@dataclass(frozen=True)
class Thumbnail:
    size: int  # the limit on the longer side
    width: int
    height: int
    data: bytes


def make(data: bytes, sizes: tuple[int, ...] = THUMBNAIL_SIZES) -> list[Thumbnail]:
    """JPEG thumbnails no larger than each size on either side, EXIF orientation applied,
    transparency flattened onto white. Raises Refused for bytes that are no image Pillow reads
    or that exceed the limits."""
    limit = max_pixels()
    Image.MAX_IMAGE_PIXELS = limit  # Pillow refuses above twice this by itself; we refuse above it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > limit:
                    raise Refused(f"{width}x{height} pixels is more than the {limit} decoded")
                image.seek(0)  # the first frame of an animation
                if image.format == "JPEG":
                    # Decoded at the smallest power-of-two scale still at least the largest size:
                    # a 40 MP photo costs a fraction of its full decode.
                    image.draft("RGB", (max(sizes), max(sizes)))
                oriented = ImageOps.exif_transpose(image)
                oriented.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise Refused(f"a decompression bomb: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise Refused(f"not an image Pillow can read: {error}") from None
    if oriented.mode not in ("RGB", "L"):
        rgba = oriented.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, "white")
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        oriented = flattened
    made = []
    for size in sizes:
        copy = oriented.copy()
        copy.thumbnail((size, size), Image.Resampling.LANCZOS)  # keeps the aspect ratio, never enlarges
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=85, optimize=True)
        made.append(Thumbnail(size, copy.width, copy.height, out.getvalue()))
    return made

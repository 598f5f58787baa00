"""Thumbnails made from untrusted image bytes (services/posts/library/thumbnails.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.posts.library import thumbnails
from tests.integration.test_media_thumbnails import hostile_png, image


def sizes(data: bytes) -> list[tuple[int, int, int]]:
    made = thumbnails.make(data)
    for thumb in made:
        with Image.open(io.BytesIO(thumb.data)) as decoded:
            assert (decoded.format, decoded.size) == ("JPEG", (thumb.width, thumb.height))
    return [(t.size, t.width, t.height) for t in made]


def test_thumbnails_keep_the_aspect_ratio_and_never_enlarge():
    assert sizes(image(800, 400)) == [(256, 256, 128), (64, 64, 32)]
    assert sizes(image(100, 50)) == [(256, 100, 50), (64, 64, 32)]


def test_the_exif_orientation_is_applied_and_large_jpegs_are_decoded_small():
    assert sizes(image(300, 600, "JPEG", "RGB", orientation=6)) == [(256, 256, 128), (64, 64, 32)]
    assert sizes(image(4000, 3000, "JPEG", "RGB")) == [(256, 256, 192), (64, 64, 48)]


@pytest.mark.parametrize("data", [hostile_png(), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRtruncated", b"plain text"])
def test_bombs_and_non_images_are_refused(data):
    with pytest.raises(thumbnails.Refused):
        thumbnails.make(data)


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(monkeypatch):
    monkeypatch.setenv("WC_THUMBNAIL_MAX_PIXELS", "10000")
    with pytest.raises(thumbnails.Refused, match="pixels"):
        thumbnails.make(image(150, 100))
    assert sizes(image(100, 100)) == [(256, 100, 100), (64, 64, 64)]

"""How the profiles service asks the posts service about media items (services/profiles/media.py):
a write asks afresh and fails UNAVAILABLE when posts cannot answer; a read takes a recent answer,
and when posts cannot answer shows no photo and does not ask again for a moment."""

from __future__ import annotations

import grpc
import pytest

from services.profiles.media import MediaLibrary, MediaUnavailable
from watercooler.config import load
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import wiki_pb2 as wp


class Unanswered(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


class Posts:
    """MediaService as the channel would answer: an item, or nothing at all."""

    def __init__(self) -> None:
        self.asked = 0
        self.down = False
        self.visibility = wp.PUBLIC

    def GetMediaItem(self, request, metadata, timeout):  # noqa: N802 - the stub's name
        self.asked += 1
        if self.down:
            raise Unanswered()
        return mp.MediaItem(name=request.name, owner="profiles/ana", kind=mp.MediaItem.IMAGE, visibility=self.visibility)


@pytest.fixture
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("WC_DATA_DIR", str(tmp_path))
    now = [100.0]
    media = MediaLibrary(load(), ttl=5.0, clock=lambda: now[0])
    media._stub = posts = Posts()
    return media, posts, now


def test_reads_take_a_recent_answer_and_writes_ask_afresh(library):
    media, posts, now = library
    assert media.recent("media/m1").visibility == "PUBLIC"
    posts.visibility = wp.RESTRICTED
    now[0] += 4.9
    assert media.recent("media/m1").visibility == "PUBLIC" and posts.asked == 1
    assert media.lookup("media/m1", field="photo").visibility == "RESTRICTED" and posts.asked == 2
    now[0] += 5.0
    assert media.recent("media/m1").visibility == "RESTRICTED" and posts.asked == 3


def test_when_posts_cannot_answer_a_write_is_unavailable_and_a_read_shows_no_photo_without_asking_again_at_once(library):
    media, posts, now = library
    posts.down = True
    with pytest.raises(MediaUnavailable) as error:
        media.lookup("media/m1", field="photo")
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and error.value.field == "photo"
    asked = posts.asked
    assert media.recent("media/m1") is None and media.recent("media/m1") is None
    assert posts.asked == asked + 1
    posts.down = False
    now[0] += 1.0
    assert media.recent("media/m1").visibility == "PUBLIC"

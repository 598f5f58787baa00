"""The checks every request gets in the platform layer, and the bound on what errors echo."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from watercooler.errors import InvalidArgument, NotFound, bounded_message
from watercooler.grpc_server import _status_for
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.request_checks import MAX_REFERENCE_CHARS, _check_duration, check_request, decoder
from watercooler.search.v1 import search_pb2 as sp


def refusal(request) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        check_request(request)
    return caught.value


def test_undecodable_bodies_name_the_message():
    decode = decoder(pb.GetPostRequest.FromString)
    for body in (b"\xff\xff\xff", b"\x0a\x09posts", b"\x0a\x03\xff\xfe\xfd"):
        with pytest.raises(InvalidArgument, match="not a valid GetPostRequest"):
            decode(body)
    assert decode(pb.GetPostRequest(name="posts/p1").SerializeToString()).name == "posts/p1"


def test_timestamps_out_of_range_name_the_field_path():
    request = sp.TrendingRequest()
    request.time.FromJsonString("0001-01-01T00:00:00Z")
    assert refusal(request).field == "time"
    views = mp.BatchRecordDownloadsRequest(downloads=[mp.Download(media_item="media/m"), mp.Download(media_item="media/m")])
    views.downloads[1].download_time.seconds = 253_402_300_800  # 10000-01-01
    assert refusal(views).field == "downloads[1].download_time"
    ok = sp.TrendingRequest()
    ok.time.FromJsonString("9999-12-31T23:59:59Z")
    check_request(ok)
    check_request(sp.TrendingRequest())  # unset: the service's default


def test_durations_must_be_non_negative_and_sane():
    with pytest.raises(InvalidArgument, match="negative"):
        _check_duration(Duration(seconds=-1), "d")
    with pytest.raises(InvalidArgument, match="century"):
        _check_duration(Duration(seconds=10**11), "d")
    _check_duration(Duration(seconds=3600), "d")


def test_names_and_ids_are_bounded_but_text_is_not():
    long = "a" * (MAX_REFERENCE_CHARS + 1)
    assert refusal(pb.GetPostRequest(name=f"posts/{long}")).field == "name"
    assert refusal(pb.CreateCommentRequest(comment=pb.Comment(target=f"posts/{long}", body="hi"))).field == "comment.target"
    check_request(pb.CreateCommentRequest(comment=pb.Comment(target="posts/p1", body=long * 10)))  # text: each service's own limit


def test_errors_echo_a_bounded_part_of_long_values():
    value = "posts/" + "a" * 15_000
    message = bounded_message(f"must look like 'posts/{{id}}', got {value!r}")
    assert len(message) < 200 and message.endswith("…") and "a" * 101 not in message
    status = _status_for(NotFound(f"no post {value}", field="name", name=value))
    assert len(status.SerializeToString()) < 1024
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert len(info.metadata["name"]) == 101
    assert bounded_message("short: 'posts/p1'") == "short: 'posts/p1'"

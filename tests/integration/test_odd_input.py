"""Odd input that every RPC of every service meets in the platform layer, before its servicer:
bodies that do not decode, timestamps out of range, over-long resource names, and errors
that would echo a huge value."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import descriptor_pool
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2, graph_pb2
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
assert communities_pb2 and graph_pb2  # their services are in the descriptor pool
SC = grpc.StatusCode

# service -> full method names, several services of each
UNDECODABLE_TARGETS = {
    "profiles": ["watercooler.profiles.v1.ProfileService/GetProfile", "watercooler.profiles.v1.ProfileService/UpdateProfile",
                 "watercooler.profiles.v1.CommunityService/ListCommunityMembers", "watercooler.profiles.v1.GraphService/Follow"],
    "posts": ["watercooler.posts.v1.PostService/GetPost", "watercooler.posts.v1.PostService/CreateComment",
              "watercooler.posts.v1.WikiService/GetPage", "watercooler.posts.v1.MediaService/RegisterMediaItem"],
    "jams": ["watercooler.jams.v1.JamService/GetJam", "watercooler.jams.v1.JamService/CastVote", "watercooler.jams.v1.JamService/CreateIdea"],
    "search": ["watercooler.search.v1.SearchService/Search", "watercooler.search.v1.SearchService/Trending",
               "watercooler.search.v1.SearchService/ListComments", "watercooler.search.v1.SearchService/SearchPeople"],
}
CASES = [(service, method) for service, methods in UNDECODABLE_TARGETS.items() for method in methods]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _invalid_utf8_in_a_string_field(method: str) -> bytes:
    """A well-formed body whose first string field holds bytes that are not UTF-8."""
    service_name, rpc = method.split("/")
    descriptor = descriptor_pool.Default().FindServiceByName(service_name).methods_by_name[rpc].input_type
    field = next(f for f in descriptor.fields if f.type == d.FieldDescriptor.TYPE_STRING)
    value = b"posts/\xff\xfe\xc3("
    return _varint(field.number << 3 | 2) + _varint(len(value)) + value


def _raw_call(platform, service: str, method: str, body: bytes) -> grpc.RpcError:
    call = platform.channel(service).unary_unary(f"/{method}", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        call(body, metadata=platform.metadata(), timeout=30)
    return caught.value


@pytest.mark.parametrize(("service", "method"), CASES, ids=[m.split("/")[1] for _, m in CASES])
def test_an_undecodable_body_is_invalid_argument_naming_the_message(platform, service, method):
    message_name = f"{method.split('/')[1]}Request"
    for body in (b"\xff\xff\xff\xff\xff", b"\x0a\x40short", _invalid_utf8_in_a_string_field(method)):
        error = _raw_call(platform, service, method, body)
        assert error.code() == SC.INVALID_ARGUMENT, (body, error.code(), error.details())
        assert f"not a valid {message_name}" in error.details()


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


YEAR_1 = -62_135_596_800  # 0001-01-01T00:00:00Z
AFTER_9999 = 253_402_300_800  # 10000-01-01T00:00:00Z


def _out_of_range_requests():
    return [
        ("search", "Trending", sp.TrendingRequest(time=_ts(YEAR_1)), "time"),
        ("search", "Trending", sp.TrendingRequest(time=_ts(AFTER_9999)), "time"),
        ("search", "Search", sp.SearchRequest(query="x", start_time=_ts(-1)), "start_time"),
        ("search", "GetStats", sp.GetStatsRequest(metric="posts", end_time=Timestamp(seconds=10, nanos=-5)), "end_time"),
        ("jams", "ScheduleJam", jp.ScheduleJamRequest(name="jams/x", open_time=_ts(3600), voting_time=_ts(7200), close_time=_ts(AFTER_9999 * 4)), "close_time"),
        ("posts", "RecordPageView", wp.RecordPageViewRequest(view=wp.PageView(page="pages/x", view_time=_ts(YEAR_1))), "view.view_time"),
        ("posts", "BatchRecordDownloads", mp.BatchRecordDownloadsRequest(downloads=[mp.Download(media_item="media/x"), mp.Download(media_item="media/x", download_time=_ts(YEAR_1))]),
         "downloads[1].download_time"),
        ("profiles", "CreateProfile", prp.CreateProfileRequest(profile=prp.Profile(employee_id="e-odd", display_name="Odd", create_time=_ts(YEAR_1))), "profile.create_time"),
    ]


@pytest.mark.parametrize("case", _out_of_range_requests(), ids=lambda c: f"{c[1]}.{c[3]}")
def test_a_timestamp_out_of_range_is_invalid_argument_naming_the_field(platform, case):
    service, rpc, request, field = case
    stubs = {"search": "watercooler.search.v1.SearchService", "jams": "watercooler.jams.v1.JamService", "profiles": "watercooler.profiles.v1.ProfileService"}
    service_name = stubs.get(service) or ("watercooler.posts.v1.WikiService" if rpc == "RecordPageView" else "watercooler.posts.v1.MediaService")
    call = platform.channel(service).unary_unary(f"/{service_name}/{rpc}", request_serializer=type(request).SerializeToString, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=platform.metadata(), timeout=30)
    assert caught.value.code() == SC.INVALID_ARGUMENT, caught.value.details()
    assert caught.value.details().startswith(f"{field}:"), caught.value.details()
    assert _violations(caught.value) == [field]


def _http_get(path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_http_view_holds_timestamps_and_names_to_the_same_limits(platform):
    status, body = _http_get("/api/v1/trending?time=0001-01-01T00:00:00Z", platform.token("e-odd"))
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT" and body["error"]["field"] == "time", body
    status, body = _http_get(f"/api/v1/stats?metric=wiki_views&target=pages/{'a' * 2000}", platform.token("e-odd"))
    assert status == 400 and body["error"]["field"] == "target" and len(body["error"]["message"]) < 200, body


def _violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


LONG = "a" * 15_000


def _long_name_requests():
    return [
        ("posts", "watercooler.posts.v1.PostService/GetPost", pb.GetPostRequest(name=f"posts/{LONG}"), "name"),
        ("posts", "watercooler.posts.v1.PostService/CreateComment", pb.CreateCommentRequest(comment=pb.Comment(target=f"posts/{LONG}", body="hi")), "comment.target"),
        ("posts", "watercooler.posts.v1.WikiService/LookupPage", wp.LookupPageRequest(space=f"spaces/{LONG}", title="Home"), "space"),
        ("profiles", "watercooler.profiles.v1.ProfileService/BatchGetProfiles", prp.BatchGetProfilesRequest(names=["profiles/e1", f"profiles/{LONG}"]), "names[1]"),
        ("profiles", "watercooler.profiles.v1.ProfileService/CreateProfile", prp.CreateProfileRequest(profile=prp.Profile(employee_id=LONG, display_name="Long")), "profile.employee_id"),
        ("jams", "watercooler.jams.v1.JamService/CastVote", jp.CastVoteRequest(jam="jams/j", idea=f"jams/j/ideas/{LONG}"), "idea"),
        ("search", "watercooler.search.v1.SearchService/ListComments", sp.ListCommentsRequest(target=f"posts/{LONG}"), "target"),
        ("search", "watercooler.search.v1.SearchService/GetNetworkCounts", sp.GetNetworkCountsRequest(person=f"profiles/{LONG}"), "person"),
    ]


@pytest.mark.parametrize("case", _long_name_requests(), ids=lambda c: f"{c[1].split('/')[1]}.{c[3]}")
def test_an_over_long_name_is_invalid_argument_naming_the_field(platform, case):
    service, method, request, field = case
    call = platform.channel(service).unary_unary(f"/{method}", request_serializer=type(request).SerializeToString, response_deserializer=None)
    for who in (platform.metadata(), platform.metadata("e-odd", "employee")):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=who, timeout=30)
        assert caught.value.code() == SC.INVALID_ARGUMENT, caught.value.details()
        assert caught.value.details().startswith(f"{field}: must be at most 512 characters")
        assert _violations(caught.value) == [field]


def test_an_error_echoes_at_most_a_bounded_part_of_a_long_value(platform):
    """Under the name limit but far over what an error repeats: the error names the field and
    shows the value's start, cut with an ellipsis."""
    call = platform.channel("posts").unary_unary("/watercooler.posts.v1.PostService/GetPost", request_serializer=pb.GetPostRequest.SerializeToString, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        call(pb.GetPostRequest(name="blogs/" + "b" * 500), metadata=platform.metadata(), timeout=30)
    assert caught.value.code() == SC.INVALID_ARGUMENT
    details = caught.value.details()
    assert details.startswith("name:") and "…" in details and "b" * 101 not in details, details
    status = rpc_status.from_call(caught.value)
    assert status is not None and len(status.SerializeToString()) < 4096


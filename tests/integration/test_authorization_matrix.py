"""docs/authorization.md, walked cell by cell through the real gRPC API.

The document's tables are the expectations: this module parses every row (one or more
RPCs and the situation they are called in) and every column (a principal and its
relation to the item), runs each cell against the running platform in one shared world
of fixtures, and compares the status code (and, for list and search reads, whether the
world's item is shown or hidden) with the cell. A cell that may succeed gets a fresh
item of its own, so cells never depend on each other's order. Rows naming `GET /route`
run against the search service's HTTP view with the column's token. A second test fails
when an RPC defined in protos/ or an HTTP route has no row in the document (or a row names
one the test cannot run), so nothing new slips past the matrix (tests/unit/test_read_gate.py
holds the same gate without the platform, and the visibility matrix's for reads)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, unique, word
from tests.unit.test_read_gate import http_routes
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import notifications_pb2 as np_
from watercooler.profiles.v1 import notifications_pb2_grpc as npg
from watercooler.profiles.v1 import personal_data_pb2 as pdp
from watercooler.profiles.v1 import personal_data_pb2_grpc as pdg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import notifications_pb2 as sn
from watercooler.search.v1 import notifications_pb2_grpc as sng
from watercooler.search.v1 import personal_data_pb2 as spd
from watercooler.search.v1 import personal_data_pb2_grpc as spdg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"
SC = grpc.StatusCode
OK = "OK"
CODES = {"✔": OK, "✘": SC.PERMISSION_DENIED, "NF": SC.NOT_FOUND, "FP": SC.FAILED_PRECONDITION, "AE": SC.ALREADY_EXISTS}
# Column headings of the document -> the world's principals.
COLUMNS = {
    "author / owner": "owner",
    "jam host": "host",
    "stranger employee": "stranger",
    "community member": "member",
    "guest": "guest",
    "guest of this jam": "guest",
    "guest of another jam": "outsider",
    "alumni": "alumni",
    "service": "service",
}
V = pb.Audience
SV = gp.StatusUpdate


# --- the document --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    code: object
    shown: bool | None  # list reads: the world's item present (True) / absent (False); None: not checked


@dataclass(frozen=True)
class Row:
    section: str
    line: int
    rpcs: tuple[str, ...]
    situation: str
    cells: tuple[tuple[str, Expect], ...]

    def says(self, word_: str) -> bool:
        return word_ in self.situation


def _cell(text: str, where: str) -> Expect:
    match = re.match(r"\s*(✔|✘|NF|FP|AE)(?:\s+(shown|hidden)\b)?", text)
    if not match:
        raise AssertionError(f"{where}: a cell must start with one of {', '.join(CODES)}: {text!r}")
    return Expect(CODES[match.group(1)], {"shown": True, "hidden": False}.get(match.group(2) or ""))


def parse_doc(text: str) -> list[Row]:
    rows: list[Row] = []
    section, header = "", None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section, header = line[3:].strip(), None
            continue
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "RPC":
            header = [COLUMNS[h] for h in cells[1:]]
            continue
        if header is None or set(line) <= set("|- "):
            continue
        first = cells[0]
        rpcs = tuple(re.findall(r"`([A-Z]\w+|GET /[^`]*)`", first.split("—")[0]))
        assert rpcs, f"docs/authorization.md:{number}: no `Rpc` or `GET /route` in the first column"
        assert len(cells) - 1 == len(header), f"docs/authorization.md:{number}: {len(cells) - 1} cells for {len(header)} columns"
        situation = first.split("—", 1)[1].strip() if "—" in first else ""
        rows.append(Row(section, number, rpcs, situation, tuple((key, _cell(c, f"docs/authorization.md:{number}")) for key, c in zip(header, cells[1:], strict=True))))
    return rows


ROWS = parse_doc(DOC.read_text())
CASES = [(rpc, row) for row in ROWS for rpc in row.rpcs]


def _case_id(case: tuple[str, Row]) -> str:
    rpc, row = case
    return f"{rpc}@{row.line}"


# --- the world -----------------------------------------------------------------------------------
def attempt(call: Callable, request: Any, metadata: Any) -> tuple[object, Any]:
    try:
        return OK, call(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        return error.code(), None


class World:
    """The principals of the document's columns and the items its rows touch."""

    def __init__(self, platform):
        self.platform = platform
        self.s = s = Stubs(platform)
        self.graph = platform.stub(gg.GraphServiceStub, "profiles")
        self.service = platform.metadata()
        self.word = word(8)  # in every searchable title, so searches find exactly the world
        self.ids: dict[str, str] = {}
        for key in ("owner", "stranger", "member", "host", "alumni"):
            self.ids[key], _ = s.person(f"{key.title()} {self.word}")
        # The OPEN community D: the member joined it, and so did the alumnus before leaving.
        self.former = self.new_open_community()
        for key in ("member", "alumni"):
            s.communities.JoinCommunity(cp.JoinCommunityRequest(name=self.former), metadata=platform.metadata(self.ids[key], "employee"))
        # Before leaving, the alumnus wrote a CONFIDENTIAL post: leaving ends their reading of it.
        as_leaver = platform.metadata(self.ids["alumni"], "employee")
        leaver_blog = s.blog(as_leaver, visibility=V.INTERNAL)
        self.confidential_post = s.post(as_leaver, leaver_blog, "Secret plans", "body")
        s.posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=self.confidential_post, classification=pb.Classification.CONFIDENTIAL),
                                                update_mask=FieldMask(paths=["classification"])), metadata=as_leaver)
        s.profiles.LeaveCompany(prp.LeaveCompanyRequest(name=f"profiles/{self.ids['alumni']}", reason="moved on"), metadata=self.service)
        self.ids["guest"], self.ids["outsider"] = unique("g"), unique("g")
        for guest in ("guest", "outsider"):  # guests write in jams: they accept the guidelines too
            platform.accept_guest_guidelines(self.ids[guest])
        self.guest_jams: list[str] = []
        self.indexed_ideas: dict[str, list[str]] = {}
        owner = self.md("owner")

        # Profiles: the INVITE_ONLY community C (owner, member) and an OPEN one.
        self.community = unique("c")
        s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=self.community, display_name="C", access=cp.Community.INVITE_ONLY)), metadata=owner)
        self.invite_and_join(self.ids["member"], self.md("member"))
        self.open_community = self.new_open_community()
        self.status = self.graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(
            parent=self.profile("owner"), status_update=gp.StatusUpdate(text=f"{self.word} status", visibility=SV.COMMUNITY, community=self.c_name)), metadata=owner).name
        # Posts: COMMUNITY items in C.
        self.blog = s.blog(owner, visibility=V.COMMUNITY, community=self.c_name)
        self.public_blog = s.blog(owner, visibility=V.PUBLIC)
        # Only the world's own items carry the word, so searches for it stay short.
        self.post = self.new_post(word_=self.word)
        self.micropost = self.new_micropost(word_=self.word)
        self.comment = self.new_comment(word_=self.word)
        self.bookmark_url = f"https://example.com/{self.word}"
        self.bookmark = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=self.bookmark_url, title=f"{self.word} link", tags=[self.word],
                                                                                              visibility=V.COMMUNITY, community=self.c_name)), metadata=owner).name
        self.former_word = word(8)
        self.former_post = s.post(owner, self.public_blog, f"{self.former_word} post", "Body.", tags=[self.former_word], visibility=V.COMMUNITY, community=self.former)
        # Wiki and media.
        self.spaces = {
            "community": self.new_space(wp.RESTRICTED, owner_name=self.c_name),
            "former": self.new_space(wp.RESTRICTED, owner_name=self.former),
            "listed": self.new_space(wp.RESTRICTED, members=[self.ids["member"], self.ids["guest"], self.ids["alumni"]]),
            "internal": self.new_space(wp.INTERNAL),
            "public": self.new_space(wp.PUBLIC),
        }
        self.pages = {kind: self.new_page(space, title=f"{self.word} {kind}") for kind, space in self.spaces.items()}
        s.wiki.EditPage(wp.EditPageRequest(name=self.pages["community"], body="v2", base_revision=1), metadata=owner)
        self.media = {level: self.new_media(level, title=f"{self.word} media") for level in (wp.RESTRICTED, wp.INTERNAL)}
        # Jams: INTERNAL and PUBLIC, OPEN (ideas, talk), VOTING and closed with results.
        self.jams = {(vis, phase): self.new_jam(vis, phase) for vis in (jp.Jam.INTERNAL, jp.Jam.PUBLIC) for phase in (jp.OPEN, jp.VOTING, jp.CLOSED)}
        self.guest_jams = [jam for (vis, _), jam in self.jams.items() if vis == jp.Jam.INTERNAL]

    # principals
    def md(self, key: str, *jams: str):
        if key == "service":
            return self.service
        if key == "guest":
            return self.platform.metadata(self.ids["guest"], "guest", jams=(*self.guest_jams, *jams))
        if key == "outsider":
            return self.platform.metadata(self.ids["outsider"], "guest", jams=("jam-elsewhere",))
        return self.platform.metadata(self.ids[key], "alumni" if key == "alumni" else "employee")

    def profile(self, key: str) -> str:
        return f"profiles/{self.ids[key]}"

    def person(self) -> tuple[str, Any]:
        return self.s.person("Extra Person")

    # profiles
    @property
    def c_name(self) -> str:
        return f"communities/{self.community}"

    def invite_and_join(self, person: str, metadata) -> None:
        self.s.communities.InviteMember(cp.InviteMemberRequest(name=self.c_name, member=f"profiles/{person}"), metadata=self.md("owner"))
        self.s.communities.JoinCommunity(cp.JoinCommunityRequest(name=self.c_name), metadata=metadata)

    def new_open_community(self) -> str:
        community = unique("c")
        self.s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Open", access=cp.Community.OPEN)), metadata=self.md("owner"))
        return f"communities/{community}"

    # posts
    def new_post(self, visibility=V.COMMUNITY, publish: bool = True, word_: str = "") -> str:
        community = self.c_name if visibility == V.COMMUNITY else ""
        blog = self.blog if visibility == V.COMMUNITY else self.public_blog
        return self.s.post(self.md("owner"), blog, f"{word_} post".strip(), "Body.", tags=[word_] if word_ else [], visibility=visibility, community=community, publish=publish)

    def new_micropost(self, word_: str = "") -> str:
        return self.s.micro(self.md("owner"), f"{word_} micro".strip(), visibility=V.COMMUNITY, community=self.c_name)

    def new_comment(self, word_: str = "") -> str:
        return self.s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=self.post, body=f"{word_} comment".strip())), metadata=self.md("owner")).name

    def new_bookmark(self) -> str:
        return self.s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('l')}", visibility=V.COMMUNITY, community=self.c_name)),
                                           metadata=self.md("owner")).name

    # wiki and media
    def new_space(self, visibility, owner_name: str = "", members=()) -> str:
        space = wp.Space(space_id=unique("s"), display_name="Space", visibility=visibility, owner=owner_name, members=list(members))
        return self.s.wiki.CreateSpace(wp.CreateSpaceRequest(space=space), metadata=self.md("owner")).name

    def new_page(self, space: str, title: str = "") -> str:
        return self.s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=title or unique("p"), body="v1")), metadata=self.md("owner")).name

    def new_media(self, visibility=wp.INTERNAL, title: str = "Fresh media") -> str:
        item = mp.MediaItem(title=title, kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", visibility=visibility, storage_uri="s3://b/x")
        return self.s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=self.md("owner")).name

    # jams
    def new_jam(self, visibility, phase=jp.OPEN, draft: bool = False) -> str:
        """A jam hosted by the host, with a forum and seeded ideas, moved to ``phase``."""
        jam_id, host = unique("jam-"), self.md("host")
        times = {} if draft else {"open_time": ts(3600), "voting_time": ts(7200), "close_time": ts(9000)}
        self.s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Jam", vote_budget=20, top_n=3, visibility=visibility, **times)), metadata=host)
        if draft:
            return jam_id
        name = f"jams/{jam_id}"
        self.s.jams.CreateForum(jp.CreateForumRequest(parent=name, forum_id="talk", forum=jp.Forum(title="Talk")), metadata=host)
        for n in range(6):
            self.s.jams.CreateIdea(jp.CreateIdeaRequest(parent=name, idea=jp.Idea(title=f"Idea {n}")), metadata=host)
        for current in (jp.SCHEDULED, jp.OPEN, jp.VOTING):
            if phase == current:
                break
            self.s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=name, phase=current), metadata=host)
            if current == jp.SCHEDULED:  # talk happens while OPEN
                self.s.jams.CreateThread(jp.CreateThreadRequest(parent=name, thread=jp.Thread(forum=f"{name}/forums/talk", title="Thread", body="Hi")), metadata=host)
        return jam_id

    def jam(self, row: Row, phase=jp.OPEN) -> str:
        return self.jams[(jp.Jam.PUBLIC if row.says("PUBLIC") else jp.Jam.INTERNAL, phase)]

    def ideas(self, jam_id: str) -> list[str]:
        """The jam's idea names as search has them (ids are time-ordered: creation order)."""
        found = self.s.search.SearchJamIdeas(sp.SearchJamIdeasRequest(jam=f"jams/{jam_id}", page_size=50), metadata=self.service).ideas
        return sorted(i.idea for i in found)

    def idea_names(self, jam_id: str) -> list[str]:
        return self.indexed_ideas[jam_id]


@pytest.fixture(scope="module")
def world(platform) -> World:
    w = World(platform)
    # Wait for the projections the checks read (the posts service asks the profiles service
    # about membership itself; search reads the communities index).
    s, service = w.s, w.service
    eventually(lambda: platform.es.search(index=platform.alias("communities"), query={"term": {"members": w.ids["member"]}})["hits"]["total"]["value"] >= 2, message="membership indexed")
    eventually(lambda: platform.es.search(index=platform.alias("communities"), query={"term": {"members": w.ids["alumni"]}})["hits"]["total"]["value"] >= 1, message="former membership indexed")
    eventually(lambda: any(h.name == w.former_post for h in s.search.SearchPosts(sp.SearchPostsRequest(tag=w.former_word), metadata=service).posts), message="post in D indexed")
    w.indexed_ideas = {}
    for jam_id in w.jams.values():
        w.indexed_ideas[jam_id] = eventually(lambda j=jam_id: len(w.ideas(j)) == 6 and w.ideas(j), message="ideas indexed")
    for (_, phase), jam_id in w.jams.items():
        if phase == jp.CLOSED:
            eventually(lambda j=jam_id: s.jams.GetJam(jp.GetJamRequest(name=f"jams/{j}"), metadata=service).phase == jp.RESULTS_PUBLISHED, timeout=60, message="results published")
    eventually(lambda: any(h.name == w.post for h in s.search.SearchPosts(sp.SearchPostsRequest(tag=w.word), metadata=service).posts), message="post indexed")
    eventually(lambda: any(h.name == w.micropost for h in s.search.ListTimeline(sp.ListTimelineRequest(person=w.profile("owner")), metadata=service).posts), message="micropost indexed")
    eventually(lambda: any(c.name == w.comment for c in s.search.ListComments(sp.ListCommentsRequest(target=w.post), metadata=service).comments), message="comment indexed")
    eventually(lambda: any(b.name == w.bookmark for b in s.search.SearchBookmarks(sp.SearchBookmarksRequest(tag=w.word), metadata=service).bookmarks), message="bookmark indexed")
    eventually(lambda: any(u.name == w.status for u in s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=w.profile("owner")), metadata=service).status_updates),
               message="status update indexed")
    eventually(lambda: any(m.media_item == w.media[wp.RESTRICTED] for m in s.search.ListMediaItems(sp.ListMediaItemsRequest(owner=w.profile("owner")), metadata=service).media_items),
               message="media indexed")
    eventually(lambda: {w.pages["community"], w.pages["listed"]} <= {h.name for h in s.search.Search(sp.SearchRequest(query=w.word, page_size=50), metadata=service).hits},
               message="pages indexed")
    for jam_id in w.jams.values():
        eventually(lambda j=jam_id: attempt(s.search.GetJamPulse, sp.GetJamPulseRequest(jam=f"jams/{j}"), service)[0] == OK, message="jam stats")
    return w


# --- scenarios: one function per RPC, (world, column, row) -> outcome ----------------------------
Outcome = Any  # a status code, or (code, shown)
SERIAL = {"GET /api/v1/jams", "UpdateProfile", "SetProfilePhoto", "MarkNotificationsRead", "UpdateNotificationSettings", "LeaveCommunity", "InviteMember", "RemoveMember", "CreateForum", "MergeIdeas"}
SCENARIOS: dict[str, Callable[[World, str, Row], Outcome]] = {}


def scenario(*rpcs: str):
    def register(fn):
        for rpc in rpcs:
            SCENARIOS[rpc] = (lambda r: lambda w, who, row: fn(w, who, row, r))(rpc)
        return fn

    return register


def code(call, request, metadata) -> object:
    return attempt(call, request, metadata)[0]


def listed(call, request, metadata, names: Callable[[Any], set[str]], item: str) -> Outcome:
    status, response = attempt(call, request, metadata)
    return (status, item in names(response)) if status == OK else status


# profiles -------------------------------------------------------------------------------------
@scenario("CreateProfile", "BatchCreateProfiles")
def _create_profile(w: World, who: str, row: Row, rpc: str):
    def create(request: prp.CreateProfileRequest, metadata) -> object:
        if rpc == "BatchCreateProfiles":
            return code(w.s.profiles.BatchCreateProfiles, prp.BatchCreateProfilesRequest(requests=[request]), metadata)
        return code(w.s.profiles.CreateProfile, request, metadata)

    new = unique("e")
    if who == "owner":  # a new hire with their own token
        return create(prp.CreateProfileRequest(profile=prp.Profile(employee_id=new, display_name="New Hire")), w.platform.metadata(new, "employee"))
    target = w.ids[who] if who in ("guest", "alumni") else new
    return create(prp.CreateProfileRequest(profile=prp.Profile(employee_id=target, display_name="Someone")), w.md(who))


@scenario("GetProfile", "BatchGetProfiles", "GetManagementChain")
def _read_profile(w: World, who: str, row: Row, rpc: str):
    name = w.profile("owner")
    request = {"GetProfile": prp.GetProfileRequest(name=name), "BatchGetProfiles": prp.BatchGetProfilesRequest(names=[name]),
               "GetManagementChain": prp.GetManagementChainRequest(name=name)}[rpc]
    return code(getattr(w.s.profiles, rpc), request, w.md(who))


@scenario("UpdateProfile")
def _update_profile(w: World, who: str, row: Row, rpc: str):
    request = prp.UpdateProfileRequest(profile=prp.Profile(name=w.profile("owner"), title=f"by {who}"), update_mask=FieldMask(paths=["title"]))
    return code(w.s.profiles.UpdateProfile, request, w.md(who))


@scenario("SetProfilePhoto")
def _set_profile_photo(w: World, who: str, row: Row, rpc: str):
    item = mp.MediaItem(title="Portrait", kind=mp.MediaItem.IMAGE, size_bytes=10, content_type="image/jpeg", visibility=wp.PUBLIC, storage_uri="s3://b/p")
    photo = w.s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=w.md("owner")).name
    return code(w.s.profiles.SetProfilePhoto, prp.SetProfilePhotoRequest(name=w.profile("owner"), photo=photo), w.md(who))


@scenario("LeaveCompany")
def _leave_company(w: World, who: str, row: Row, rpc: str):
    person, as_person = w.person()
    return code(w.s.profiles.LeaveCompany, prp.LeaveCompanyRequest(name=f"profiles/{person}", reason="bye"), as_person if who == "owner" else w.md(who))


@scenario("AcceptGuidelines")
def _accept_guidelines(w: World, who: str, row: Row, rpc: str):
    person, as_person = w.person()
    request = prp.AcceptGuidelinesRequest(name=f"profiles/{person}", version=w.platform.settings.guidelines_version)
    return code(w.s.profiles.AcceptGuidelines, request, as_person if who == "owner" else w.md(who))


@scenario("ErasePerson")
def _erase_person(w: World, who: str, row: Row, rpc: str):
    person, as_person = w.person()
    stub = w.platform.stub(pdg.PersonalDataServiceStub, "profiles")
    return code(stub.ErasePerson, pdp.ErasePersonRequest(name=f"profiles/{person}"), as_person if who == "owner" else w.md(who))


@scenario("GetPersonalDataKeys")
def _personal_data_keys(w: World, who: str, row: Row, rpc: str):
    stub = w.platform.stub(pdg.PersonalDataServiceStub, "profiles")
    return code(stub.GetPersonalDataKeys, pdp.GetPersonalDataKeysRequest(key_ids=[w.ids["owner"]]), w.md(who))


@scenario("CreateCommunity")
def _create_community(w: World, who: str, row: Row, rpc: str):
    owners = [w.profile("owner")] if who == "service" else []
    community = cp.Community(community_id=unique("c"), display_name="New", access=cp.Community.OPEN, owners=owners)
    return code(w.s.communities.CreateCommunity, cp.CreateCommunityRequest(community=community), w.md(who))


@scenario("GetCommunity")
def _get_community(w: World, who: str, row: Row, rpc: str):
    return code(w.s.communities.GetCommunity, cp.GetCommunityRequest(name=w.c_name), w.md(who))


@scenario("ListCommunityMembers")
def _list_members(w: World, who: str, row: Row, rpc: str):
    parent = w.open_community if row.says("OPEN") else w.c_name
    return code(w.s.communities.ListCommunityMembers, cp.ListCommunityMembersRequest(parent=parent), w.md(who))


@scenario("GetMembership")
def _get_membership(w: World, who: str, row: Row, rpc: str):
    community = w.open_community if row.says("OPEN") else w.c_name
    person = w.ids["stranger"] if row.says("stranger") else w.ids["owner"]
    return code(w.s.communities.GetMembership, cp.GetMembershipRequest(name=f"{community}/members/{person}"), w.md(who))


@scenario("JoinCommunity")
def _join(w: World, who: str, row: Row, rpc: str):
    join = w.s.communities.JoinCommunity
    if row.says("OPEN"):
        community = w.new_open_community()
        if who in ("owner", "service"):
            person, as_person = w.person()
            return code(join, cp.JoinCommunityRequest(name=community, member=f"profiles/{person}" if who == "service" else ""), w.md("service") if who == "service" else as_person)
        return code(join, cp.JoinCommunityRequest(name=community), w.md(who))
    if who == "owner":  # a person the owner invited joins themself
        person, as_person = w.person()
        w.s.communities.InviteMember(cp.InviteMemberRequest(name=w.c_name, member=f"profiles/{person}"), metadata=w.md("owner"))
        return code(join, cp.JoinCommunityRequest(name=w.c_name), as_person)
    if who == "service":
        person, _ = w.person()
        return code(join, cp.JoinCommunityRequest(name=w.c_name, member=f"profiles/{person}"), w.md(who))
    return code(join, cp.JoinCommunityRequest(name=w.c_name), w.md(who))


@scenario("LeaveCommunity", "RemoveMember")
def _leave_or_remove(w: World, who: str, row: Row, rpc: str):
    person, as_person = w.person()
    w.invite_and_join(person, as_person)
    if rpc == "LeaveCommunity":
        if who == "owner":
            return code(w.s.communities.LeaveCommunity, cp.LeaveCommunityRequest(name=w.c_name), as_person)
        return code(w.s.communities.LeaveCommunity, cp.LeaveCommunityRequest(name=w.c_name, member=f"profiles/{person}"), w.md(who))
    return code(w.s.communities.RemoveMember, cp.RemoveMemberRequest(name=w.c_name, member=f"profiles/{person}"), w.md(who))


@scenario("InviteMember")
def _invite(w: World, who: str, row: Row, rpc: str):
    person, _ = w.person()
    return code(w.s.communities.InviteMember, cp.InviteMemberRequest(name=w.c_name, member=f"profiles/{person}"), w.md(who))


@scenario("UpdateCommunity", "ArchiveCommunity", "AddCommunityOwner", "RemoveCommunityOwner", "TransferCommunityOwnership")
def _run_community(w: World, who: str, row: Row, rpc: str):
    """Each cell runs a community of its own (the author's, which the member joined)."""
    owner, community = w.md("owner"), unique("c")
    name = f"communities/{community}"
    w.s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Run", access=cp.Community.OPEN)), metadata=owner)
    w.s.communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=w.md("member"))
    if rpc == "UpdateCommunity":
        request: Any = cp.UpdateCommunityRequest(community=cp.Community(name=name, display_name="Renamed"), update_mask=FieldMask(paths=["display_name"]))
    elif rpc == "ArchiveCommunity":
        request = cp.ArchiveCommunityRequest(name=name)
    elif rpc == "AddCommunityOwner":
        request = cp.AddCommunityOwnerRequest(name=name, owner=w.profile("member"))
    elif rpc == "TransferCommunityOwnership":
        request = cp.TransferCommunityOwnershipRequest(name=name, new_owner=w.profile("member"))
    else:
        co_owner, as_co_owner = w.person()
        w.s.communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=as_co_owner)
        w.s.communities.AddCommunityOwner(cp.AddCommunityOwnerRequest(name=name, owner=f"profiles/{co_owner}"), metadata=owner)
        request = cp.RemoveCommunityOwnerRequest(name=name, owner=f"profiles/{co_owner}")
    return code(getattr(w.s.communities, rpc), request, w.md(who))


@scenario("Follow", "Unfollow", "RequestConnection", "AcceptConnection", "DeclineConnection", "RemoveConnection")
def _graph(w: World, who: str, row: Row, rpc: str):
    other, as_other = w.person()
    owner, target = w.profile("owner"), f"profiles/{other}"
    if rpc == "Unfollow":
        w.graph.Follow(gp.FollowRequest(parent=owner, target=target), metadata=w.md("owner"))
    if rpc in ("AcceptConnection", "DeclineConnection", "RemoveConnection"):
        w.graph.RequestConnection(gp.RequestConnectionRequest(parent=target, target=owner), metadata=as_other)
    if rpc == "RemoveConnection":
        w.graph.AcceptConnection(gp.AcceptConnectionRequest(parent=owner, target=target), metadata=w.md("owner"))
    request = getattr(gp, f"{rpc}Request")(parent=owner, target=target)
    return code(getattr(w.graph, rpc), request, w.md(who))


@scenario("MarkNotificationsRead", "UpdateNotificationSettings", "GetNotificationSettings")
def _notification_settings(w: World, who: str, row: Row, rpc: str):
    stub = w.platform.stub(npg.NotificationSettingsServiceStub, "profiles")
    settings = f"{w.profile('owner')}/notificationSettings"
    request = {
        "MarkNotificationsRead": lambda: np_.MarkNotificationsReadRequest(parent=w.profile("owner"), up_to=f"{w.profile('owner')}/notifications/{uuid.uuid4()}"),
        "UpdateNotificationSettings": lambda: np_.UpdateNotificationSettingsRequest(settings=np_.NotificationSettings(name=settings, disabled_kinds=["like"])),
        "GetNotificationSettings": lambda: np_.GetNotificationSettingsRequest(name=settings),
    }[rpc]()
    return code(getattr(stub, rpc), request, w.md(who))


@scenario("ListNotifications", "GetUnreadCount", "WatchNotifications")
def _notifications(w: World, who: str, row: Row, rpc: str):
    stub = w.platform.stub(sng.NotificationServiceStub, "search")
    if rpc == "ListNotifications":
        return code(stub.ListNotifications, sn.ListNotificationsRequest(parent=w.profile("owner")), w.md(who))
    if rpc == "GetUnreadCount":
        return code(stub.GetUnreadCount, sn.GetUnreadCountRequest(parent=w.profile("owner")), w.md(who))
    # The stream stays open for its recipient (nothing new arrives): its deadline ending it is success.
    try:
        for _ in stub.WatchNotifications(sn.WatchNotificationsRequest(parent=w.profile("owner")), metadata=w.md(who), timeout=3):
            pass
        return OK
    except grpc.RpcError as error:
        return OK if error.code() == SC.DEADLINE_EXCEEDED else error.code()


@scenario("CreateStatusUpdate")
def _create_status(w: World, who: str, row: Row, rpc: str):
    as_author = row.situation.startswith("as the author") or who == "service"
    parent = w.profile("owner") if as_author else f"profiles/{w.ids[who]}"
    if row.says("COMMUNITY"):
        update = gp.StatusUpdate(text="hello", visibility=SV.COMMUNITY, community=w.c_name)
    else:
        update = gp.StatusUpdate(text="hello", visibility=SV.PUBLIC if row.says("PUBLIC") else SV.INTERNAL)
    if row.says("RESTRICTED media item"):
        update.photo = w.media[wp.RESTRICTED]
    return code(w.graph.CreateStatusUpdate, gp.CreateStatusUpdateRequest(parent=parent, status_update=update), w.md(who))


@scenario("DeleteStatusUpdate")
def _delete_status(w: World, who: str, row: Row, rpc: str):
    mine = w.graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=w.profile("owner"), status_update=gp.StatusUpdate(text="bye", visibility=SV.INTERNAL)), metadata=w.md("owner"))
    return code(w.graph.DeleteStatusUpdate, gp.DeleteStatusUpdateRequest(name=mine.name), w.md(who))


@scenario("FlagStatusUpdate", "VoteRestoreStatusUpdate")
def _flag_status(w: World, who: str, row: Row, rpc: str):
    status = w.graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=w.profile("owner"), status_update=gp.StatusUpdate(
        text="flag me", visibility=SV.COMMUNITY, community=w.c_name)), metadata=w.md("owner")).name
    if rpc == "FlagStatusUpdate":
        return code(w.graph.FlagStatusUpdate, gp.FlagStatusUpdateRequest(name=status, reason="off topic"), w.md(who))
    w.graph.FlagStatusUpdate(gp.FlagStatusUpdateRequest(name=status, reason="takedown"), metadata=w.service)  # a service hides it at once
    return code(w.graph.VoteRestoreStatusUpdate, gp.VoteRestoreStatusUpdateRequest(name=status), w.md(who))


@scenario("HideStatusUpdate", "RestoreStatusUpdate")
def _moderate_status(w: World, who: str, row: Row, rpc: str):
    status = w.graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=w.profile("member"), status_update=gp.StatusUpdate(
        text="moderate me", visibility=SV.COMMUNITY, community=w.c_name)), metadata=w.md("member")).name
    if rpc == "RestoreStatusUpdate":
        w.graph.HideStatusUpdate(gp.HideStatusUpdateRequest(name=status, reason="takedown"), metadata=w.service)
    return code(getattr(w.graph, rpc), getattr(gp, f"{rpc}Request")(name=status, reason="off topic"), w.md(who))


# posts ----------------------------------------------------------------------------------------
@scenario("CreateBlog")
def _create_blog(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="Mine", visibility=V.INTERNAL)), w.md(who))


@scenario("GetBlog")
def _get_blog(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.GetBlog, pb.GetBlogRequest(name=w.blog), w.md(who))


@scenario("UpdateBlog")
def _update_blog(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.UpdateBlog, pb.UpdateBlogRequest(blog=pb.Blog(name=w.blog, title=f"Notes by {who}"), update_mask=FieldMask(paths=["title"])), w.md(who))


@scenario("CreatePost")
def _create_post(w: World, who: str, row: Row, rpc: str):
    post = pb.Post(title="New", body="x", visibility=V.COMMUNITY, community=w.c_name)
    return code(w.s.posts.CreatePost, pb.CreatePostRequest(parent=w.blog, post=post), w.md(who))


@scenario("GetPost", "ListPostRevisions")
def _read_post(w: World, who: str, row: Row, rpc: str):
    if rpc == "GetPost":
        post = w.confidential_post if row.says("CONFIDENTIAL") else w.former_post if row.says("*D*") else w.post
        return code(w.s.posts.GetPost, pb.GetPostRequest(name=post), w.md(who))
    return code(w.s.posts.ListPostRevisions, pb.ListPostRevisionsRequest(parent=w.post), w.md(who))


@scenario("UpdatePost", "PublishPost", "DeletePost")
def _change_post(w: World, who: str, row: Row, rpc: str):
    post = w.new_post(V.PUBLIC if row.says("PUBLIC") else V.COMMUNITY, publish=rpc != "PublishPost")
    if rpc == "UpdatePost":
        request: Any = pb.UpdatePostRequest(post=pb.Post(name=post, title=f"by {who}"), update_mask=FieldMask(paths=["title"]))
    else:
        request = getattr(pb, f"{rpc}Request")(name=post)
    return code(getattr(w.s.posts, rpc), request, w.md(who))


@scenario("CreateMicropost")
def _create_micropost(w: World, who: str, row: Row, rpc: str):
    if row.says("COMMUNITY"):
        micropost = pb.Micropost(text="hi", visibility=V.COMMUNITY, community=w.c_name)
    else:
        micropost = pb.Micropost(text="hi", visibility=V.PUBLIC if row.says("PUBLIC") else V.INTERNAL)
    return code(w.s.posts.CreateMicropost, pb.CreateMicropostRequest(micropost=micropost), w.md(who))


@scenario("GetMicropost")
def _get_micropost(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.GetMicropost, pb.GetMicropostRequest(name=w.micropost), w.md(who))


@scenario("UpdateMicropost", "DeleteMicropost")
def _change_micropost(w: World, who: str, row: Row, rpc: str):
    micropost = w.new_micropost()
    if rpc == "UpdateMicropost":
        return code(w.s.posts.UpdateMicropost, pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micropost, text=f"by {who}"), update_mask=FieldMask(paths=["text"])), w.md(who))
    return code(w.s.posts.DeleteMicropost, pb.DeleteMicropostRequest(name=micropost), w.md(who))


@scenario("CreateComment")
def _create_comment(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=w.post, body=f"by {who}")), w.md(who))


@scenario("GetComment")
def _get_comment(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.GetComment, pb.GetCommentRequest(name=w.comment), w.md(who))


@scenario("UpdateComment", "DeleteComment")
def _change_comment(w: World, who: str, row: Row, rpc: str):
    comment = w.new_comment()
    if rpc == "UpdateComment":
        return code(w.s.posts.UpdateComment, pb.UpdateCommentRequest(comment=pb.Comment(name=comment, body=f"by {who}"), update_mask=FieldMask(paths=["body"])), w.md(who))
    return code(w.s.posts.DeleteComment, pb.DeleteCommentRequest(name=comment), w.md(who))


@scenario("RatePost", "WithdrawRating")
def _rate(w: World, who: str, row: Row, rpc: str):
    post = w.new_post()
    rated = code(w.s.posts.RatePost, pb.RatePostRequest(post=post, value=4), w.md(who))
    if rpc == "RatePost":
        return rated
    return code(w.s.posts.WithdrawRating, pb.WithdrawRatingRequest(post=post), w.md(who))


@scenario("Like", "Unlike")
def _like(w: World, who: str, row: Row, rpc: str):
    micropost = w.new_micropost()
    liked = code(w.s.posts.Like, pb.LikeRequest(target=micropost), w.md(who))
    if rpc == "Like":
        return liked
    return code(w.s.posts.Unlike, pb.UnlikeRequest(target=micropost), w.md(who))


@scenario("CreateBookmark")
def _create_bookmark(w: World, who: str, row: Row, rpc: str):
    audience = {"visibility": V.COMMUNITY, "community": w.c_name} if row.says("COMMUNITY") else {"visibility": V.INTERNAL}
    return code(w.s.posts.CreateBookmark, pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('l')}", **audience)), w.md(who))


@scenario("GetBookmark")
def _get_bookmark(w: World, who: str, row: Row, rpc: str):
    return code(w.s.posts.GetBookmark, pb.GetBookmarkRequest(name=w.bookmark), w.md(who))


@scenario("UpdateBookmark", "DeleteBookmark")
def _change_bookmark(w: World, who: str, row: Row, rpc: str):
    bookmark = w.new_bookmark()
    if rpc == "UpdateBookmark":
        return code(w.s.posts.UpdateBookmark, pb.UpdateBookmarkRequest(bookmark=pb.Bookmark(name=bookmark, title=f"by {who}"), update_mask=FieldMask(paths=["title"])), w.md(who))
    return code(w.s.posts.DeleteBookmark, pb.DeleteBookmarkRequest(name=bookmark), w.md(who))


@scenario("FlagItem", "VoteRestoreItem")
def _flags(w: World, who: str, row: Row, rpc: str):
    if row.says("page"):
        post = w.new_page(w.spaces["community"])
    elif row.says("media"):
        post = w.new_media(wp.INTERNAL)
    else:
        post = w.new_post(V.PUBLIC if row.says("PUBLIC") else V.COMMUNITY)
    if rpc == "FlagItem":
        return code(w.s.posts.FlagItem, pb.FlagItemRequest(name=post, reason="off topic"), w.md(who))
    w.s.posts.FlagItem(pb.FlagItemRequest(name=post, reason="takedown"), metadata=w.service)  # a service hides it at once
    return code(w.s.posts.VoteRestoreItem, pb.VoteRestoreItemRequest(name=post), w.md(who))


@scenario("UpdateSpace")
def _update_space(w: World, who: str, row: Row, rpc: str):
    space = w.new_space(wp.RESTRICTED, owner_name=w.c_name)
    request = wp.UpdateSpaceRequest(space=wp.Space(name=space, display_name="Renamed"), update_mask=FieldMask(paths=["display_name"]))
    return code(w.s.wiki.UpdateSpace, request, w.md(who))


@scenario("HideItem", "RestoreItem")
def _moderate(w: World, who: str, row: Row, rpc: str):
    public = row.says("PUBLIC")
    micro = w.s.micro(w.md("member"), "moderate me", visibility=V.PUBLIC if public else V.COMMUNITY, community="" if public else w.c_name)
    if rpc == "RestoreItem":
        w.s.posts.HideItem(pb.HideItemRequest(name=micro, reason="takedown"), metadata=w.service)
    return code(getattr(w.s.posts, rpc), getattr(pb, f"{rpc}Request")(name=micro, reason="off topic"), w.md(who))


# wiki and media ---------------------------------------------------------------------------------
def _space_of(w: World, row: Row) -> str:
    for kind, marker in (("former", "owned by *D*"), ("listed", "listing"), ("internal", "INTERNAL"), ("public", "PUBLIC")):
        if row.says(marker):
            return kind
    return "community"


@scenario("CreateSpace")
def _create_space(w: World, who: str, row: Row, rpc: str):
    if row.says("owned by *C*"):
        space = wp.Space(space_id=unique("s"), display_name="Ours", visibility=wp.RESTRICTED, owner=w.c_name)
    else:
        space = wp.Space(space_id=unique("s"), display_name="Mine", visibility=wp.INTERNAL)
    return code(w.s.wiki.CreateSpace, wp.CreateSpaceRequest(space=space), w.md(who))


@scenario("GetSpace", "GetPage", "LookupPage", "ListRevisions", "GetRevision", "DiffRevisions")
def _read_wiki(w: World, who: str, row: Row, rpc: str):
    kind = _space_of(w, row)
    space, page = w.spaces[kind], w.pages[kind]
    request = {
        "GetSpace": lambda: wp.GetSpaceRequest(name=space),
        "GetPage": lambda: wp.GetPageRequest(name=page),
        "LookupPage": lambda: wp.LookupPageRequest(space=space, title=f"{w.word} {kind}"),
        "ListRevisions": lambda: wp.ListRevisionsRequest(name=page),
        "GetRevision": lambda: wp.GetRevisionRequest(name=page, revision=1),
        "DiffRevisions": lambda: wp.DiffRevisionsRequest(name=page, from_revision=1, to_revision=2),
    }[rpc]()
    return code(getattr(w.s.wiki, rpc), request, w.md(who))


@scenario("CreatePage", "EditPage", "RenamePage", "RestoreRevision", "DeletePage")
def _write_wiki(w: World, who: str, row: Row, rpc: str):
    space = w.spaces["public" if row.says("PUBLIC") else "community"]
    if rpc == "CreatePage":
        return code(w.s.wiki.CreatePage, wp.CreatePageRequest(page=wp.Page(space=space, title=unique("p"), body="x")), w.md(who))
    page = w.new_page(space)
    if rpc == "RestoreRevision":
        w.s.wiki.EditPage(wp.EditPageRequest(name=page, body="v2", base_revision=1), metadata=w.md("owner"))
    request = {
        "EditPage": lambda: wp.EditPageRequest(name=page, body=f"by {who}", base_revision=1),
        "RenamePage": lambda: wp.RenamePageRequest(name=page, title=unique("p"), base_revision=1),
        "RestoreRevision": lambda: wp.RestoreRevisionRequest(name=page, revision=1, base_revision=2),
        "DeletePage": lambda: wp.DeletePageRequest(name=page, base_revision=1),
    }[rpc]()
    return code(getattr(w.s.wiki, rpc), request, w.md(who))


@scenario("RecordPageView", "BatchRecordPageViews")
def _views(w: World, who: str, row: Row, rpc: str):
    viewer = w.ids["owner"] if who == "service" or row.says("naming the author") else ""
    view = wp.PageView(page=w.pages["community"], viewer=viewer)
    request = wp.RecordPageViewRequest(view=view) if rpc == "RecordPageView" else wp.BatchRecordPageViewsRequest(views=[view])
    return code(getattr(w.s.wiki, rpc), request, w.md(who))


@scenario("RegisterMediaItem")
def _register_media(w: World, who: str, row: Row, rpc: str):
    item = mp.MediaItem(title="Mine", kind=mp.MediaItem.IMAGE, size_bytes=1, content_type="image/png", visibility=wp.INTERNAL, storage_uri="s3://b/y")
    return code(w.s.media.RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=item), w.md(who))


@scenario("GetMediaItem")
def _get_media(w: World, who: str, row: Row, rpc: str):
    item = w.media[wp.RESTRICTED if row.says("RESTRICTED") else wp.INTERNAL]
    return code(w.s.media.GetMediaItem, mp.GetMediaItemRequest(name=item), w.md(who))


@scenario("UpdateMediaItem", "RemoveMediaItem")
def _change_media(w: World, who: str, row: Row, rpc: str):
    item = w.new_media()
    if rpc == "UpdateMediaItem":
        return code(w.s.media.UpdateMediaItem, mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=item, title=f"by {who}"), update_mask=FieldMask(paths=["title"])), w.md(who))
    return code(w.s.media.RemoveMediaItem, mp.RemoveMediaItemRequest(name=item), w.md(who))


def _uploaded_media(w: World, visibility=wp.INTERNAL) -> str:
    """A fresh item of the owner's with one confirmed upload (a small PNG)."""
    from tests.integration.test_media_content import png, put

    item = mp.MediaItem(title="Uploaded", kind=mp.MediaItem.IMAGE, visibility=visibility)
    name = w.s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=w.md("owner")).name
    data = png(b"matrix")
    upload = w.s.media.CreateUpload(mp.CreateUploadRequest(parent=name, upload=mp.Upload(size_bytes=len(data), content_type="image/png")), metadata=w.md("owner"))
    assert put(upload.upload_uri, upload.upload_headers, data) == 200
    w.s.media.ConfirmUpload(mp.ConfirmUploadRequest(name=upload.name), metadata=w.md("owner"))
    return name


@scenario("CreateUpload", "ConfirmUpload")
def _uploads(w: World, who: str, row: Row, rpc: str):
    from tests.integration.test_media_content import png, put

    item = mp.MediaItem(title="Awaiting", kind=mp.MediaItem.IMAGE, visibility=wp.INTERNAL)
    name = w.s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=w.md("owner")).name
    data = png(who.encode())
    request = mp.CreateUploadRequest(parent=name, upload=mp.Upload(size_bytes=len(data), content_type="image/png"))
    if rpc == "CreateUpload":
        return code(w.s.media.CreateUpload, request, w.md(who))
    upload = w.s.media.CreateUpload(request, metadata=w.md("owner"))
    assert put(upload.upload_uri, upload.upload_headers, data) == 200
    return code(w.s.media.ConfirmUpload, mp.ConfirmUploadRequest(name=upload.name), w.md(who))


@scenario("CreateDownloadLink")
def _download_link(w: World, who: str, row: Row, rpc: str):
    name = _uploaded_media(w, wp.RESTRICTED if row.says("RESTRICTED") else wp.INTERNAL)
    if row.says("thumbnail"):
        # As the thumbnail maker would (the matrix's PNG is only a header: it makes none itself).
        w.s.media.RecordThumbnails(mp.RecordThumbnailsRequest(name=name, version=1, sizes=[256, 64]), metadata=w.md("service"))
        return code(w.s.media.CreateDownloadLink, mp.CreateDownloadLinkRequest(name=name, thumbnail_size=64), w.md(who))
    return code(w.s.media.CreateDownloadLink, mp.CreateDownloadLinkRequest(name=name), w.md(who))


@scenario("RecordThumbnails")
def _record_thumbnails(w: World, who: str, row: Row, rpc: str):
    name = _uploaded_media(w)
    return code(w.s.media.RecordThumbnails, mp.RecordThumbnailsRequest(name=name, version=1, sizes=[256, 64]), w.md(who))


@scenario("RecordDownload", "BatchRecordDownloads")
def _downloads(w: World, who: str, row: Row, rpc: str):
    if row.says("uploaded content"):
        download = mp.Download(media_item=_uploaded_media(w), viewer=w.ids["owner"] if who == "service" else "")
        return code(w.s.media.RecordDownload, mp.RecordDownloadRequest(download=download), w.md(who))
    download = mp.Download(media_item=w.media[wp.INTERNAL], viewer=w.ids["owner"] if who == "service" else "")
    request = mp.RecordDownloadRequest(download=download) if rpc == "RecordDownload" else mp.BatchRecordDownloadsRequest(downloads=[download])
    return code(getattr(w.s.media, rpc), request, w.md(who))


# jams -----------------------------------------------------------------------------------------
def _jam_md(w: World, who: str, jam_id: str):
    return w.md(who, jam_id)  # the guest of this jam carries it in their token


@scenario("CreateJam")
def _create_jam(w: World, who: str, row: Row, rpc: str):
    return code(w.s.jams.CreateJam, jp.CreateJamRequest(jam_id=unique("jam-"), jam=jp.Jam(title="Mine")), w.md(who))


@scenario("GetJam", "GetIdea", "GetJamResults", "ExportJamResults")
def _read_jam(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row, jp.CLOSED if rpc in ("GetJamResults", "ExportJamResults") else jp.OPEN)
    name = f"jams/{jam_id}"
    request = {
        "GetJam": lambda: jp.GetJamRequest(name=name),
        "GetIdea": lambda: jp.GetIdeaRequest(name=w.idea_names(jam_id)[0]),
        "GetJamResults": lambda: jp.GetJamResultsRequest(name=name),
        "ExportJamResults": lambda: jp.ExportJamResultsRequest(name=name, format="json"),
    }[rpc]()
    return code(getattr(w.s.jams, rpc), request, _jam_md(w, who, jam_id))


@scenario("ListJams")
def _list_jams(w: World, who: str, row: Row, rpc: str):
    jam_id, metadata = w.jam(row), w.md(who)
    seen: set[str] = set()
    token = ""
    while True:
        status, page = attempt(w.s.jams.ListJams, jp.ListJamsRequest(page_size=100, page_token=token), metadata)
        if status != OK:
            return status
        seen |= {j.name for j in page.jams}
        token = page.next_page_token
        if not token:
            return OK, f"jams/{jam_id}" in seen


@scenario("ScheduleJam", "AdvanceJamPhase", "CreateForum", "MergeIdeas", "CreateInvitation")
def _host(w: World, who: str, row: Row, rpc: str):
    visibility = jp.Jam.PUBLIC if row.says("PUBLIC") else jp.Jam.INTERNAL
    if rpc == "ScheduleJam":
        jam_id = w.new_jam(visibility, draft=True)
        request: Any = jp.ScheduleJamRequest(name=f"jams/{jam_id}", open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))
    elif rpc == "AdvanceJamPhase":
        jam_id = unique("jam-")
        w.s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Next", visibility=visibility, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))),
                           metadata=w.md("host"))
        request = jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=jp.SCHEDULED)
    else:
        jam_id = w.jam(row)
        name = f"jams/{jam_id}"
        if rpc == "CreateForum":
            request = jp.CreateForumRequest(parent=name, forum_id=unique("f"), forum=jp.Forum(title="More"))
        elif rpc == "CreateInvitation":
            request = jp.CreateInvitationRequest(parent=name, label=who)
        else:
            pair = [w.s.jams.CreateIdea(jp.CreateIdeaRequest(parent=name, idea=jp.Idea(title=unique("i"))), metadata=w.md("host")).name for _ in range(2)]
            request = jp.MergeIdeasRequest(name=pair[0], into=pair[1])
    return code(getattr(w.s.jams, rpc), request, _jam_md(w, who, jam_id))


@scenario("CreateIdea", "CreateThread", "CreateReply")
def _take_part(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    name = f"jams/{jam_id}"
    if rpc == "CreateIdea":
        request: Any = jp.CreateIdeaRequest(parent=name, idea=jp.Idea(title=f"by {who} {unique('i')}"))
    elif rpc == "CreateThread":
        request = jp.CreateThreadRequest(parent=name, thread=jp.Thread(forum=f"{name}/forums/talk", title=f"by {who}", body="Hello"))
    else:
        thread = w.s.jams.CreateThread(jp.CreateThreadRequest(parent=name, thread=jp.Thread(forum=f"{name}/forums/talk", title="Topic", body="Hi")), metadata=w.md("host")).name
        request = jp.CreateReplyRequest(parent=thread, reply=jp.Reply(body=f"by {who}"))
    return code(getattr(w.s.jams, rpc), request, _jam_md(w, who, jam_id))


@scenario("FlagJamItem", "VoteRestoreJamItem")
def _flag_jam_item(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    name, host = f"jams/{jam_id}", w.md("host")
    if row.says("idea"):
        item = w.s.jams.CreateIdea(jp.CreateIdeaRequest(parent=name, idea=jp.Idea(title=unique("i"))), metadata=host).name
    else:
        item = w.s.jams.CreateThread(jp.CreateThreadRequest(parent=name, thread=jp.Thread(forum=f"{name}/forums/talk", title="Topic", body="Hi")), metadata=host).name
        if row.says("reply"):
            item = w.s.jams.CreateReply(jp.CreateReplyRequest(parent=item, reply=jp.Reply(body="Re")), metadata=host).name
    if rpc == "FlagJamItem":
        return code(w.s.jams.FlagJamItem, jp.FlagJamItemRequest(name=item, reason="off topic"), _jam_md(w, who, jam_id))
    w.s.jams.FlagJamItem(jp.FlagJamItemRequest(name=item, reason="takedown"), metadata=w.service)  # a service hides it at once
    return code(w.s.jams.VoteRestoreJamItem, jp.VoteRestoreJamItemRequest(name=item), _jam_md(w, who, jam_id))


@scenario("HideJamItem", "RestoreJamItem")
def _moderate_jam_item(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    idea = w.s.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=unique("i"))), metadata=w.md("stranger")).name
    if rpc == "RestoreJamItem":
        w.s.jams.HideJamItem(jp.HideJamItemRequest(name=idea, reason="takedown"), metadata=w.service)
    return code(getattr(w.s.jams, rpc), getattr(jp, f"{rpc}Request")(name=idea, reason="off topic"), _jam_md(w, who, jam_id))


@scenario("CastVote", "WithdrawVote", "ChangeVote")
def _vote(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row, jp.VOTING)
    ideas, name, metadata = w.idea_names(jam_id), f"jams/{jam_id}", _jam_md(w, who, jam_id)
    first = {"CastVote": ideas[0], "WithdrawVote": ideas[1], "ChangeVote": ideas[2]}[rpc]
    cast = code(w.s.jams.CastVote, jp.CastVoteRequest(jam=name, idea=first), metadata)
    if rpc == "CastVote":
        return cast
    if rpc == "WithdrawVote":
        return code(w.s.jams.WithdrawVote, jp.WithdrawVoteRequest(jam=name, idea=first), metadata)
    return code(w.s.jams.ChangeVote, jp.ChangeVoteRequest(jam=name, from_idea=first, to_idea=ideas[3]), metadata)


@scenario("GetBallot")
def _ballot(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row, jp.VOTING)
    participant = w.ids["member"] if row.says("another") else "-"  # the member votes in no jam of this table
    return code(w.s.jams.GetBallot, jp.GetBallotRequest(name=f"jams/{jam_id}/ballots/{participant}"), _jam_md(w, who, jam_id))


@scenario("RedeemInvitation")
def _redeem(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    invitation = w.s.jams.CreateInvitation(jp.CreateInvitationRequest(parent=f"jams/{jam_id}", label="cell"), metadata=w.md("host"))
    return code(w.s.jams.RedeemInvitation, jp.RedeemInvitationRequest(code=invitation.code, jam=f"jams/{jam_id}"), w.md(who))


@scenario("AcceptGuestGuidelines")
def _accept_guest_guidelines(w: World, who: str, row: Row, rpc: str):
    request = jp.AcceptGuestGuidelinesRequest(name=f"guests/{w.ids['guest']}", version=w.platform.settings.guidelines_version)
    return code(w.s.jams.AcceptGuestGuidelines, request, w.md(who))


# search ---------------------------------------------------------------------------------------
@scenario("SearchPeople", "ListPeople", "FindExperts", "ListCommunities", "GetNetworkCounts")
def _directory(w: World, who: str, row: Row, rpc: str):
    request = {
        "SearchPeople": lambda: sp.SearchPeopleRequest(query=w.word),
        "ListPeople": lambda: sp.ListPeopleRequest(),
        "FindExperts": lambda: sp.FindExpertsRequest(topic=w.word),
        "ListCommunities": lambda: sp.ListCommunitiesRequest(),
        "GetNetworkCounts": lambda: sp.GetNetworkCountsRequest(person=w.profile("owner")),
    }[rpc]()
    return code(getattr(w.s.search, rpc), request, w.md(who))


@scenario("ListRelations")
def _relations(w: World, who: str, row: Row, rpc: str):
    relation = sp.ListRelationsRequest.PENDING_INCOMING if row.says("PENDING") else sp.ListRelationsRequest.FOLLOWERS
    return code(w.s.search.ListRelations, sp.ListRelationsRequest(person=w.profile("owner"), relation=relation), w.md(who))


@scenario("GetNetworkFeed", "ListPeopleYouMayKnow")
def _personal(w: World, who: str, row: Row, rpc: str):
    request = sp.GetNetworkFeedRequest(person=w.profile("owner")) if rpc == "GetNetworkFeed" else sp.ListPeopleYouMayKnowRequest(person=w.profile("owner"))
    return code(getattr(w.s.search, rpc), request, w.md(who))


@scenario("ListStatusUpdates")
def _status_updates(w: World, who: str, row: Row, rpc: str):
    return listed(w.s.search.ListStatusUpdates, sp.ListStatusUpdatesRequest(person=w.profile("owner"), page_size=100), w.md(who), lambda r: {u.name for u in r.status_updates}, w.status)


@scenario("SearchPosts", "ListTimeline")
def _posts_search(w: World, who: str, row: Row, rpc: str):
    if rpc == "SearchPosts" and row.says("*D*"):
        return listed(w.s.search.SearchPosts, sp.SearchPostsRequest(tag=w.former_word), w.md(who), lambda r: {p.name for p in r.posts}, w.former_post)
    if rpc == "SearchPosts":
        return listed(w.s.search.SearchPosts, sp.SearchPostsRequest(tag=w.word), w.md(who), lambda r: {p.name for p in r.posts}, w.post)
    return listed(w.s.search.ListTimeline, sp.ListTimelineRequest(person=w.profile("owner"), page_size=100), w.md(who), lambda r: {p.name for p in r.posts}, w.micropost)


@scenario("ListBlogDirectory")
def _blog_directory(w: World, who: str, row: Row, rpc: str):
    seen: set[str] = set()
    token = ""
    while True:
        status, page = attempt(w.s.search.ListBlogDirectory, sp.ListBlogDirectoryRequest(page_size=100, page_token=token), w.md(who))
        if status != OK:
            return status
        seen |= {b.blog for b in page.blogs}
        token = page.next_page_token
        if not token:
            return OK, w.blog in seen


@scenario("ListComments")
def _comments(w: World, who: str, row: Row, rpc: str):
    return listed(w.s.search.ListComments, sp.ListCommentsRequest(target=w.post, page_size=100), w.md(who), lambda r: {c.name for c in r.comments}, w.comment)


@scenario("SearchBookmarks", "ListPopularLinks")
def _bookmarks(w: World, who: str, row: Row, rpc: str):
    if rpc == "SearchBookmarks":
        return listed(w.s.search.SearchBookmarks, sp.SearchBookmarksRequest(tag=w.word), w.md(who), lambda r: {b.name for b in r.bookmarks}, w.bookmark)
    return listed(w.s.search.ListPopularLinks, sp.ListPopularLinksRequest(tag=w.word), w.md(who), lambda r: {link.url for link in r.links}, w.bookmark_url)


@scenario("GetPostStats")
def _post_stats(w: World, who: str, row: Row, rpc: str):
    status, stats = attempt(w.s.search.GetPostStats, sp.GetPostStatsRequest(blog=w.blog), w.md(who))
    return (status, sum(d.count for d in stats.posts_per_day) > 0) if status == OK else status


@scenario("ListWikiBacklinks", "GetViewCounts")
def _library_reads(w: World, who: str, row: Row, rpc: str):
    page = w.pages["community"] if row.says("*C*") else w.pages["listed"]
    request = sp.ListWikiBacklinksRequest(page=page) if rpc == "ListWikiBacklinks" else sp.GetViewCountsRequest(name=page)
    return code(getattr(w.s.search, rpc), request, w.md(who))


@scenario("ListMediaItems")
def _media_items(w: World, who: str, row: Row, rpc: str):
    return listed(w.s.search.ListMediaItems, sp.ListMediaItemsRequest(owner=w.profile("owner"), page_size=100), w.md(who), lambda r: {m.media_item for m in r.media_items}, w.media[wp.RESTRICTED])


@scenario("GetJamLeaderboard", "GetJamPulse", "ExportJamStats", "SearchJamIdeas", "ListJamDiscussion")
def _jam_search(w: World, who: str, row: Row, rpc: str):
    jam = f"jams/{w.jam(row)}"
    request = {
        "GetJamLeaderboard": lambda: sp.GetJamLeaderboardRequest(jam=jam),
        "GetJamPulse": lambda: sp.GetJamPulseRequest(jam=jam),
        "ExportJamStats": lambda: sp.ExportJamStatsRequest(jam=jam, format="json"),
        "SearchJamIdeas": lambda: sp.SearchJamIdeasRequest(jam=jam),
        "ListJamDiscussion": lambda: sp.ListJamDiscussionRequest(jam=jam),
    }[rpc]()
    return code(getattr(w.s.search, rpc), request, w.md(who))


@scenario("ListAuditEvents")
def _audit(w: World, who: str, row: Row, rpc: str):
    return code(w.s.search.ListAuditEvents, sp.ListAuditEventsRequest(resource=w.post), w.md(who))


@scenario("ExportPersonalData")
def _export_personal_data(w: World, who: str, row: Row, rpc: str):
    stub = w.platform.stub(spdg.PersonalDataExportServiceStub, "search")
    return code(stub.ExportPersonalData, spd.ExportPersonalDataRequest(name=w.profile("owner")), w.md(who))


@scenario("Search")
def _search(w: World, who: str, row: Row, rpc: str):
    item = w.pages["community"] if row.says("page") else w.post
    return listed(w.s.search.Search, sp.SearchRequest(query=w.word, page_size=100), w.md(who), lambda r: {h.name for h in r.hits}, item)


@scenario("Suggest", "Trending", "GetStats", "ListTopViewed")
def _overview(w: World, who: str, row: Row, rpc: str):
    request = {
        "Suggest": lambda: sp.SuggestRequest(prefix=w.word[:4]),
        "Trending": lambda: sp.TrendingRequest(),
        "GetStats": lambda: sp.GetStatsRequest(metric="posts"),
        "ListTopViewed": lambda: sp.ListTopViewedRequest(kind=sp.ListTopViewedRequest.PAGES, period=sp.ListTopViewedRequest.ALL_TIME),
    }[rpc]()
    return code(getattr(w.s.search, rpc), request, w.md(who))


# the search service's HTTP view ----------------------------------------------------------------
HTTP_CODES = {200: OK, 403: SC.PERMISSION_DENIED, 404: SC.NOT_FOUND, 401: SC.UNAUTHENTICATED, 400: SC.INVALID_ARGUMENT}


def http(path: str, metadata) -> tuple[object, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{os.environ['WC_SEARCH_HTTP_PORT']}{path}", headers={"Authorization": dict(metadata)["authorization"]})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HTTP_CODES.get(response.status, response.status), response.read()
    except urllib.error.HTTPError as error:
        return HTTP_CODES.get(error.code, error.code), error.read()


@scenario("GET /api/v1/search")
def _http_search(w: World, who: str, row: Row, rpc: str):
    status, body = http(f"/api/v1/search?query={w.word}&page_size=100", w.md(who))
    return (status, w.post in {h["name"] for h in json.loads(body)["hits"]}) if status == OK else status


@scenario("GET /api/v1/suggest", "GET /api/v1/trending", "GET /api/v1/stats")
def _http_overview(w: World, who: str, row: Row, rpc: str):
    query = {"GET /api/v1/suggest": f"suggest?prefix={w.word[:4]}", "GET /api/v1/trending": "trending", "GET /api/v1/stats": "stats?metric=posts"}[rpc]
    return http(f"/api/v1/{query}", w.md(who))[0]


@scenario("GET /api/v1/jams")
def _http_jam_board(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    # The board shows the 50 most recently active jams: make this one the most recent first.
    w.s.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=unique("i"))), metadata=w.md("host"))
    eventually(lambda: f"jams/{jam_id}" in {j["name"] for j in json.loads(http("/api/v1/jams", w.service)[1])["jams"]}, message="jam on the board")
    status, body = http("/api/v1/jams", _jam_md(w, who, jam_id))
    return (status, f"jams/{jam_id}" in {j["name"] for j in json.loads(body)["jams"]}) if status == OK else status


@scenario("GET /api/v1/jams/{jam}/leaderboard", "GET /api/v1/jams/{jam}/pulse")
def _http_jam_stats(w: World, who: str, row: Row, rpc: str):
    jam_id = w.jam(row)
    return http(rpc.split(" ", 1)[1].replace("{jam}", jam_id), _jam_md(w, who, jam_id))[0]


@scenario("GET /healthz", "GET /", "GET /dashboard/", "GET /dashboard/{filename}")
def _http_static(w: World, who: str, row: Row, rpc: str):
    return http(rpc.split(" ", 1)[1].replace("{filename}", "dashboard.js"), w.md(who))[0]


# --- the tests -----------------------------------------------------------------------------------
def _expected(expect: Expect) -> Outcome:
    return (expect.code, expect.shown) if expect.shown is not None else expect.code


def _name(outcome: Outcome) -> str:
    if isinstance(outcome, tuple):
        return f"{_name(outcome[0])} {'shown' if outcome[1] else 'hidden'}"
    return outcome if isinstance(outcome, str) else outcome.name


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_cell(world: World, case: tuple[str, Row]):
    rpc, row = case
    run = SCENARIOS[rpc]

    def one(cell: tuple[str, Expect]) -> Outcome:
        who, expect = cell
        actual = run(world, who, row)
        if expect.shown is None and isinstance(actual, tuple):
            actual = actual[0]
        return actual

    # Cells of one row run side by side, except where several of them write one shared
    # aggregate (the community C, the author's profile, a jam): they would race into ABORTED.
    workers = 1 if rpc in SERIAL else len(row.cells)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        actual = dict(zip((who for who, _ in row.cells), pool.map(one, row.cells), strict=True))
    expected = {who: _expected(expect) for who, expect in row.cells}
    wrong = [f"  {who}: the document says {_name(expected[who])}, the platform answered {_name(actual[who])}" for who in expected if expected[who] != actual[who]]
    assert not wrong, f"{rpc} — {row.situation or row.section} (docs/authorization.md:{row.line})\n" + "\n".join(wrong)


def _proto_rpcs() -> set[str]:
    """Every rpc of every service in protos/ (read from the .proto sources, not generated code)."""
    found = {name for proto in (DOC.parents[1] / "protos").rglob("*.proto") for name in re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto.read_text(), re.M)}
    assert len(found) > 100, "protos/ not where expected"
    return found


def test_every_rpc_in_protos_has_a_row_and_every_row_runs():
    documented = {rpc for row in ROWS for rpc in row.rpcs}
    rpcs = _proto_rpcs()
    assert not rpcs - documented, f"RPCs in protos/ with no row in docs/authorization.md: {sorted(rpcs - documented)}"
    routes = http_routes()
    assert not documented - rpcs - routes, f"rows of docs/authorization.md naming no RPC in protos/ or route: {sorted(documented - rpcs - routes)}"
    assert not routes - documented, f"HTTP routes with no row in docs/authorization.md: {sorted(routes - documented)}"
    assert not documented - set(SCENARIOS), f"rows this test cannot run (add a scenario): {sorted(documented - set(SCENARIOS))}"
    # Every principal appears in some table, and every cell parsed to a code.
    assert {who for row in ROWS for who, _ in row.cells} == set(COLUMNS.values())


def test_the_parser_reads_cells_as_written():
    rows = parse_doc("## t\n\n| RPC | author / owner | guest |\n|---|---|---|\n| `GetA`, `GetB` — a PUBLIC thing | ✔ shown | NF because |\n")
    assert rows == [Row("t", 5, ("GetA", "GetB"), "a PUBLIC thing", (("owner", Expect(OK, True)), ("guest", Expect(SC.NOT_FOUND, None))))]
    with pytest.raises(AssertionError):
        parse_doc("## t\n\n| RPC | guest |\n|---|---|\n| `GetA` | maybe |\n")


# --- the domain rules behind the fixed cells, without servers ------------------------------------
def test_domain_rules_behind_the_fixed_cells():
    from services.posts.domainmodel import Post
    from services.posts.library.domainmodel import can_see
    from watercooler.auth import Principal
    from watercooler.errors import FailedPrecondition, PermissionDenied

    member, alumnus, guest = Principal("e1", "employee"), Principal("a1", "alumni"), Principal("e1", "guest")
    in_c = lambda community, person: (community, person) == ("c", "e1")  # noqa: E731
    # A community's RESTRICTED space is its members'; a guest named like a listed member is not one.
    assert can_see("RESTRICTED", "communities/c", [], member, in_c) and not can_see("RESTRICTED", "communities/d", [], member, in_c)
    assert not can_see("RESTRICTED", "communities/c", [], member)  # no membership answer: closed
    assert not can_see("RESTRICTED", "profiles/x", ["e1"], guest) and not can_see("RESTRICTED", "profiles/e1", [], guest) and can_see("PUBLIC", "profiles/x", [], guest)
    # Leaving the company ends what memberships reached; an alumnus keeps their own items.
    assert not can_see("RESTRICTED", "profiles/x", ["a1"], alumnus) and not can_see("INTERNAL", "profiles/x", [], alumnus)
    assert not can_see("RESTRICTED", "communities/c", [], alumnus, lambda c, p: True) and can_see("RESTRICTED", "profiles/a1", [], alumnus)
    # A service moderates: hides and restores at once, deletes; it never edits as the author.
    post = Post.create("blog", "author", {"title": "T", "body": "", "tags": [], "visibility": "PUBLIC", "community": ""})
    post.moderate_hide("svc", "takedown")
    assert post.hidden
    with pytest.raises(FailedPrecondition):
        post.moderate_hide("svc", "again")
    post.moderate_restore()
    assert not post.hidden
    with pytest.raises(PermissionDenied):
        post.delete("svc")
    post.delete("svc", moderator=True)
    assert post.deleted

"""Notifications through the real API: each trigger tells its recipient once; a notification
about an item the recipient may no longer see is gone from the list, the count and the
stream; the stream resumes after a reconnect without loss or repeat; marking read is
idempotent; a kind switched off is not shown. One shared world (session scope: the
visibility-matrix cases in test_visibility_matrix_notifications.py use it too)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_jams_api import ts
from tests.integration.test_search_unified import Stubs, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import notifications_pb2 as np_
from watercooler.profiles.v1 import notifications_pb2_grpc as npg
from watercooler.search.v1 import notifications_pb2 as sn
from watercooler.search.v1 import notifications_pb2_grpc as sng

pytestmark = pytest.mark.integration
V = pb.Audience


class World:
    def __init__(self, platform):
        self.platform = platform
        self.s = Stubs(platform)
        self.graph = platform.stub(gg.GraphServiceStub, "profiles")
        self.settings = platform.stub(npg.NotificationSettingsServiceStub, "profiles")
        self.notifications = platform.stub(sng.NotificationServiceStub, "search")
        self.ids: dict[str, str] = {}
        self.md: dict[str, tuple] = {}
        for key in ("ana", "bob", "cara", "dave"):
            self.ids[key], self.md[key] = self.s.person(key.title())

    def parent(self, who: str) -> str:
        return f"profiles/{self.ids[who]}"

    def listed(self, who: str, unread_only: bool = False) -> list[sn.Notification]:
        out, token = [], ""
        while True:
            page = self.notifications.ListNotifications(sn.ListNotificationsRequest(parent=self.parent(who), page_size=7, page_token=token, unread_only=unread_only), metadata=self.md[who])
            out += list(page.notifications)
            token = page.next_page_token
            if not token:
                return out

    def unread(self, who: str) -> int:
        return self.notifications.GetUnreadCount(sn.GetUnreadCountRequest(parent=self.parent(who)), metadata=self.md[who]).unread_count

    def watch(self, who: str, after: str = "", wanted: int = 1, timeout: float = 60) -> list[sn.Notification]:
        """Up to ``wanted`` notifications from a stream opened now; fewer when the deadline ends it."""
        got: list[sn.Notification] = []
        call = self.notifications.WatchNotifications(sn.WatchNotificationsRequest(parent=self.parent(who), after=after), metadata=self.md[who], timeout=timeout)
        try:
            for notification in call:
                got.append(notification)
                if len(got) == wanted:
                    call.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                raise
        return got

    def mention(self, author: str, *people: str, visibility=V.INTERNAL) -> str:
        text = "hello " + " ".join(f"@{self.ids[p]}" for p in people)
        return self.s.posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=text, visibility=visibility)), metadata=self.md[author]).name


@pytest.fixture(scope="session")
def notified(platform) -> World:
    return World(platform)


def kinds_and_items(notifications) -> Counter:
    return Counter((n.kind, n.item) for n in notifications)


def test_each_trigger_tells_its_recipient_once(notified: World):
    w, s = notified, notified.s
    ana, bob = w.md["ana"], w.md["bob"]
    expected: dict[tuple[str, str], str] = {}
    mention = w.mention("bob", "ana")
    expected[("mention", mention)] = "bob"
    mine = s.posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="first thoughts", visibility=V.INTERNAL)), metadata=ana).name
    reply = s.posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="agreed", reply_to=mine, visibility=V.INTERNAL)), metadata=bob).name
    expected[("reply", reply)] = "bob"
    s.posts.Like(pb.LikeRequest(target=mine), metadata=bob)
    expected[("like", mine)] = "bob"
    post = s.post(ana, s.blog(ana), "Plans", "Body.")
    comment = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, body="Nice")), metadata=bob).name
    expected[("comment", comment)] = "bob"
    s.posts.RatePost(pb.RatePostRequest(post=post, value=4), metadata=bob)
    expected[("rating", post)] = "bob"
    w.graph.Follow(gp.FollowRequest(parent=w.parent("bob"), target=w.parent("ana")), metadata=bob)
    expected[("follower", w.parent("bob"))] = "bob"
    w.graph.RequestConnection(gp.RequestConnectionRequest(parent=w.parent("bob"), target=w.parent("ana")), metadata=bob)
    expected[("connection_request", w.parent("bob"))] = "bob"
    w.graph.RequestConnection(gp.RequestConnectionRequest(parent=w.parent("ana"), target=w.parent("cara")), metadata=ana)
    w.graph.AcceptConnection(gp.AcceptConnectionRequest(parent=w.parent("cara"), target=w.parent("ana")), metadata=w.md["cara"])
    expected[("connection_answer", w.parent("cara"))] = "cara"
    community = unique("c")
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Club", access=cp.Community.INVITE_ONLY)), metadata=bob)
    s.communities.InviteMember(cp.InviteMemberRequest(name=f"communities/{community}", member=w.parent("ana")), metadata=bob)
    expected[("community_invitation", f"communities/{community}")] = "bob"
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Guides", visibility=wp.INTERNAL)), metadata=ana).name
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title="How to", body="v1")), metadata=ana).name
    s.wiki.EditPage(wp.EditPageRequest(name=page, body="v2 by bob", base_revision=1), metadata=bob)
    expected[("wiki_edit", page)] = "bob"
    # The page's creator is named on the like and the comment by the writer: told even when the
    # projection takes them before the page's own events (another partition).
    s.posts.Like(pb.LikeRequest(target=page), metadata=bob)
    expected[("like", page)] = "bob"
    page_comment = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=page, body="Useful")), metadata=bob).name
    expected[("comment", page_comment)] = "bob"
    # A jam of bob's in which ana takes part (an idea): told when it moves on and of its results.
    jam = f"jams/{unique('jam-')}"
    s.jams.CreateJam(jp.CreateJamRequest(jam_id=jam.split("/")[1], jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=bob)
    s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam, phase=jp.SCHEDULED), metadata=bob)
    s.jams.CreateIdea(jp.CreateIdeaRequest(parent=jam, idea=jp.Idea(title="Mine")), metadata=ana)
    s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam, phase=jp.OPEN), metadata=bob)

    def all_there():
        got = kinds_and_items(w.listed("ana"))
        assert set(expected) <= set(got), sorted(set(expected) - set(got))
        assert ("jam_phase", jam) in got
        return got

    got = eventually(all_there, timeout=120)
    # Once each; never about what ana did herself (her own micropost, post, page, idea).
    assert all(got[key] == 1 for key in expected), {key: got[key] for key in expected}
    assert got[("jam_phase", jam)] == 1
    by_item = {(n.kind, n.item): n for n in w.listed("ana")}
    for key, actor in expected.items():
        notification = by_item[key]
        assert notification.actor == w.parent(actor) and notification.name.startswith(f"{w.parent('ana')}/notifications/")
        assert notification.reason and not notification.read
    assert w.unread("ana") == len(w.listed("ana", unread_only=True)) == len(w.listed("ana"))


def test_a_notification_about_an_item_made_private_is_gone_from_list_count_and_stream(notified: World):
    w, s = notified, notified.s
    # dave follows cara (an earlier notification to resume after), then replies to her comment on
    # ana's post: cara is told; when ana makes the post PRIVATE, cara may not see the reply any more.
    # (The stream's order is the order notifications were indexed: the reply is written once the
    # follower notification is listed, so it comes after it.)
    w.graph.Follow(gp.FollowRequest(parent=w.parent("dave"), target=w.parent("cara")), metadata=w.md["dave"])
    follower = eventually(lambda: next((n for n in w.listed("cara") if n.kind == "follower" and n.item == w.parent("dave")), None), timeout=90)
    post = s.post(w.md["ana"], s.blog(w.md["ana"]), "Open plans", "Body.")
    comment = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, body="Q?")), metadata=w.md["cara"]).name
    reply = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, parent=comment, body="A.")), metadata=w.md["dave"]).name
    eventually(lambda: ("reply", reply) in kinds_and_items(w.listed("cara")), timeout=90)
    unread_before = w.unread("cara")
    streamed = w.watch("cara", after=follower.name, wanted=50, timeout=8)
    assert ("reply", reply) in kinds_and_items(streamed)

    s.posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=post, visibility=V.PRIVATE), update_mask=FieldMask(paths=["visibility"])), metadata=w.md["ana"])
    eventually(lambda: ("reply", reply) not in kinds_and_items(w.listed("cara")), timeout=90)
    assert ("reply", reply) not in kinds_and_items(w.listed("cara", unread_only=True))
    assert w.unread("cara") == unread_before - 1
    assert ("reply", reply) not in kinds_and_items(w.watch("cara", after=follower.name, wanted=50, timeout=8))
    # The recipient's own item's notifications stay: ana still sees hers.
    assert ("comment", comment) in kinds_and_items(w.listed("ana"))


def test_the_stream_resumes_after_a_reconnect_without_loss_or_repeat(notified: World):
    w = notified
    # The stream starts after a notification dave already has ("from now" is the server's now).
    start = w.mention("bob", "dave")
    eventually(lambda: start in {n.item for n in w.listed("dave")}, timeout=90)
    newest = w.listed("dave")[0]
    received: list[sn.Notification] = []
    reader = threading.Thread(target=lambda: received.extend(w.watch("dave", after=newest.name, wanted=1, timeout=120)))
    reader.start()
    first = w.mention("bob", "dave")
    reader.join()
    assert [n.item for n in received] == [first]
    # Disconnected: two more arrive; the reconnect asks for what came after the one received.
    later = [w.mention("bob", "dave"), w.mention("cara", "dave")]
    eventually(lambda: {n.item for n in w.listed("dave")} >= set(later), timeout=90)
    resumed = w.watch("dave", after=received[0].name, wanted=10, timeout=8)
    assert sorted(n.item for n in resumed) == sorted(later)
    # In the list's order (newest first there, oldest first here).
    assert [n.name for n in resumed] == [n.name for n in w.listed("dave")[:2]][::-1]


def test_marking_read_is_idempotent(notified: World):
    w = notified
    mentions = {w.mention("bob", "cara") for _ in range(2)}
    eventually(lambda: {n.item for n in w.listed("cara", unread_only=True)} >= mentions, timeout=90)
    newest, older = w.listed("cara")[0], w.listed("cara")[1]
    request = np_.MarkNotificationsReadRequest(parent=w.parent("cara"), up_to=newest.name, request_id=unique("r"))
    first = w.settings.MarkNotificationsRead(request, metadata=w.md["cara"])
    assert first.read_up_to == newest.name
    eventually(lambda: w.unread("cara") == 0, timeout=60)
    assert w.listed("cara", unread_only=True) == [] and all(n.read for n in w.listed("cara"))
    # Again (a retry, and a new call), and an older one: nothing changes.
    assert w.settings.MarkNotificationsRead(request, metadata=w.md["cara"]) == first
    w.settings.MarkNotificationsRead(np_.MarkNotificationsReadRequest(parent=w.parent("cara"), up_to=newest.name), metadata=w.md["cara"])
    w.settings.MarkNotificationsRead(np_.MarkNotificationsReadRequest(parent=w.parent("cara"), up_to=older.name), metadata=w.md["cara"])
    last = w.mention("bob", "cara")
    eventually(lambda: [n.item for n in w.listed("cara", unread_only=True)] == [last], timeout=60)
    assert w.unread("cara") == 1


def test_a_kind_switched_off_is_not_shown(notified: World):
    w = notified
    name = f"{w.parent('bob')}/notificationSettings"
    w.settings.UpdateNotificationSettings(np_.UpdateNotificationSettingsRequest(settings=np_.NotificationSettings(name=name, disabled_kinds=["mention"])), metadata=w.md["bob"])
    w.mention("cara", "bob")
    w.graph.Follow(gp.FollowRequest(parent=w.parent("cara"), target=w.parent("bob")), metadata=w.md["cara"])
    eventually(lambda: ("follower", w.parent("cara")) in kinds_and_items(w.listed("bob")), timeout=90)
    assert not [n for n in w.listed("bob") if n.kind == "mention"]
    assert w.unread("bob") == len(w.listed("bob", unread_only=True))
    # Bad input names the field and stores nothing.
    bad = rpc_error(w.settings.UpdateNotificationSettings, np_.UpdateNotificationSettingsRequest(settings=np_.NotificationSettings(name=name, disabled_kinds=["gossip"])), metadata=w.md["bob"])
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad) == ["settings.disabled_kinds[0]"]
    assert list(w.settings.GetNotificationSettings(np_.GetNotificationSettingsRequest(name=name), metadata=w.md["bob"]).disabled_kinds) == ["mention"]


def test_a_rebuild_by_replay_gives_the_same_notifications_in_the_same_order_and_read_state(notified: World):
    w = notified
    latest = w.mention("cara", "ana")
    eventually(lambda: w.listed("ana")[0].item == latest, timeout=90)
    everything = w.listed("ana")
    w.settings.MarkNotificationsRead(np_.MarkNotificationsReadRequest(parent=w.parent("ana"), up_to=everything[len(everything) // 2].name), metadata=w.md["ana"])
    eventually(lambda: w.unread("ana") == len(everything) // 2, timeout=60)
    before = [(n.name, n.kind, n.item, n.read) for n in w.listed("ana")]
    env = {**os.environ, "COLUMNS": "200", "WC_LOG_FORMAT": "text"}
    rebuilt = subprocess.run([sys.executable, "-m", "tools.cli", "reindex", "notifications"], env=env, capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert [(n.name, n.kind, n.item, n.read) for n in w.listed("ana")] == before
    assert w.unread("ana") == len(everything) // 2
    # A stream resuming after a notification from before the rebuild gets nothing again.
    assert w.watch("ana", after=everything[0].name, wanted=5, timeout=6) == []

"""The visibility matrix for notifications (conventions: test_visibility_matrix.py): a person's
notifications are theirs alone (every other principal kind: NOT_FOUND, as if there were none),
and one about an item the recipient may no longer see is absent from every read of them."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.test_notifications import World, kinds_and_items, notified  # noqa: F401  (the shared world)
from tests.integration.test_search_unified import Stubs  # noqa: F401
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.profiles.v1 import notifications_pb2 as np_
from watercooler.search.v1 import notifications_pb2 as sn

pytestmark = pytest.mark.integration


def covers(*reads: str, kind: str):
    assert kind in ("levels", "parent_changed", "hidden_by_flags"), kind
    return lambda test: test


@covers("ListNotifications", "GetUnreadCount", "WatchNotifications", "GetNotificationSettings", kind="levels")
def test_notifications_are_their_recipients_alone(notified: World):  # noqa: F811
    w = notified
    w.mention("bob", "ana")
    eventually(lambda: w.listed("ana"), timeout=90)
    platform = w.platform
    others = {
        "another employee": w.md["dave"],
        "alumni": platform.metadata(w.ids["ana"] + "-x", "alumni"),
        "guest": platform.metadata(w.ids["ana"], "guest", jams=("jam-x",)),  # a guest token naming ana's id is not ana
        "service": platform.metadata(),
    }
    parent = w.parent("ana")
    for who, md in others.items():
        for call, request in ((w.notifications.ListNotifications, sn.ListNotificationsRequest(parent=parent)), (w.notifications.GetUnreadCount, sn.GetUnreadCountRequest(parent=parent))):
            with pytest.raises(grpc.RpcError) as refused:
                call(request, metadata=md, timeout=30)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND, who
        with pytest.raises(grpc.RpcError) as refused:
            list(w.notifications.WatchNotifications(sn.WatchNotificationsRequest(parent=parent), metadata=md, timeout=30))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, who
    settings = np_.GetNotificationSettingsRequest(name=f"{parent}/notificationSettings")
    with pytest.raises(grpc.RpcError) as refused:
        w.settings.GetNotificationSettings(settings, metadata=w.md["dave"])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert w.settings.GetNotificationSettings(settings, metadata=w.md["ana"]).name == f"{parent}/notificationSettings"


@covers("ListNotifications", "GetUnreadCount", "WatchNotifications", kind="hidden_by_flags")
def test_a_mention_in_a_micropost_hidden_by_flags_is_gone(notified: World):  # noqa: F811
    w = notified
    before = w.listed("dave")
    mention = w.mention("bob", "dave")
    eventually(lambda: ("mention", mention) in kinds_and_items(w.listed("dave")), timeout=90)
    unread = w.unread("dave")
    w.s.posts.FlagItem(pb.FlagItemRequest(name=mention, reason="takedown"), metadata=w.platform.metadata())  # a service hides at once
    eventually(lambda: ("mention", mention) not in kinds_and_items(w.listed("dave")), timeout=90)
    assert w.unread("dave") == unread - 1
    after = before[0].name if before else ""
    if after:
        assert ("mention", mention) not in kinds_and_items(w.watch("dave", after=after, wanted=100, timeout=8))

"""Notifications without servers: who an event tells (the projection's pure part), the ids
that make a replay write nothing twice, and the settings aggregate's rules."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.profiles.domainmodel import NotificationSettings
from services.search.readmodels.projections.notifications import NotificationsProjection, notification_doc, notification_id, template
from watercooler import config
from watercooler.auth import Principal
from watercooler.envelope import decode
from watercooler.errors import InvalidArgument
from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
from watercooler.eventstore import CommandContext, command_meta
from watercooler.posts.v1 import events_pb2 as pe
from watercooler.posts.v1 import library_events_pb2 as le
from watercooler.profiles.v1 import events_pb2 as pre

CTX = CommandContext(Principal("tester", "service"))


def event(payload, aggregate: str = "agg-1", actor: str = "bob", event_id: str = "ev-1"):
    packed = any_pb2.Any()
    packed.Pack(payload)
    return decode(EventEnvelope(event_id=event_id, event_type=payload.DESCRIPTOR.full_name, aggregate_type="X", aggregate_id=aggregate, aggregate_version=1,
                                actor=Actor(subject=actor, kind="employee"), occurred_at=Timestamp(seconds=1_893_456_000), payload=packed).SerializeToString())


@pytest.fixture(scope="module")
def projection() -> NotificationsProjection:
    return NotificationsProjection(config.load())


def test_who_an_event_tells(projection):
    micro = projection.decide(event(pe.MicropostCreated(author_id="bob", text="hi @ana @cy", mentions=["ana", "cy"], reply_to="m0", visibility="INTERNAL")))
    assert [(p.kind, p.recipients, p.owner_of, p.subject_kind) for p in micro] == [("mention", ("ana", "cy"), None, "micropost"), ("reply", (), ("posts", "m0"), "micropost")]
    comment = projection.decide(event(pe.CommentCreated(target="pages/p1", parent="c0", author_id="bob", body="see @ana")))
    assert [(p.kind, p.recipients, p.owner_of, p.fact_of) for p in comment] == [
        ("mention", ("ana",), None, None), ("comment", (), None, ("page_author", "p1")), ("reply", (), ("comments", "c0"), None)]
    assert [(p.kind, p.fact_of) for p in projection.decide(event(le.PageEdited(revision=2, author="bob"), aggregate="p1"))] == [("wiki_edit", ("page_author", "p1"))]
    assert [(p.kind, p.recipients) for p in projection.decide(event(pre.Followed(follower_id="bob", followee_id="ana")))] == [("follower", ("ana",))]
    assert [(p.kind, p.fact_of) for p in projection.decide(event(pre.ConnectionAccepted(accepted_by="ana"), aggregate="conn"))] == [("connection_answer", ("connection_requester", "conn"))]
    assert projection.decide(event(pe.ItemFlagged(flagger_id="x", reason="r"))) == []


def test_a_like_or_comment_on_a_page_tells_the_author_the_event_names_without_a_lookup(projection):
    """The writer names the page's creator on the event: the projection need not have seen the
    page's own events (another partition) to tell them."""
    like = projection.decide(event(pe.Liked(target="pages/p1", person_id="bob", target_author="ana")))
    assert [(p.kind, p.recipients, p.owner_of, p.fact_of, p.subject_kind) for p in like] == [("like", ("ana",), None, None, "wiki_page")]
    comment = projection.decide(event(pe.CommentCreated(target="pages/p1", author_id="bob", body="ok", target_author="ana")))
    assert [(p.kind, p.recipients, p.owner_of, p.fact_of) for p in comment] == [("mention", (), None, None), ("comment", ("ana",), None, None)]
    # Events written before the writer named the author: looked up as before.
    assert [p.fact_of for p in projection.decide(event(pe.Liked(target="pages/p1", person_id="bob")))] == [("page_author", "p1")]


def test_a_notification_id_is_the_same_on_every_replay_and_nobody_is_told_of_their_own_act(projection):
    assert notification_id("ev-1", "ana", "mention") == notification_id("ev-1", "ana", "mention")
    assert len({notification_id("ev-1", "ana", "mention"), notification_id("ev-1", "cy", "mention"), notification_id("ev-1", "ana", "reply"), notification_id("ev-2", "ana", "mention")}) == 4
    (mention,) = [p for p in projection.decide(event(pe.MicropostCreated(author_id="bob", text="@ana", mentions=["ana"]))) if p.kind == "mention"]
    spec = template(mention)
    doc_id, doc = notification_doc(spec, "ana", mention.item, mention.subject_id)
    assert doc["name"] == f"profiles/ana/notifications/{doc_id}" and doc["actor"] == "profiles/bob" and doc["recipient"] == "ana"
    assert notification_doc(spec, "bob", mention.item, mention.subject_id) is None


def test_settings_record_a_change_once_and_name_the_bad_field():
    with command_meta(CTX):
        settings = NotificationSettings(person_id="ana")
        settings.mark_read("profiles/ana/notifications/4b84f727-f490-5775-9d26-318c61e26868")
        settings.mark_read("profiles/ana/notifications/4b84f727-f490-5775-9d26-318c61e26868")
        settings.change_preferences(["mention", "like", "mention"])
        settings.change_preferences(["like", "mention"])
        with pytest.raises(InvalidArgument) as bad:
            settings.mark_read("profiles/cy/notifications/4b84f727-f490-5775-9d26-318c61e26868")
        assert bad.value.field == "up_to"
        with pytest.raises(InvalidArgument) as bad:
            settings.change_preferences(["like", "gossip"])
        assert bad.value.field == "settings.disabled_kinds[1]"
    names = [type(e).__name__ for e in settings.collect_events()]
    assert names == ["NotificationSettingsCreated", "NotificationsMarkedRead", "NotificationPreferencesChanged"]
    assert settings.disabled_kinds == ["like", "mention"]

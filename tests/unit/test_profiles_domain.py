"""Domain rules of communities, the graph and status updates, and that every new event
converts to its envelope (the relay maps attributes onto proto fields by name)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.profiles.domainmodel import (
    CONNECTED,
    NONE,
    PENDING,
    Community,
    Connection,
    Follow,
    MediaFacts,
    Profile,
    StatusUpdate,
    check_photo,
    validate_community_fields,
    validate_status,
)
from services.search.readmodels.projections import ALL
from watercooler.auth import Principal
from watercooler.envelope import decode, to_envelope
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from watercooler.eventstore import CommandContext, command_meta

CTX = CommandContext(Principal("tester", "service"))


def _community(access: str = "OPEN") -> Community:
    with command_meta(CTX):
        return Community.create("guild", validate_community_fields("Guild", "", access), "owner")


def test_invite_only_needs_an_owner_invitation_and_the_last_owner_stays():
    community = _community("INVITE_ONLY")
    with command_meta(CTX):
        with pytest.raises(PermissionDenied):
            community.join("ann")
        community.invite("bob", "owner", by_service=False)
        community.join("bob")
        with pytest.raises(PermissionDenied):  # members may not invite to invite-only communities
            community.invite("ann", "bob", by_service=False)
        with pytest.raises(AlreadyExists):
            community.join("bob")
        with pytest.raises(FailedPrecondition) as last_owner:
            community.leave("owner")
        assert last_owner.value.field == "member"
        community.remove("bob", "owner", by_service=False)
    assert community.members == ["owner"] and community.invited == []


def test_follow_edges_and_connections_move_through_their_states():
    with command_meta(CTX):
        with pytest.raises(InvalidArgument) as itself:
            Follow(follower_id="a", followee_id="a")
        assert itself.value.field == "target"
        edge = Follow(follower_id="a", followee_id="b")
        edge.follow()
        edge.follow()  # again: nothing new
        assert len(edge.pending_events) == 2 and edge.active
        edge.unfollow()
        with pytest.raises(FailedPrecondition):
            edge.unfollow()

        link = Connection(member_ids=["b", "a"])
        assert link.id == Connection.create_id(["a", "b"])
        link.request("b")
        with pytest.raises(FailedPrecondition):
            link.accept("b")  # the requester cannot accept their own request
        with pytest.raises(FailedPrecondition):
            link.request("a")  # b already asked a
        link.accept("a")
        assert link.state == CONNECTED
        link.remove("b")
        assert link.state == NONE
        link.request("a")
        link.decline("b")
        assert link.state == NONE and link.state != PENDING


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"text": "x" * 501}, "text"),
        ({"text": ""}, "text"),
        ({"text": "hi", "photo": "javascript:alert(1)"}, "photo"),
        # A media item's resource name is media/{id}; the old form and URIs are refused.
        ({"text": "hi", "photo": "mediaItems/p1"}, "photo"),
        ({"text": "hi", "photo": "https://example.com/a.jpg"}, "photo"),
        ({"text": "hi", "visibility": "SECRET"}, "visibility"),
        ({"text": "hi", "visibility": "COMMUNITY"}, "community"),
        ({"text": "hi", "visibility": "PUBLIC", "community_id": "guild"}, "community"),
    ],
)
def test_status_update_bounds_name_the_field(fields, field):
    values = {"text": "", "photo": "", "visibility": "PUBLIC", "community_id": ""} | fields
    with pytest.raises(InvalidArgument) as error:
        validate_status(**values)
    assert error.value.field == field


def test_a_500_character_status_and_a_photo_alone_are_fine():
    assert validate_status("é" * 500, "", "PUBLIC", "")["text"] == "é" * 500
    assert validate_status("", "media/p1", "PRIVATE", "")["photo_uri"] == "media/p1"


IMAGE = MediaFacts(owner="profiles/e1", kind="IMAGE", visibility="PUBLIC", removed=False)


@pytest.mark.parametrize(
    ("item", "error"),
    [
        (None, NotFound),  # no such item
        (replace(IMAGE, removed=True), NotFound),
        (replace(IMAGE, owner="profiles/other", visibility="RESTRICTED"), NotFound),  # not visible to the person: as if absent
        (replace(IMAGE, owner="profiles/other"), PermissionDenied),  # someone else's public photo
        (replace(IMAGE, kind="VIDEO"), FailedPrecondition),
        (replace(IMAGE, visibility="INTERNAL"), FailedPrecondition),  # alumni and guests read profiles too
    ],
)
def test_an_avatar_is_a_public_image_of_the_persons_own(item, error):
    with command_meta(CTX):
        profile = Profile.create("e1", {"display_name": "Ann"})
        with pytest.raises(error) as refused:
            profile.set_photo("media/m1", item)
    assert refused.value.field == "photo" and profile.photo == ""


def test_a_status_photo_is_one_the_author_may_see():
    check_photo("media/m1", replace(IMAGE, owner="profiles/other", visibility="INTERNAL"), Principal("e1", "employee"))
    for item, author in ((replace(IMAGE, owner="profiles/other", visibility="INTERNAL"), Principal("e1", "alumni")),
                         (replace(IMAGE, visibility="RESTRICTED", owner="profiles/other"), Principal("e1", "employee")),
                         (replace(IMAGE, removed=True), Principal("e1", "employee")), (None, Principal("e1", "employee"))):
        with pytest.raises(NotFound) as refused:
            check_photo("media/m1", item, author)
        assert refused.value.field == "photo"


def test_every_new_event_becomes_an_envelope_and_the_projections_keeping_its_aggregate_read_or_skip_it():
    with command_meta(CTX):
        profile = Profile.create("e1", {"display_name": "Ann"})
        profile.leave_company("retired")
        profile.set_photo("media/m1", IMAGE)
        profile.set_photo("media/m1", IMAGE)  # unchanged: records nothing
        profile.set_photo("", None)
        profile.accept_guidelines("v2", "v2")
        community = _community("INVITE_ONLY")
        community.invite("x", "owner", by_service=False)
        community.join("x")
        community.invite("y", "owner", by_service=False)
        community.remove("y", "owner", by_service=False)
        community.leave("x")
        edge = Follow(follower_id="a", followee_id="b")
        edge.follow()
        edge.unfollow()
        link = Connection(member_ids=["a", "b"])
        link.request("a")
        link.accept("b")
        link.remove("a")
        link.request("b")
        link.decline("a")
        status = StatusUpdate(status_id="s1", **validate_status("hello", "", "PUBLIC", ""), author_id="a")
        status.delete("a")
    names = set()
    for aggregate in (profile, community, edge, link, status):
        docs = {p.name: None for p in ALL}
        for sequence, domain_event in enumerate(aggregate.collect_events(), start=1):
            event = decode(to_envelope("profiles", domain_event, sequence).SerializeToString())
            names.add(event.type_name)
            keepers = [cls for cls in ALL if event.envelope.aggregate_type in cls.aggregate_types]
            assert keepers, f"no projection keeps {event.envelope.aggregate_type} events"
            for projection_class in keepers:
                projection = projection_class.__new__(projection_class)
                try:
                    docs[projection.name] = projection.apply(docs[projection.name], event)
                except Exception as exc:  # SkipEvent is fine; anything else is a bug
                    assert type(exc).__name__ == "SkipEvent", (projection.name, event.type_name, exc)
    assert {"CommunityMemberRemoved", "ConnectionDeclined", "StatusUpdateDeleted", "Unfollowed", "ProfileBecameAlumni", "ProfilePhotoSet", "GuidelinesAccepted"} <= names


def test_each_projection_names_aggregates_its_source_services_define():
    """A misspelt aggregate type would silently drop every event of it."""
    from eventsourcing.domain import BaseAggregate

    import services.jams.domainmodel
    import services.posts.domainmodel
    import services.posts.library.domainmodel
    import services.profiles.domainmodel

    modules = {"profiles": [services.profiles.domainmodel], "jams": [services.jams.domainmodel],
               "posts": [services.posts.domainmodel, services.posts.library.domainmodel]}
    for projection_class in ALL:
        defined = {name for source in projection_class.sources for module in modules[source]
                   for name, value in vars(module).items() if isinstance(value, type) and issubclass(value, BaseAggregate)}
        assert projection_class.aggregate_types, projection_class.name
        assert projection_class.aggregate_types <= defined, (projection_class.name, projection_class.aggregate_types - defined)


def test_a_projection_reads_and_writes_only_the_documents_of_aggregates_it_keeps():
    """Four projections share the profiles topic: people must not ask Elasticsearch for the
    documents of a community's events, nor decode them, nor count them as written."""
    import asyncio

    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler import config

    class RecordingElasticsearch:
        def __init__(self):
            self.read_ids: list[str] = []
            self.written_ids: list[str] = []

        async def mget(self, **request):
            self.read_ids.extend(request["ids"])
            return {"docs": [{"_index": "people", "_id": i, "found": False} for i in request["ids"]]}

        async def bulk(self, **request):
            self.written_ids.extend(op["index"]["_id"] for op in request["operations"] if "index" in op)
            return {"errors": False, "items": []}

    with command_meta(CTX):
        profile = Profile.create("e1", {"display_name": "Ann"})
    community = _community()
    values = [to_envelope("profiles", e, n).SerializeToString() for n, e in enumerate(community.collect_events() + profile.collect_events(), 1)]
    es = RecordingElasticsearch()
    result = asyncio.run(PeopleProjection(config.load()).apply_batch(es, values, lambda value: value))
    # A profile's first event makes its document alone: written without being read first.
    assert (es.read_ids, es.written_ids) == ([], [str(profile.id)])
    assert (result.written, result.other_aggregates, result.failed) == (1, 1, [])


def test_big_communities_load_from_snapshots_and_publish_only_events(tmp_path, monkeypatch):
    from services.profiles.application import ProfilesApplication
    from watercooler import config

    monkeypatch.setenv("WC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WC_STORE", "sqlite")
    app = ProfilesApplication(config.load())
    members = [f"p{i:03d}" for i in range(230)]
    for employee in members:
        app.create_profile(CTX, employee, {"display_name": employee}, "")
    app.create_community(CTX, "big-one", {"display_name": "Big", "description": "", "access": "OPEN"}, members[0], "")
    for employee in members[1:]:
        app.change_membership(CTX, "join", "big-one", employee, "")
    community = app.get_community("big-one")
    assert community.members == members and community.version == 230
    assert [s.originator_version for s in app.snapshots.get(community.id)] == [100, 200]
    published, start = [], 1
    while section := app.notification_log.select(start, 10):
        published.extend(n.topic.rsplit(".", 1)[-1] for n in section)
        start = section[-1].id + 1
    assert "Snapshot" not in set(published) and published.count("CommunityMemberJoined") == 229
    app.close()


def test_only_the_current_guidelines_version_is_accepted_and_accepting_it_again_records_nothing():
    with command_meta(CTX):
        profile = Profile.create("e1", {"display_name": "Ann"})
        assert profile.guidelines_version == ""
        with pytest.raises(FailedPrecondition) as old:
            profile.accept_guidelines("2009-01", "2026-12")
        assert old.value.field == "version" and "2026-12" in old.value.message
        profile.accept_guidelines("2026-12", "2026-12")
        profile.accept_guidelines("2026-12", "2026-12")
    assert profile.guidelines_version == "2026-12"
    assert [type(e).__name__ for e in profile.collect_events()] == ["ProfileCreated", "GuidelinesAccepted"]


def test_a_manager_this_replica_created_is_not_read_back_for_each_new_report(tmp_path, monkeypatch):
    from services.profiles.application import NewProfile, ProfilesApplication
    from watercooler import config

    monkeypatch.setenv("WC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WC_STORE", "sqlite")
    app = ProfilesApplication(config.load())
    app.create_profile(CTX, "boss", {"display_name": "Boss"}, "")
    app.batch_create_profiles([NewProfile(CTX, "lead", {"display_name": "Lead", "manager_id": "boss"}, "")])
    reads: list[object] = []
    select_events = app.recorder.select_events
    monkeypatch.setattr(app.recorder, "select_events", lambda *a, **k: reads.append(a) or select_events(*a, **k))
    app.create_profile(CTX, "dev1", {"display_name": "Dev", "manager_id": "lead"}, "")  # lead: saved by a batch here
    app.batch_create_profiles([NewProfile(CTX, "dev2", {"display_name": "Dev", "manager_id": "boss"}, "")])  # boss: by a create
    assert reads == []
    with pytest.raises(InvalidArgument) as unknown:  # an unknown manager is still read, and refused
        app.create_profile(CTX, "dev3", {"display_name": "Dev", "manager_id": "nobody"}, "")
    assert unknown.value.field == "manager" and len(reads) == 1
    app.close()

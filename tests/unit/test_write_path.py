"""The projections' share of a write: which records each projection is handed, and which
documents are read before they are written."""

from __future__ import annotations

import asyncio

from services.profiles.domainmodel import Community, Profile, validate_community_fields
from services.search.readmodels.projections import ALL
from services.search.readmodels.projections.audit import AuditProjection
from services.search.readmodels.projections.comments import CommentsProjection
from services.search.readmodels.projections.people import PeopleProjection
from services.search.readmodels.projections.posts import PostsProjection
from services.search.readmodels.projections.wiki import WikiProjection
from watercooler import config, processor
from watercooler.auth import Principal
from watercooler.envelope import EventEnvelope, to_envelope
from watercooler.eventstore import CommandContext, command_meta
from watercooler.projection import DocumentProjection

CTX = CommandContext(Principal("tester", "service"))


class RecordingElasticsearch:
    """Remembers what was read and written; ``stored`` answers the reads (id -> (source, version))."""

    def __init__(self, stored: dict[str, tuple[dict, int]] | None = None):
        self.stored = stored or {}
        self.reads: list[tuple[str, list[str]]] = []
        self.writes: list[dict] = []

    async def mget(self, index, ids, **_):
        self.reads.append((index, list(ids)))
        return {"docs": [{"_index": index, "_id": i, "found": True, "_source": self.stored[i][0], "_version": self.stored[i][1]}
                         if i in self.stored else {"_index": index, "_id": i, "found": False} for i in ids]}

    async def bulk(self, operations, **_):
        self.writes += [{**action["index"], "source": source} for action, source in zip(operations[::2], operations[1::2], strict=True)]
        return {"errors": False, "items": []}


def _profile_events(employee_id: str = "e1"):
    with command_meta(CTX):
        profile = Profile.create(employee_id, {"display_name": "Ann", "department": "Sales"})
        profile.update({"title": "Lead"})
    return profile, [to_envelope("profiles", event, n).SerializeToString() for n, event in enumerate(profile.collect_events(), 1)]


def test_a_new_profile_is_written_without_reading_it_first_and_a_later_event_reads_it():
    settings = config.load()
    profile, (created, updated) = _profile_events()
    es = RecordingElasticsearch()
    result = asyncio.run(PeopleProjection(settings).apply_batch(es, [created, updated], lambda value: value))
    assert es.reads == []
    assert [(w["_id"], w["version"], w["version_type"], w["source"]["title"]) for w in es.writes] == [(str(profile.id), 2, "external", "Lead")]
    assert result.written == 1

    # Its next event alone: the document is read, and the event applied to it.
    with command_meta(CTX):
        profile.update({"title": "Head"})
    (later,) = [to_envelope("profiles", event, 3).SerializeToString() for event in profile.collect_events()]
    es = RecordingElasticsearch({str(profile.id): (es.writes[0]["source"], 2)})
    asyncio.run(PeopleProjection(settings).apply_batch(es, [later], lambda value: value))
    assert es.reads == [(settings.index_alias("people"), [str(profile.id)])]
    assert [(w["version"], w["source"]["title"], w["source"]["department"]) for w in es.writes] == [(3, "Head", "Sales")]


def test_the_audit_trail_writes_a_created_aggregates_events_without_reading_anything():
    """The audit documents (one per event) and the subject of an aggregate created in the batch
    need no read; a later event of an aggregate created before reads its subject only."""
    settings = config.load()
    profile, (created, updated) = _profile_events()
    es = RecordingElasticsearch()
    result = asyncio.run(AuditProjection(settings).apply_batch(es, [created, updated], lambda value: value))
    assert es.reads == []
    audit = [w for w in es.writes if w["_index"] == settings.index_alias("audit")]
    assert sorted((w["source"]["event_type"], w["source"]["resource"], w["source"]["target_owner"], w["version"]) for w in audit) == [
        ("ProfileCreated", "profiles/e1", "profiles/e1", 1), ("ProfileUpdated", "profiles/e1", "profiles/e1", 2)]
    assert result.written == 2

    es = RecordingElasticsearch({str(profile.id): ({"resource": "profiles/e1", "owner": "profiles/e1"}, 1)})
    asyncio.run(AuditProjection(settings).apply_batch(es, [updated], lambda value: value))
    assert es.reads == [(settings.index_alias("audit-subjects"), [str(profile.id)])]
    assert [(w["source"]["resource"], w["source"]["target_owner"]) for w in es.writes] == [("profiles/e1", "profiles/e1")]


def test_one_agent_hands_each_projection_only_the_records_it_keeps():
    settings = config.load()
    projections = [cls(settings) for cls in ALL]
    topics = {p.name: frozenset(settings.topic(s) for s in p.sources) for p in projections}
    profiles_topic, posts_topic = settings.topic("profiles"), settings.topic("posts")
    profile, (created, updated) = _profile_events()
    with command_meta(CTX):
        community = Community.create("guild", validate_community_fields("Guild", "", "OPEN"), "owner")
        profile.erase()
    (erased,) = [to_envelope("profiles", event, 3).SerializeToString() for event in profile.collect_events()]
    (community_created,) = [to_envelope("profiles", event, 4).SerializeToString() for event in community.collect_events()]
    records = [(profiles_topic, created), (profiles_topic, community_created), (profiles_topic, b"not an envelope"), (profiles_topic, None),
               (profiles_topic, updated), (profiles_topic, erased), (posts_topic, b"\x00bad")]
    routed = {p.name: (kept, passed_over) for p, kept, passed_over in processor.route(projections, topics, records, lambda r: r[0], lambda r: r[1])}

    readers_of_profiles = [p.name for p in projections if profiles_topic in topics[p.name]]
    assert len(readers_of_profiles) > 10
    people, _ = routed[PeopleProjection.name]
    assert [value for _, value in people] == [created, b"not an envelope", None, updated, erased]
    assert routed[PeopleProjection.name][1] == 1  # the community's event
    # A projection reading the profiles topic for erasures only gets the erasure (and the bad record).
    assert [value for _, value in routed[PostsProjection.name][0]] == [b"not an envelope", None, erased, b"\x00bad"]
    assert routed[PostsProjection.name][1] == 3
    # An unreadable record reaches every projection of its topic, which dead-letters it.
    for name in readers_of_profiles:
        assert (profiles_topic, b"not an envelope") in routed[name][0], name
    for name, (kept, _) in routed.items():
        assert ((posts_topic, b"\x00bad") in kept) == (posts_topic in topics[name]), name
    # A projection keeping an index of its own from other aggregates' events (the comments'
    # audiences, from their targets) is handed those events too.
    post = EventEnvelope(event_id="ev1", aggregate_id="p1", aggregate_version=1, aggregate_type="Post", event_type="watercooler.posts.v1.PostCreated")
    routed_post = {p.name: kept for p, kept, _ in processor.route(projections, topics, [(posts_topic, post.SerializeToString())], lambda r: r[0], lambda r: r[1])}
    assert routed_post[CommentsProjection.name] and routed_post[PostsProjection.name] and not routed_post[WikiProjection.name]
    for p in projections:  # whatever a projection's parts keep, it is handed
        for part in vars(p).values():
            if isinstance(part, DocumentProjection):
                for kept in part._kept_types:
                    assert p.keeps(EventEnvelope(aggregate_type=kept, event_type="watercooler.profiles.v1.ProfileErased")), (p.name, part.name, kept)
    # Each projection keeps its records in their order, and only those decode keeps.
    for p in projections:
        kept, passed_over = routed[p.name]
        assert kept == [r for r in records if r in kept]
        assert len(kept) + passed_over == sum(1 for r in records if r[0] in topics[p.name])


def test_the_audit_trail_leaves_personal_fields_sealed_and_asks_for_no_key(monkeypatch):
    """The audit documents hold ids and envelopes only: opening a profile's sealed fields there
    (twice, for the audit documents and the subjects) was a decryption per field for nothing."""
    from watercooler import personaldata
    from watercooler.envelope import EventEnvelope
    from watercooler.profiles.v1.events_pb2 import ProfileCreated

    settings = config.load()
    _, (created, _) = _profile_events()
    key = personaldata.generate_key()
    envelope = EventEnvelope.FromString(created)
    payload = ProfileCreated()
    envelope.payload.Unpack(payload)
    payload.display_name = personaldata.seal(envelope.aggregate_id, key, "display_name", "Ann")
    envelope.payload.Pack(payload)
    sealed = envelope.SerializeToString()
    asked: list[set[str]] = []

    class Ring:
        def keys(self, key_ids):
            asked.append(set(key_ids))
            return {envelope.aggregate_id: key}

    monkeypatch.setattr(personaldata, "shared_key_ring", lambda *_, **__: Ring())
    es = RecordingElasticsearch()
    asyncio.run(AuditProjection(settings).apply_batch(es, [sealed], lambda value: value))
    assert asked == [] and len(es.writes) == 2  # the subject and the audit document
    asyncio.run(PeopleProjection(settings).apply_batch(es, [sealed], lambda value: value))
    assert asked == [{envelope.aggregate_id}]
    assert es.writes[-1]["source"]["display_name"] == "Ann"


class BlogsElasticsearch(RecordingElasticsearch):
    """Also remembers the refreshes and searches of the blogs index (it holds no blog here)."""

    def __init__(self):
        super().__init__()
        self.looked_for_blogs = 0
        es = self

        class Indices:
            async def refresh(self, index, **_):
                es.looked_for_blogs += 1

        self.indices = Indices()

    async def search(self, index, **_):
        self.looked_for_blogs += 1
        return {"hits": {"hits": []}}


def test_a_new_profile_looks_for_no_blog_of_its_owner_and_a_changed_one_does():
    """A blog is made only for an existing profile, with its facts as of then: a profile's first
    event keeps the owner's facts without refreshing and searching the blogs index; a later
    event (a change of name) looks for the owner's blogs to bring them along."""
    from services.search.readmodels.projections.blogs import BlogsProjection

    settings = config.load()
    profile, (created, updated) = _profile_events()
    projection = BlogsProjection(settings)
    projection._owners_ready = True  # the owners index exists
    es = BlogsElasticsearch()
    asyncio.run(projection.apply_batch(es, [created], lambda value: value))
    assert [(w["_id"], w["version"]) for w in es.writes] == [(str(profile.id), 1)]  # the owner's facts are kept
    assert es.looked_for_blogs == 0
    es.stored[str(profile.id)] = (es.writes[0]["source"], 1)
    asyncio.run(projection.apply_batch(es, [updated], lambda value: value))
    assert es.looked_for_blogs == 2  # the blogs index refreshed and searched for the owner's blogs

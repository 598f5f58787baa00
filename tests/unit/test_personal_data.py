"""Sealed personal fields (watercooler.personaldata) and the event store's sealing mapper."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time

import grpc
import pytest

from watercooler import personaldata as pd
from watercooler.envelope import to_envelope
from watercooler.errors import FailedPrecondition


def test_a_sealed_field_opens_only_with_its_key_and_in_its_place():
    ring = pd.MemoryKeyRing()
    key = ring.keys(["e1"], create=True)["e1"]
    sealed = pd.seal("e1", key, "body", "Ünïcode and secrets")
    assert sealed.startswith(pd.PREFIX) and "secrets" not in sealed and pd.key_id_of(sealed) == "e1"
    assert pd.seal("e1", key, "body", "Ünïcode and secrets") != sealed  # a fresh nonce each time
    assert pd.unseal(sealed, "body", {"e1": key}) == "Ünïcode and secrets"
    # Moved to another field, or opened with another person's key: the tombstone, never the text.
    assert pd.unseal(sealed, "title", {"e1": key}) == ""
    assert pd.unseal(sealed, "body", {"e1": pd.generate_key()}) == ""
    assert pd.unseal(pd.seal("e1", key, "display_name", "Ana"), "display_name", {}) == pd.FORMER_EMPLOYEE
    assert pd.unseal("plain", "body", {}) == "plain"  # events stored before sealing read as they are


def test_a_cipher_made_once_seals_each_value_with_a_nonce_of_its_own_and_opens_as_the_key_does():
    key = pd.generate_key()
    cipher = pd.ciphers({"e1": key})["e1"]
    values = [pd.seal("e1", cipher, "body", "the same words") for _ in range(50)]
    nonces = {v.rsplit(":", 1)[1][:16] for v in values}  # the base64 of the 12 nonce bytes
    assert len(nonces) == 50  # a cipher kept for many values never repeats a nonce
    # Either form seals and opens the other's values; another person's cipher opens nothing.
    assert {pd.unseal(v, "body", {"e1": key}) for v in values} == {"the same words"}
    assert pd.unseal(pd.seal("e1", key, "body", "w"), "body", {"e1": cipher}) == "w"
    assert pd.unseal(values[0], "body", pd.ciphers({"e1": pd.generate_key()})) == ""
    assert pd.unseal(values[0], "title", {"e1": cipher}) == ""


def test_an_event_state_is_sealed_by_its_rule_and_opened_to_tombstones_once_erased():
    ring = pd.MemoryKeyRing()
    state = {"author_id": "e1", "text": "hello #zork", "hashtags": ["zork"], "mentions": ["e2"], "visibility": "INTERNAL"}
    sealed = pd.seal_state("watercooler.posts.v1.MicropostCreated", state, "agg", "e1", ring)
    assert "hello" not in str(sealed) and "zork" not in str(sealed)
    assert sealed["mentions"] == ["e2"] and sealed["visibility"] == "INTERNAL" and sealed["author_id"] == "e1"
    opened = dict(sealed)
    pd.open_state("watercooler.posts.v1.MicropostCreated", opened, ring)
    assert opened == state
    ring.destroy(["e1"])
    pd.open_state("watercooler.posts.v1.MicropostCreated", sealed, ring)
    assert sealed["text"] == "" and sealed["hashtags"] == []
    with pytest.raises(FailedPrecondition):
        pd.seal_state("watercooler.posts.v1.MicropostCreated", state, "agg", "e1", ring)  # an erased person writes nothing more


def test_edits_are_sealed_with_the_actors_key_and_profiles_with_the_aggregates():
    assert pd.PERSONAL_FIELDS["watercooler.posts.v1.PostEdited"].key_id({}, "agg", "e7") == "e7"
    assert pd.PERSONAL_FIELDS["watercooler.profiles.v1.ProfileUpdated"].key_id({"display_name": "x"}, "agg", "hr") == "agg"


def test_the_cache_keeps_an_erasure_for_good_and_a_key_a_while():
    asked: list[tuple[list[str], bool]] = []
    now = [0.0]
    ring = pd.MemoryKeyRing()

    def fetch(ids, create):
        asked.append((sorted(ids), create))
        return ring.keys(ids, create)

    cache = pd.CachedKeys(fetch, ttl=10, clock=lambda: now[0])
    key = cache.keys(["e1"], create=True)["e1"]
    assert cache.keys(["e1"]) == {"e1": key} and len(asked) == 1
    ring.destroy(["e1"])
    now[0] = 11
    assert cache.keys(["e1"], create=True) == {} and len(asked) == 2
    assert cache.keys(["e1"], create=True) == {} and len(asked) == 2  # erased: never asked again


def test_the_store_holds_only_sealed_text_and_the_relay_publishes_it_sealed(tmp_path):
    from services.posts.application import PostsApplication
    from tests.unit.test_posts_domain import _Accepted, _ctx, _Directory, _Members
    from watercooler import config

    ring = pd.MemoryKeyRing()
    settings = dataclasses.replace(config.load(), data_dir=tmp_path, store="sqlite", namespace="")
    app = PostsApplication(settings, profiles=_Directory(), membership=_Members({}), guidelines=_Accepted(), personal_keys=ring)
    try:
        micro = app.create_micropost(_ctx("ana"), {"text": "the zquorble plan", "visibility": "INTERNAL"}, "f1")
        stored = sqlite3.connect(app.settings.service_data_dir / "default" / "posts.sqlite").execute("SELECT state FROM stored_events").fetchall()
        assert stored and not any(b"zquorble" in bytes(state) for (state,) in stored)
        assert app.repository.get(micro.id).text == "the zquorble plan"  # the service reads it opened
        notification = app.recorder.select_notifications(start=1, limit=10)[0]
        envelope = to_envelope("posts", app.mapper.to_domain_event(notification, open_sealed=False), sequence=1)
        assert b"zquorble" not in envelope.SerializeToString()
        ring.destroy(["ana"])
        app.forget_cached_aggregates()
        assert app.repository.get(micro.id).text == ""  # replayed after the erasure: the tombstone
    finally:
        app.close()


def test_a_service_hears_of_an_erasure_when_it_asks_again_for_the_keys_it_holds():
    ring, erasures = pd.MemoryKeyRing(), []
    cache = pd.CachedKeys(ring.keys, ttl=3600, on_erased=lambda: erasures.append(1))
    cache.keys(["e1", "e2"], create=True)
    assert cache.revalidate() == 0 and erasures == []
    ring.destroy(["e1"])
    assert cache.revalidate() == 1 and erasures == [1]  # the service forgets what it opened with it
    assert set(cache.keys(["e1", "e2"])) == {"e2"}
    cache.close()


def test_a_closed_cache_stops_asking_again_for_its_keys():
    """Its application closes the store the revalidation reads: a round after that only fails."""
    ring, asked = pd.MemoryKeyRing(), []

    def fetch(key_ids, create):
        asked.append(create)
        return ring.keys(key_ids, create)

    cache = pd.CachedKeys(fetch, ttl=0.02, on_erased=lambda: None)
    cache.keys(["e1"], create=True)
    eventually_asked = time.monotonic() + 5
    while asked.count(False) < 2 and time.monotonic() < eventually_asked:
        time.sleep(0.01)
    assert asked.count(False) >= 2, "revalidated while open"
    cache.close()
    cache._watcher.join(timeout=2)
    assert not cache._watcher.is_alive()
    rounds = len(asked)
    time.sleep(0.1)
    assert len(asked) == rounds


def test_an_application_closes_the_key_ring_it_made_and_not_one_handed_in(tmp_path, monkeypatch):
    from services.posts.application import PostsApplication
    from services.profiles.application import ProfilesApplication
    from watercooler import config

    monkeypatch.setenv("WC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WC_STORE", "sqlite")
    profiles = ProfilesApplication(config.load())
    made = profiles.personal_keys
    made.keys(["e1"], create=True)  # starts its revalidation
    profiles.close()
    made._watcher.join(timeout=2)
    assert not made._watcher.is_alive()
    handed_in = pd.CachedKeys(pd.MemoryKeyRing().keys, ttl=3600, on_erased=lambda: None)
    handed_in.keys(["e2"], create=True)
    PostsApplication(config.load(), personal_keys=handed_in).close()
    assert handed_in._watcher.is_alive() and not handed_in._closed.is_set()
    handed_in.close()


def test_a_remote_key_ring_asks_for_many_keys_in_slices_the_service_accepts():
    """A projection batch or a topic reader may need more keys than one call may name."""
    from types import SimpleNamespace

    from watercooler.config import Settings

    calls: list[int] = []

    class Stub:
        def GetPersonalDataKeys(self, request, metadata=None, timeout=None):
            calls.append(len(request.key_ids))
            assert len(request.key_ids) <= pd.MAX_KEY_IDS_PER_CALL, "the service refuses more (INVALID_ARGUMENT)"
            return SimpleNamespace(keys=[SimpleNamespace(key_id=k, key=b"k" * 32) for k in request.key_ids])

    ring = pd.RemoteKeyRing(Settings(), "test")
    ring._keys_stub = lambda: Stub()
    wanted = [f"p{i:05d}" for i in range(2 * pd.MAX_KEY_IDS_PER_CALL + 5)]
    assert set(ring.keys(wanted)) == set(wanted)
    assert calls == [pd.MAX_KEY_IDS_PER_CALL, pd.MAX_KEY_IDS_PER_CALL, 5]


def test_directory_facts_bookmark_urls_and_reasons_are_sealed_with_the_key_of_whose_they_are():
    ring = pd.MemoryKeyRing()
    profile = {"employee_id": "e1", "display_name": "Ann", "sort_name": "", "title": "", "bio": "", "photo_uri": "", "department": "Zorbing",
               "country": "DE", "expertise": ["quux"], "languages": ["de"], "manager_id": "e0"}
    sealed = pd.seal_state("watercooler.profiles.v1.ProfileCreated", profile, "prof-e1", "hr", ring)
    assert not {"Zorbing", "DE", "quux", "de"} & set(str(sealed).replace("'", " ").split())
    assert sealed["manager_id"] == "e0"  # a reference to someone else: stays
    assert pd.sealed_key_ids("watercooler.profiles.v1.ProfileCreated", sealed) == {"prof-e1"}
    cases = {  # event: (state, key id)
        "watercooler.profiles.v1.ProfileBecameAlumni": ({"reason": "moved to Zorbing"}, "prof-e1"),
        "watercooler.posts.v1.BookmarkCreated": ({"owner_id": "e1", "url": "https://zorbing.example/x"}, "e1"),
        "watercooler.posts.v1.BlogCreated": ({"owner_id": "e1", "owner_department": "Zorbing", "owner_country": "DE"}, "e1"),
        **{f"watercooler.{service}.v1.ItemFlagged": ({"flagger_id": "e1", "reason": "Zorbing spam"}, "e1") for service in ("profiles", "posts", "jams")},
        **{f"watercooler.{service}.v1.{name}": ({"moderator_id": "e1", "reason": "Zorbing off topic"}, "e1")
           for service in ("profiles", "posts", "jams") for name in ("ItemHiddenByModerator", "ItemRestoredByModerator")},
    }
    for event_type, (state, key_id) in cases.items():
        sealed_state = pd.seal_state(event_type, state, "prof-e1", "someone-else", ring)
        assert "Zorbing" not in str(sealed_state) and "zorbing" not in str(sealed_state), event_type
        assert pd.sealed_key_ids(event_type, sealed_state) == {key_id}, event_type
    # A code the platform writes is nobody's data.
    assert pd.personal("watercooler.posts.v1.ItemRestored") is None
    opened = dict(sealed)
    pd.open_state("watercooler.profiles.v1.ProfileCreated", opened, ring)
    assert opened == profile
    ring.destroy(["prof-e1"])
    pd.open_state("watercooler.profiles.v1.ProfileCreated", sealed, ring)
    assert (sealed["department"], sealed["country"], sealed["expertise"], sealed["languages"]) == ("", "", [], [])


def test_an_erased_profile_keeps_no_directory_fact_in_the_service_nor_in_the_people_index():
    from services.profiles.domainmodel import Profile
    from services.search.readmodels.projections.blogs import BlogsProjection
    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler import config
    from watercooler.auth import Principal
    from watercooler.envelope import decode
    from watercooler.eventstore import CommandContext, command_meta

    with command_meta(CommandContext(Principal("tester", "service"))):
        profile = Profile.create("e1", {"display_name": "Ann", "department": "Zorbing", "country": "DE", "expertise": ["quux"], "languages": ["de"]})
        profile.erase()
    assert (profile.department, profile.country, profile.expertise, profile.languages) == ("", "", [], [])
    people = PeopleProjection(config.load())
    doc = None
    profile_events = profile.collect_events()
    for n, event in enumerate(profile_events, 1):
        doc = people.apply(doc, decode(to_envelope("profiles", event, n).SerializeToString()))
    # Empty, not a tombstone string: a facet or a filter on expertise counts nothing of hers.
    assert (doc["department"], doc["country"], doc["expertise"], doc["languages"]) == ("", "", [], [])
    assert doc["employee_id"] == "e1" and doc["display_name"] == pd.FORMER_EMPLOYEE
    # Nor on her blogs (the blog directory and the blogs per department follow their owner).
    owner = {"employee_id": "e1", "owner_display_name": "Ann", "owner_sort_name": "Ann", "owner_department": "Zorbing", "owner_country": "DE"}
    erased = decode(to_envelope("profiles", profile_events[-1], len(profile_events)).SerializeToString())
    assert BlogsProjection.owner_of(owner, erased) == {**owner, "owner_display_name": pd.FORMER_EMPLOYEE, "owner_sort_name": pd.FORMER_EMPLOYEE,
                                                       "owner_department": "", "owner_country": "", "erased": True}


def test_the_audit_trail_shows_the_reason_a_person_gave_and_only_theirs(monkeypatch):
    from services.search.readmodels.projections.audit import AuditProjection
    from watercooler import config
    from watercooler.envelope import decode
    from watercooler.events.v1.envelope_pb2 import EventEnvelope
    from watercooler.posts.v1 import events_pb2

    def event(payload, name: str, actor: str):
        envelope = EventEnvelope(event_id=f"ev-{name}", event_type=f"watercooler.posts.v1.{name}", aggregate_type="Flaggable", aggregate_id="p1",
                                 aggregate_version=2, source="posts")
        envelope.actor.subject = actor
        envelope.payload.Pack(payload)
        envelope.occurred_at.GetCurrentTime()
        return decode(envelope.SerializeToString())

    audit = AuditProjection(config.load())
    flagged = audit.apply(None, event(events_pb2.ItemFlagged(flagger_id="e2", reason="spam about zorbing"), "ItemFlagged", "e2"))
    restored = audit.apply(None, event(events_pb2.ItemRestored(reason="votes"), "ItemRestored", "e3"))
    assert (flagged["reason"], flagged["actor"], restored["reason"]) == ("spam about zorbing", "e2", "")
    # An erasure of the actor replaces it (DocumentProjection.erase_people, by the actor field),
    # though the trail keeps ProfileErased as one more event of the profile.
    assert audit.erased_fields == {"reason": ""} and audit.erased_by == ("actor",)
    from services.profiles.domainmodel import Profile
    from watercooler.auth import Principal
    from watercooler.eventstore import CommandContext, command_meta
    from watercooler.projection import BatchResult

    monkeypatch.setattr(pd, "forget_erased", lambda settings, event: None)
    with command_meta(CommandContext(Principal("tester", "service"))):
        profile = Profile.create("e2", {"display_name": "Eve"})
        profile.erase()
    result = BatchResult()
    records = [to_envelope("profiles", e, n).SerializeToString() for n, e in enumerate(profile.collect_events(), 1)]
    assert [e.type_name for _, e in asyncio.run(audit.decode(records, lambda value: value, result))] == ["ProfileCreated", "ProfileErased"]
    assert result.erased == ["e2"]


def test_an_export_leaves_out_who_else_acted_on_the_persons_items_and_what_they_said():
    from services.search.personal_data import without_someone_elses
    from services.search.readmodels import indices

    hers = ["e1", "profiles/e1"]
    flagged_by_her = {"id": "a", "actor": "e1", "target_owner": "profiles/e2", "reason": "spam"}
    her_item_flagged = {"id": "b", "actor": "e2", "actor_kind": "employee", "target_owner": "profiles/e1", "event_type": "ItemFlagged",
                        "reason": "I dislike e1"}
    assert without_someone_elses(indices.AUDIT, flagged_by_her, hers) == flagged_by_her
    assert without_someone_elses(indices.AUDIT, her_item_flagged, hers) == {"id": "b", "target_owner": "profiles/e1", "event_type": "ItemFlagged"}
    assert without_someone_elses(indices.POSTS, {"author_id": "e1", "reason": "x"}, hers) == {"author_id": "e1", "reason": "x"}
RESULTS = "watercooler.jams.v1.ResultsPublished"


def _results_state() -> dict:
    return {"jam_id": "j1", "top_n": 2, "votes_counted": 9, "entries": [
        {"rank": 1, "idea_id": "i1", "title": "the glorptastic idea", "votes": 5, "author": "e1"},
        {"rank": 2, "idea_id": "i2", "title": "the snorkwise idea", "votes": 4, "author": "e2"},
        {"rank": 3, "idea_id": "i3", "title": "published before authors were copied", "votes": 1}]}


def test_titles_inside_a_repeated_nested_message_are_sealed_each_with_its_authors_key():
    ring = pd.MemoryKeyRing()
    state = _results_state()
    sealed = pd.seal_state(RESULTS, state, "jam", "jams-scheduler", ring)
    assert "glorptastic" not in str(sealed) and "snorkwise" not in str(sealed)
    assert [pd.key_id_of(e["title"]) for e in sealed["entries"][:2]] == ["e1", "e2"]
    assert sealed["entries"][2]["title"] == "published before authors were copied"  # names nobody: as it is
    assert [e["votes"] for e in sealed["entries"]] == [5, 4, 1] and state == _results_state()  # the state itself untouched
    assert pd.sealed_key_ids(RESULTS, sealed) == {"e1", "e2"}
    opened = {**sealed, "entries": [dict(e) for e in sealed["entries"]]}
    pd.open_state(RESULTS, opened, ring)
    assert opened == state
    ring.destroy(["e1"])
    pd.open_state(RESULTS, sealed, ring)
    assert [(e["title"], e["votes"]) for e in sealed["entries"]] == [("", 5), ("the snorkwise idea", 4), ("published before authors were copied", 1)]


def test_a_nested_title_opens_in_a_published_payload_and_only_in_its_place():
    from watercooler.jams.v1 import events_pb2

    ring = pd.MemoryKeyRing()
    sealed = pd.seal_state(RESULTS, _results_state(), "jam", "jams-scheduler", ring)
    payload = events_pb2.ResultsPublished(jam_id="j1", entries=sealed["entries"])
    assert b"glorptastic" not in payload.SerializeToString()
    keys = ring.keys(pd.sealed_key_ids(RESULTS, payload))
    pd.open_payload(RESULTS, payload, keys)
    assert [e.title for e in payload.entries][:2] == ["the glorptastic idea", "the snorkwise idea"]
    # The same ciphertext moved to a top-level field of that name does not open.
    assert pd.unseal(sealed["entries"][0]["title"], "title", keys) == ""


def test_an_erased_authors_title_is_written_as_its_tombstone_and_the_results_are_still_recorded():
    ring = pd.MemoryKeyRing()
    ring.keys(["e1"], create=True)
    ring.destroy(["e1"])
    sealed = pd.seal_state(RESULTS, _results_state(), "jam", "jams-scheduler", ring)
    assert sealed["entries"][0]["title"] == "" and sealed["entries"][0]["votes"] == 5
    assert pd.nested_key_ids(RESULTS, _results_state()) == {"e1", "e2"}


def test_media_and_claims_name_their_person_as_profiles_and_are_keyed_by_the_employee_id():
    ring = pd.MemoryKeyRing()
    sealed = pd.seal_state("watercooler.posts.v1.MediaItemUpdated", {"owner": "profiles/e1", "title": "my holiday", "description": "",
                                                                     "tags": ["beach"], "changed_fields": ["title"]}, "agg", "posts-import", ring)
    assert pd.key_id_of(sealed["title"]) == "e1" and sealed["description"] == ""
    assert [pd.key_id_of(tag) for tag in sealed["tags"]] == ["e1"]  # the owner's words, element by element
    claim = pd.seal_state("watercooler.posts.v1.Claimed", {"space_id": "s", "title": "Secret plans", "page_id": "p", "author": "e2"}, "agg", "", ring)
    assert pd.key_id_of(claim["title"]) == "e2"


def test_a_wiki_page_erases_only_the_erased_writers_titles_and_text_as_a_replay_would():
    from types import SimpleNamespace

    from services.search.readmodels.projections.wiki import WikiProjection
    from watercooler.config import Settings

    def page_event(type_name: str, **payload) -> SimpleNamespace:
        import datetime as dt
        return SimpleNamespace(type_name=type_name, aggregate_id="p1", payload=SimpleNamespace(**payload),
                               occurred_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC), envelope=SimpleNamespace(aggregate_type="Page", event_type=type_name))

    wiki = WikiProjection(Settings())
    page = wiki.apply(None, page_event("PageCreated", space_id="s", title="Zarvox plans", links=["Other page"], body="Zarvox text by ana", author="ana"))
    page = wiki.apply(page, page_event("PageRenamed", revision=2, old_title="Zarvox plans", title="Team plans", author="bo"))
    page = wiki.apply(page, page_event("PageEdited", revision=3, body="Qwibble text by ana", links=[], author="ana", summary=""))
    assert page["writers"] == ["ana", "bo"] and page["title_keys"] == ["zarvox plans", "team plans"]
    assert wiki.tombstone(page, ["ana", "profiles/ana"]) is True
    assert page["title"] == "Team plans" and page["body"] == "" and page["former_titles"] == [] and page["title_keys"] == ["team plans"]
    assert "Zarvox" not in str(page) and "Qwibble" not in str(page)
    assert wiki.tombstone(page, ["ana"]) is False  # nothing of theirs left
    # The same page replayed after the erasure (ana's fields open to ""): the same document.
    replayed = wiki.apply(None, page_event("PageCreated", space_id="s", title="", links=[], body="", author="ana"))
    replayed = wiki.apply(replayed, page_event("PageRenamed", revision=2, old_title="", title="Team plans", author="bo"))
    replayed = wiki.apply(replayed, page_event("PageEdited", revision=3, body="", links=[], author="ana", summary=""))
    assert {k: replayed[k] for k in ("title", "body", "former_titles", "title_keys", "links")} == {k: page[k] for k in ("title", "body", "former_titles", "title_keys", "links")}


def test_a_persons_quota_names_the_items_holding_their_content_and_older_changes_still_replay():
    """What an erasure reads to find the files a person uploaded (LibraryApplication.erase_owner_media)."""
    from services.posts.library.domainmodel import MediaQuota

    quota = MediaQuota(owner="profiles/e1")
    quota.change(5, "m1")
    quota.change(3, "m2")
    quota.change(-5, "m1")  # removed: still named (deleting its objects again is harmless)
    quota.change(2)
    events = quota.collect_events()
    vars(events[-1]).pop("media_id")  # a change recorded before changes named their item
    replayed = None
    for stored in events:
        replayed = stored.mutate(replayed)
    assert replayed.media_ids == ["m1", "m2"] and replayed.used_bytes == 5


class _Failing(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode):
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return "refused"


def _ring_answering(status: grpc.StatusCode) -> pd.RemoteKeyRing:
    from watercooler.config import Settings

    class Stub:
        def GetPersonalDataKeys(self, request, metadata=None, timeout=None):
            raise _Failing(status)

    ring = pd.RemoteKeyRing(Settings(), "test")
    ring._keys_stub = lambda: Stub()
    return ring


@pytest.mark.parametrize("status", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_key_service_away_or_slow_is_transient(status):
    from watercooler import processor

    with pytest.raises(pd.KeysUnavailable) as raised:
        _ring_answering(status).keys(["e1"])
    assert processor.transient(raised.value)  # the processor holds the batch until it answers


@pytest.mark.parametrize("status", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_a_key_service_refusal_is_not_transient_so_its_records_are_dead_lettered(status, monkeypatch):
    """An ask the service refuses is refused again: retried for ever, it stalled every projection
    (an oversized ask's INVALID_ARGUMENT did). Not transient, the processor parks the records
    after its attempts and the partitions move on."""
    import asyncio
    from types import SimpleNamespace

    from watercooler import processor

    ring = _ring_answering(status)
    with pytest.raises(pd.KeysRefused, match=status.name):
        ring.keys(["e1"])

    class Projection:
        name = "test"
        calls = 0

        async def apply_batch(self, es, records, value_of):
            Projection.calls += 1
            if Projection.calls > 50:
                raise AssertionError("still retrying: taken for transient")
            ring.keys(["e1"])

    async def no_sleep(_seconds):
        return None

    monkeypatch.setattr(processor.asyncio, "sleep", no_sleep)
    records = [SimpleNamespace(message=SimpleNamespace(value=b"a")), SimpleNamespace(message=SimpleNamespace(value=b"b"))]
    result = asyncio.run(processor._apply_with_retry(Projection(), None, records, max_attempts=2))
    assert [r.message.value for r, _ in result.kept_failing] == [b"a", b"b"]
    assert f"KeysRefused: the profiles service refused the personal data keys: {status.name}" in result.kept_failing[0][1]


def _bookmark_record(owner: str, url: str, title: str) -> bytes:
    from google.protobuf import any_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
    from watercooler.posts.v1 import events_pb2 as pe

    packed = any_pb2.Any()
    packed.Pack(pe.BookmarkCreated(owner_id=owner, url=url, title=title, visibility="INTERNAL"))
    return EventEnvelope(event_id=f"ev-{owner}-{url}", event_type="watercooler.posts.v1.BookmarkCreated", aggregate_type="Bookmark", aggregate_id=f"b-{owner}-{url}",
                         aggregate_version=1, actor=Actor(subject=owner, kind="employee"), occurred_at=Timestamp(seconds=1_893_456_000), payload=packed).SerializeToString()


def test_a_key_cache_miss_is_asked_for_off_the_event_loop_once_per_batch():
    """A projection's decode on a key-cache miss: the event loop (the worker's other projections,
    its Kafka heartbeats) runs on while the key service is asked, once for the batch; a batch
    whose keys are cached asks nothing."""
    import asyncio
    import threading

    from services.search.readmodels.projections.bookmarks import BookmarksProjection
    from watercooler.config import Settings
    from watercooler.projection import BatchResult

    settings = dataclasses.replace(Settings(), namespace="offloop")
    keys = pd.MemoryKeyRing()
    own = keys.keys(["e1", "e2"], create=True)
    loop_ran = threading.Event()
    asked: list[list[str]] = []

    class Stub:  # answers only once the event loop has run something else meanwhile
        def GetPersonalDataKeys(self, request, metadata=None, timeout=None):
            asked.append(sorted(request.key_ids))
            assert loop_ran.wait(5), "the event loop waited for the key service"
            return personal_data_pb2.GetPersonalDataKeysResponse(keys=[personal_data_pb2.PersonalDataKey(key_id=k, key=v) for k, v in keys.keys(request.key_ids).items()])

    from watercooler.profiles.v1 import personal_data_pb2

    ring = pd.RemoteKeyRing(settings, "test")
    ring._keys_stub = lambda: Stub()
    pd.install_key_ring(settings, ring)
    projection = BookmarksProjection(settings)
    batch = [_bookmark_record(owner, f"https://x.example/{owner}", pd.seal(owner, own[owner], "title", f"title of {owner}")) for owner in ("e1", "e2")]

    async def decode_while_the_loop_runs():
        async def meanwhile():
            loop_ran.set()

        decoded, _ = await asyncio.gather(projection.decode(batch, lambda r: r, BatchResult()), meanwhile())
        return decoded

    decoded = asyncio.run(decode_while_the_loop_runs())
    assert [event.payload.title for _, event in decoded] == ["title of e1", "title of e2"]
    assert asked == [["e1", "e2"]]  # one ask for the batch
    loop_ran.clear()
    again = asyncio.run(projection.decode(batch, lambda r: r, BatchResult()))
    assert [event.payload.title for _, event in again] == ["title of e1", "title of e2"] and asked == [["e1", "e2"]]  # cached: not asked again


def _envelope(payload, aggregate: str, version: int = 1) -> bytes:
    from google.protobuf import any_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope

    packed = any_pb2.Any()
    packed.Pack(payload)
    return EventEnvelope(event_id=f"ev-{aggregate}-{version}", event_type=payload.DESCRIPTOR.full_name, aggregate_type="Bookmark", aggregate_id=aggregate,
                         aggregate_version=version, actor=Actor(subject="x", kind="employee"), occurred_at=Timestamp(seconds=1_893_456_000), payload=packed).SerializeToString()


def test_a_bookmark_whose_only_sealed_field_is_its_tags_is_opened_in_any_batch():
    """A published event's list field is a protobuf repeated container, which iterates but has
    no ``__iter__`` attribute: its sealed elements' key was never asked for. A bookmark saved
    without title or notes (only its tags sealed) then reached the index with its tag still
    sealed when nothing else in the batch was sealed, or lost it (the tombstone: the key not
    asked for) when another person's sealed title was, and vanished from popular links."""
    import asyncio

    from services.search.readmodels.projections.bookmarks import BookmarksProjection
    from watercooler.config import Settings
    from watercooler.posts.v1 import events_pb2 as pe
    from watercooler.projection import BatchResult

    settings = dataclasses.replace(Settings(), namespace="onlytags")
    ring = pd.MemoryKeyRing()
    pd.install_key_ring(settings, ring)
    keys = ring.keys(["ana", "bob"], create=True)
    assert "tags" in pd.personal("watercooler.posts.v1.BookmarkCreated").fields

    def saved(owner: str, url: str, title: str = "") -> bytes:
        sealed = pd.seal_state("watercooler.posts.v1.BookmarkCreated", {"owner_id": owner, "url": url, "title": title, "tags": ["zork"], "visibility": "PRIVATE"},
                               url, owner, ring)
        return _envelope(pe.BookmarkCreated(**sealed), f"b-{owner}-{url}")

    projection = BookmarksProjection(settings)
    assert pd.sealed_key_ids("watercooler.posts.v1.BookmarkCreated", pe.BookmarkCreated(owner_id="ana", tags=[pd.seal("ana", keys["ana"], "tags", "zork")])) == {"ana"}
    alone = [_envelope(pe.BookmarkDeleted(), "b-ana-old", version=2), saved("ana", "u1")]  # nothing else sealed in the batch
    beside_a_title = [saved("bob", "u2", title="Bob's page"), saved("ana", "u3")]  # another person's key asked for
    for batch in (alone, beside_a_title):
        decoded = asyncio.run(projection.decode(batch, lambda r: r, BatchResult()))
        documents = {event.aggregate_id: projection.apply(None, event) for _, event in decoded if event.type_name == "BookmarkCreated"}
        assert {doc["owner_id"]: doc["tags"] for doc in documents.values()} in ({"ana": ["zork"]}, {"ana": ["zork"], "bob": ["zork"]})


def test_a_bookmark_replayed_after_its_owners_erasure_is_deleted_and_stays_so():
    """Replayed after its owner's key is destroyed, a bookmark opens to its tombstones, url
    included: with nothing left it is deleted, as on ProfileErased (``erased_fields``), even
    where a later event of its history (a resave) had undone an earlier delete. Another
    person's bookmark in the same batch stays."""
    import asyncio

    from services.search.readmodels.projections.bookmarks import BookmarksProjection
    from watercooler.config import Settings
    from watercooler.posts.v1 import events_pb2 as pe
    from watercooler.projection import BatchResult

    settings = dataclasses.replace(Settings(), namespace="erasedbookmark")
    ring = pd.MemoryKeyRing()
    pd.install_key_ring(settings, ring)
    ring.keys(["ana", "bob"], create=True)

    def sealed(kind: str, owner: str, url: str, **fields) -> dict:
        return pd.seal_state(f"watercooler.posts.v1.{kind}", {"owner_id": owner, "url": url, "visibility": "INTERNAL", **fields}, url, owner, ring)

    history = [_envelope(pe.BookmarkCreated(**sealed("BookmarkCreated", "ana", "https://a.example/x", title="Ana's link")), "b-ana"),
               _envelope(pe.BookmarkDeleted(), "b-ana", version=2),
               _envelope(pe.BookmarkResaved(**{k: v for k, v in sealed("BookmarkResaved", "ana", "", title="Again").items() if k in ("title", "visibility")}), "b-ana", version=3),
               _envelope(pe.BookmarkCreated(**sealed("BookmarkCreated", "bob", "https://b.example/y", title="Bob's link")), "b-bob")]
    ring.destroy(["ana"])
    projection = BookmarksProjection(settings)
    documents: dict[str, dict] = {}
    for _, event in asyncio.run(projection.decode(history, lambda r: r, BatchResult())):
        documents[event.aggregate_id] = projection.apply(documents.get(event.aggregate_id), event)
    assert (documents["b-ana"]["url"], documents["b-ana"]["title"], documents["b-ana"]["deleted"]) == ("", "", True)
    assert (documents["b-bob"]["url"], documents["b-bob"]["title"], documents["b-bob"].get("deleted", False)) == ("https://b.example/y", "Bob's link", False)
    # On ProfileErased, before any rebuild: the same fields, deleted among them.
    live = {"url": "https://a.example/x", "host": "a.example", "title": "Ana's link", "owner_id": "ana", "deleted": False}
    assert projection.tombstone(live, ["ana"]) and (live["url"], live["title"], live["deleted"]) == ("", "", True)


def test_keys_asked_for_while_a_commit_is_under_way_are_made_together_each_kept_before_it_is_given(tmp_path):
    """Every new profile needs a key: callers that arrive while a key commit is under way share
    the next transaction (one fsync'd commit for them, not one each), and none gets a key that
    the table does not hold."""
    import threading
    import time

    from services.profiles.personal_keys import PersonalKeyTable

    path = tmp_path / "keys.sqlite"
    table = PersonalKeyTable({"SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "30"})
    commits: list[str] = []
    table._connection().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store: the first key commit waits for it
    callers = 12
    answers: dict[str, dict[str, bytes]] = {}
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(f"p{i}", table.keys([f"p{i}"], create=True))) for i in range(callers)]
    for thread in threads:
        thread.start()
    # One caller is committing; every other one waits for the next transaction.
    deadline = time.monotonic() + 10
    while len(getattr(table, "_queue", ())) < callers - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    holder.execute("ROLLBACK")
    for thread in threads:
        thread.join(30)
    stored = dict(sqlite3.connect(path).execute("SELECT key_id, key FROM personal_data_keys").fetchall())
    assert {caller: answer[caller] for caller, answer in answers.items()} == stored and len(stored) == callers
    assert len(commits) == 2
    assert table.keys(["p3"]) == {"p3": stored["p3"]} and table.keys(["nobody"]) == {}
    table.close()


def test_the_projections_of_one_batch_decrypt_a_sealed_value_once_between_them_and_a_retry_opens_afresh(monkeypatch):
    """People and blogs both open every profile event's sealed fields: within a batch
    (``opened_once``, as the processor runs one) each value is decrypted once; a retried batch
    opens with the keys as they are then."""
    import asyncio

    from services.search.readmodels.projections.blogs import BlogsProjection
    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler.projection import BatchResult, open_afresh, opened_once

    settings, record = sealed_profile_record("openedonce")
    decryptions: list[str] = []
    unseal = pd.unseal
    monkeypatch.setattr(pd, "unseal", lambda value, field, keys: decryptions.append(field) or unseal(value, field, keys))

    async def both_projections():
        decoded = await asyncio.gather(*(projection.decode([record], lambda r: r, BatchResult()) for projection in (PeopleProjection(settings), BlogsProjection(settings))))
        return [event.payload.display_name for ((_, event),) in decoded]

    async def in_one_batch(retried: bool):
        with opened_once():
            if retried:
                open_afresh()
            return await both_projections()

    assert asyncio.run(in_one_batch(retried=False)) == ["Ann Example", "Ann Example"]
    once = len(decryptions)
    assert once and sorted(decryptions) == sorted(set(decryptions))  # each sealed field decrypted once
    decryptions.clear()
    assert asyncio.run(in_one_batch(retried=True)) == ["Ann Example", "Ann Example"]
    assert len(decryptions) == 2 * once  # a retry opens every value again, with the keys of now


def sealed_profile_record(namespace: str):
    """Settings with a key ring of their own, and the record of Ann's ProfileCreated as the relay
    publishes it: her personal fields sealed with her key."""
    from services.profiles.domainmodel import Profile
    from watercooler.config import Settings
    from watercooler.eventstore import CommandContext, command_meta

    settings = dataclasses.replace(Settings(), namespace=namespace)
    ring = pd.MemoryKeyRing()
    pd.install_key_ring(settings, ring)
    with command_meta(CommandContext(pd_principal())):
        profile = Profile.create("e1", {"display_name": "Ann Example", "sort_name": "Example, Ann", "department": "Sales", "country": "NO", "title": "Lead"})
    (created,) = profile.collect_events()
    state = pd.seal_state("watercooler.profiles.v1.ProfileCreated", dict(vars(created)), str(created.originator_id), "tester", ring)
    sealed_event = object.__new__(type(created))
    object.__setattr__(sealed_event, "__dict__", state)
    record = to_envelope("profiles", sealed_event, sequence=1).SerializeToString()
    assert b"Ann Example" not in record
    return settings, record


def pd_principal():
    from watercooler.auth import Principal

    return Principal("tester", "service")


def test_the_projections_of_one_batch_share_each_record_decoded_and_the_audit_trail_writes_none_of_it_opened():
    """A profile event was decoded by four projections and opened by two. Within a batch each
    record is decoded once for all of them; the audit trail, which leaves sealed fields sealed,
    may be handed the event people opened, and its document holds no personal field either way.
    A record that is no event fails each projection alike; a retry decodes afresh."""
    import asyncio

    from services.search.readmodels.projections.audit import AuditProjection
    from services.search.readmodels.projections.blogs import BlogsProjection
    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler.projection import BatchResult, open_afresh, opened_once

    settings, record = sealed_profile_record("decodedonce")
    garbage = b"\xff not an envelope"
    projections = (PeopleProjection(settings), AuditProjection(settings), BlogsProjection(settings))

    async def one_batch(retried: bool = False):
        with opened_once():
            if retried:
                open_afresh()
            results = [BatchResult() for _ in projections]
            decoded = await asyncio.gather(*(p.decode([record, garbage], lambda r: r, result) for p, result in zip(projections, results, strict=True)))
            return [events[0][1] for events in decoded], results

    events, results = asyncio.run(one_batch())
    assert events[0] is events[1] is events[2]  # one decoded event for the three
    assert events[0].payload.display_name == "Ann Example"  # opened by people
    audit_doc = projections[1].apply(None, events[1])
    assert "Ann Example" not in repr(audit_doc) and "Lead" not in repr(audit_doc) and audit_doc["resource"] == "profiles/e1"
    assert all([record for record, _ in result.failed] == [garbage] for result in results)  # each dead-letters it
    again, _ = asyncio.run(one_batch(retried=True))
    assert again[0] is not events[0] and again[0].payload.display_name == "Ann Example"


def test_an_event_the_batch_opened_is_not_read_again_by_the_next_projection(monkeypatch):
    """The second projection handed a shared event someone opened passes over it: no scan of its
    fields for keys, no second pass over them."""
    import asyncio

    from services.search.readmodels.projections.blogs import BlogsProjection
    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler.projection import BatchResult, opened_once

    settings, record = sealed_profile_record("openedskipped")
    scans: list[str] = []
    sealed_key_ids = pd.sealed_key_ids
    monkeypatch.setattr(pd, "sealed_key_ids", lambda event_type, values: scans.append(event_type) or sealed_key_ids(event_type, values))

    async def one_after_the_other():
        with opened_once():
            people = await PeopleProjection(settings).decode([record], lambda r: r, BatchResult())
            blogs = await BlogsProjection(settings).decode([record], lambda r: r, BatchResult())
        return people[0][1], blogs[0][1]

    people, blogs = asyncio.run(one_after_the_other())
    assert people is blogs and blogs.payload.display_name == "Ann Example"
    assert scans == ["watercooler.profiles.v1.ProfileCreated"]  # once, by people

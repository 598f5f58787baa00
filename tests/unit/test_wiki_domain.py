"""Wiki and media domain rules, and every event's trip to an envelope."""

from __future__ import annotations

import datetime as dt

import pytest

from services.posts.library.domainmodel import (
    MediaItem,
    Page,
    Space,
    can_see,
    extract_links,
    sane_view_time,
    title_claim_id,
)
from watercooler.auth import Principal
from watercooler.envelope import decode, to_envelope
from watercooler.errors import Aborted, FailedPrecondition, InvalidArgument
from watercooler.eventstore import CommandContext, command_meta

CTX = CommandContext(Principal("e1", "employee"), request_id="r1")


def _page() -> Page:
    with command_meta(CTX):
        return Page.create("eng", "Kafka Guide", "See [[Elastic Search]] and [[kafka guide|self]].\n", "e1", "first")


def test_links_are_extracted_once_each_in_order():
    assert extract_links("[[A]] [[b|label]] [[A]] [[C#part]] [[ ]] [x]") == ["A", "b", "C"]


def test_edit_against_a_stale_base_is_aborted_with_the_current_revision():
    page = _page()
    with command_meta(CTX):
        page.edit(1, "v2\n", "e2", "")
        with pytest.raises(Aborted) as stale:
            page.edit(1, "v2 by someone else\n", "e3", "")
        assert stale.value.details == {"current_revision": 2} and stale.value.field == "base_revision"
        with pytest.raises(InvalidArgument):
            page.edit(0, "x", "e3", "")
        with pytest.raises(InvalidArgument):
            page.edit(7, "x", "e3", "")
        with pytest.raises(FailedPrecondition):
            page.edit(2, "v2\n", "e3", "")  # nothing changes


def test_history_diff_restore_rename_delete():
    page = _page()
    with command_meta(CTX):
        page.edit(1, "line one\nline two\n", "e2", "rewrite")
        page.rename(2, "Kafka Handbook", "e2")
        page.restore(3, 1, "e3")
        page.delete(4, "e1")
    assert page.revision == 5 and page.deleted
    assert [r["action"] for r in page.revisions] == ["CREATED", "EDITED", "RENAMED", "RESTORED", "DELETED"]
    assert page.body == page.revision_at(1)["body"]
    assert page.former_titles == ["Kafka Guide"] and page.title == "Kafka Handbook"
    diff, old, new = page.diff(1, 2)
    assert "-See [[Elastic Search]]" in diff and "+line two" in diff
    assert old["title"] == "Kafka Guide"
    with pytest.raises(InvalidArgument):
        page.diff(0, 2)
    with pytest.raises(FailedPrecondition):
        page.rename(5, "Another", "e1")


def test_titles_collide_without_case_or_accents():
    assert title_claim_id("s", "Café  Menu") == title_claim_id("s", "cafe menu")
    assert title_claim_id("s", "Café") != title_claim_id("t", "Café")


def test_bad_titles_and_spaces_name_the_field():
    with pytest.raises(InvalidArgument) as bad:
        Page.create("s", "a [b]", "", "e1", "")
    assert bad.value.field == "title"
    with pytest.raises(InvalidArgument) as bad_space:
        Space.create("Not Valid", "x", "", "profiles/e1", "PUBLIC", [])
    assert bad_space.value.field == "space_id"
    with pytest.raises(InvalidArgument) as bad_vis:
        Space.create("ok", "x", "", "profiles/e1", "SECRET", [])
    assert bad_vis.value.field == "visibility"


def test_visibility_rules():
    employee, guest, service = Principal("e1", "employee"), Principal("g1", "guest"), Principal("svc", "service")
    assert can_see("PUBLIC", "profiles/x", [], guest)
    assert not can_see("INTERNAL", "profiles/x", [], guest) and can_see("INTERNAL", "profiles/x", [], employee)
    assert not can_see("RESTRICTED", "profiles/x", [], employee)
    assert can_see("RESTRICTED", "profiles/x", ["e1"], employee) and can_see("RESTRICTED", "profiles/e1", [], employee)
    assert can_see("RESTRICTED", "profiles/x", [], service)


def test_view_times_must_be_sane():
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    sane_view_time(now, created, now, "view_time")
    with pytest.raises(InvalidArgument):
        sane_view_time(now + dt.timedelta(hours=1), created, now, "view_time")
    with pytest.raises(InvalidArgument) as early:
        sane_view_time(created - dt.timedelta(days=1), created, now, "view.view_time")
    assert early.value.field == "view.view_time"


def test_media_rules():
    fields = {"title": "Keynote", "kind": "VIDEO", "size_bytes": 10, "content_type": "Video/MP4", "tags": ["Kafka", "kafka"], "visibility": "INTERNAL", "storage_uri": "s3://b/k"}
    with command_meta(CTX):
        item = MediaItem.register("profiles/e1", fields)
        assert item.tags == ["kafka"] and item.content_type == "video/mp4"
        for field, value in [("kind", "FILM"), ("size_bytes", 0), ("storage_uri", "ftp://x"), ("content_type", "mp4")]:
            with pytest.raises(InvalidArgument) as bad:
                MediaItem.register("profiles/e1", {**fields, field: value})
            assert bad.value.field == field
        item.update({"title": "Keynote 2026"})
        item.update({"title": "Keynote 2026"})  # no change, no event
        item.remove("gone")
        with pytest.raises(FailedPrecondition):
            item.update({"title": "x"})
    assert [type(e).__name__ for e in item.pending_events] == ["MediaItemRegistered", "MediaItemUpdated", "MediaItemRemoved"]


def test_every_library_event_converts_to_its_envelope():
    page = _page()
    with command_meta(CTX):
        space = Space.create("eng", "Engineering", "", "profiles/e1", "INTERNAL", ["e2"])
        page.edit(1, "two\n", "e1", "")
        page.rename(2, "New", "e1")
        page.restore(3, 1, "e1")
        page.delete(4, "e1")
        item = MediaItem.register("profiles/e1", {"title": "T", "kind": "IMAGE", "size_bytes": 1, "content_type": "image/png", "visibility": "PUBLIC", "storage_uri": "media://x"})
        item.update({"tags": ["a"]})
        item.remove("r")
    names = []
    for event in [*space.pending_events, *page.pending_events, *item.pending_events]:
        decoded = decode(to_envelope("posts", event, sequence=1).SerializeToString())
        names.append(decoded.type_name)
    assert names == ["SpaceCreated", "PageCreated", "PageEdited", "PageRenamed", "PageEdited", "PageDeleted", "MediaItemRegistered", "MediaItemUpdated", "MediaItemRemoved"]
    assert decode(to_envelope("posts", page.pending_events[3], sequence=1).SerializeToString()).payload.restored_from == 1

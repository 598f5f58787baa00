"""The one flags rule (watercooler.moderation) on the kinds that gained it: wiki pages, media
items, status updates, jam ideas, threads and replies."""

from __future__ import annotations

import pytest

from services.jams.domainmodel import Reply, Thread
from services.posts.library.domainmodel import MediaItem, Page
from services.profiles.domainmodel import StatusUpdate
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from watercooler.moderation import FLAG_THRESHOLD


def kinds():
    media = MediaItem.register("profiles/ana", {"title": "Clip", "kind": "VIDEO", "size_bytes": 1, "content_type": "video/mp4", "visibility": "INTERNAL", "storage_uri": "s3://b/c"})
    return [
        Page.create("space", "A page", "text", "ana", ""),
        media,
        StatusUpdate(status_id="s1", author_id="ana", text="hi", photo_uri="", visibility="INTERNAL", community_id=""),
        Thread(jam_id="j", thread_id="t", forum_id="f", idea_id="", title="T", body="B", author="ana", author_kind="employee"),
        Reply(jam_id="j", thread_id="t", reply_id="r", forum_id="f", idea_id="", body="B", author="ana", author_kind="guest"),
    ]


@pytest.mark.parametrize("item", kinds(), ids=lambda item: type(item).__name__)
def test_distinct_people_other_than_the_author_hide_and_others_restore(item):
    with pytest.raises(FailedPrecondition):
        item.flag("ana", "mine", FLAG_THRESHOLD)
    with pytest.raises(InvalidArgument):
        item.flag("bob", " ", FLAG_THRESHOLD)
    item.flag("bob", "spam", FLAG_THRESHOLD)
    with pytest.raises(AlreadyExists):
        item.flag("bob", "spam again", FLAG_THRESHOLD)
    for person in ("cy", "di"):
        item.flag(person, "spam", FLAG_THRESHOLD)
    assert item.hidden
    with pytest.raises(FailedPrecondition):
        item.vote_restore("bob", FLAG_THRESHOLD)  # a flagger
    for person in ("ed", "fay", "gus"):
        item.vote_restore(person, FLAG_THRESHOLD)
    assert not item.hidden and item.flaggers == []


def test_the_authors_edit_answers_the_flags_of_a_page_and_a_media_item():
    page, media = kinds()[:2]
    for item in (page, media):
        item.moderate_hide("svc", "takedown")
    page.edit(1, "someone else's words", "bob", "")  # not the author: still hidden
    assert page.hidden
    page.edit(2, "the author's new words", "ana", "")
    assert not page.hidden
    media.update({"tags": ["x"]})  # tags alone answer nothing
    assert media.hidden
    media.update({"description": "better"}, by_owner=False)  # a service's change is not the owner's answer
    assert media.hidden
    media.update({"title": "Clip, reworded"})
    assert not media.hidden


@pytest.mark.parametrize("item", kinds(), ids=lambda item: type(item).__name__)
def test_a_moderator_hides_with_a_reason_and_only_a_moderator_restores(item):
    with pytest.raises(InvalidArgument):
        item.hide_as_moderator("owner", "")
    item.hide_as_moderator("owner", "off topic here")
    assert item.hidden and item.hide_reason == "off topic here" and item.hidden_by == "owner"
    with pytest.raises(FailedPrecondition):
        item.vote_restore("bob", FLAG_THRESHOLD)  # votes do not overrule a moderator
    item._author_edited(list(type(item).ANSWERING_FIELDS) or ["text"])  # nor the author's edit
    assert item.hidden
    item.restore_as_moderator("owner", "fine now")
    assert not item.hidden and item.hide_reason == "" and item.hidden_by == ""
    with pytest.raises(FailedPrecondition):
        item.restore_as_moderator("owner", "again")
    for person in ("bob", "cy", "di"):  # flags hide again; a moderator may restore that too
        item.flag(person, "spam", FLAG_THRESHOLD)
    assert item.hidden and item.hide_reason == "hidden by 3 community flags"
    item.restore_as_moderator("owner", "the flags were wrong")
    assert not item.hidden

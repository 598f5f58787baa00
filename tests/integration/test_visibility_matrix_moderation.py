"""Community flags on every kind people write, beyond posts, microposts, comments and bookmarks
(tests/integration/test_flags.py): wiki pages and media items (PostService.FlagItem), status
updates (GraphService.FlagStatusUpdate), jam ideas, threads and replies (JamService.FlagJamItem).
One rule (watercooler.moderation): distinct people, not the author, N of them hide it; hidden, it
answers as if absent to everyone but its author and services, by name, in lists, searches and
counts, and what hangs off it (comments, replies) follows. Community owners and jam hosts hide
and restore at once, with a reason the author reads. The visibility matrix's
``hidden_by_flags`` cases for the reads of these kinds (tests/unit/test_read_gate.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import read_events, rpc_error
from tests.integration.test_jams_api import open_jam
from tests.integration.test_search_unified import Stubs, unique
from tests.integration.test_visibility_matrix import covers
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration

SC = grpc.StatusCode


@pytest.fixture(scope="module")
def s(platform) -> Stubs:
    return Stubs(platform)


@pytest.fixture(scope="module")
def people(s):
    """An author, three flaggers, three restorers and a reader (all employees)."""
    author = s.person("Ada Author")
    flaggers = [s.person(f"Flo Flagger {i}")[1] for i in range(3)]
    restorers = [s.person(f"Rex Restorer {i}")[1] for i in range(3)]
    reader = s.person("Reed Reader")
    return author, flaggers, restorers, reader


def searched(s: Stubs, md, query: str) -> set[str]:
    return {hit.name for hit in s.find(md, query=query).hits}


@covers("GetPage", "LookupPage", "ListRevisions", "GetRevision", "DiffRevisions", "GetMediaItem", "GetComment", "ListComments", "Search",
        "ListMediaItems", "ListWikiBacklinks", "GetViewCounts", kind="hidden_by_flags")
def test_pages_and_media_hide_by_flags_with_their_comments_and_come_back(s, platform, people):
    (author, as_author), flaggers, restorers, (_, reader) = people
    word = unique("pageflag")
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("fs"), display_name="Flags", visibility=wp.INTERNAL)), metadata=as_author)
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"Page {word}", body=f"{word} body")), metadata=as_author)
    media = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
        title=f"Clip {word}", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri="s3://b/clip.mp4")), metadata=as_author)
    comment = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=page.name, body=f"{word} remark")), metadata=reader)
    eventually(lambda: {page.name, media.name, comment.name} <= searched(s, reader, word), message="page, media item and comment indexed")

    flag = lambda name, md: s.posts.FlagItem(pb.FlagItemRequest(name=name, reason="off topic"), metadata=md)  # noqa: E731
    assert rpc_error(flag, page.name, as_author).code() == SC.FAILED_PRECONDITION  # not one's own
    assert flag(page.name, flaggers[0]).flag_count == 1
    assert rpc_error(flag, page.name, flaggers[0]).code() == SC.ALREADY_EXISTS  # distinct people only
    for md in flaggers[1:]:
        state = flag(page.name, md)
    assert state.hidden and state.threshold == 3
    for md in flaggers:
        state = flag(media.name, md)
    assert state.hidden

    # By name: absent for everyone but the author (who reads it marked hidden) and services.
    for call, request in ((s.wiki.GetPage, wp.GetPageRequest(name=page.name)), (s.media.GetMediaItem, mp.GetMediaItemRequest(name=media.name))):
        assert rpc_error(call, request, metadata=reader).code() == SC.NOT_FOUND
        assert call(request, metadata=as_author).hidden
        assert call(request, metadata=platform.metadata()).hidden
    assert rpc_error(s.wiki.LookupPage, wp.LookupPageRequest(space=space.name, title=page.title), metadata=reader).code() == SC.NOT_FOUND
    for call, request in ((s.wiki.ListRevisions, wp.ListRevisionsRequest(name=page.name)), (s.wiki.GetRevision, wp.GetRevisionRequest(name=page.name, revision=1)),
                          (s.wiki.DiffRevisions, wp.DiffRevisionsRequest(name=page.name, from_revision=1, to_revision=1))):
        assert rpc_error(call, request, metadata=reader).code() == SC.NOT_FOUND, call
    assert rpc_error(s.posts.GetComment, pb.GetCommentRequest(name=comment.name), metadata=reader).code() == SC.NOT_FOUND  # the child follows
    on_hidden = rpc_error(s.posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=media.name, body="hi")), metadata=reader)
    assert on_hidden.code() == SC.NOT_FOUND

    def gone_from_lists():
        assert not {page.name, media.name, comment.name} & searched(s, reader, word)
        assert not {page.name, media.name} & searched(s, as_author, word)  # lists and searches: nobody
        assert not s.search.ListComments(sp.ListCommentsRequest(target=page.name), metadata=reader).comments
        assert media.name not in {m.media_item for m in s.search.ListMediaItems(sp.ListMediaItemsRequest(owner=f"profiles/{author}"), metadata=reader).media_items}
        for call, request in ((s.search.ListWikiBacklinks, sp.ListWikiBacklinksRequest(page=page.name)), (s.search.GetViewCounts, sp.GetViewCountsRequest(name=page.name)),
                              (s.search.GetViewCounts, sp.GetViewCountsRequest(name=media.name))):
            assert rpc_error(call, request, metadata=reader).code() == SC.NOT_FOUND, call
        return True

    eventually(gone_from_lists, message="hidden page, media item and the page's comment gone from search and lists")

    # The author's edit of the text answers the flags; restore votes of others bring the media item back.
    edited = s.wiki.EditPage(wp.EditPageRequest(name=page.name, base_revision=1, body=f"{word} reworded"), metadata=as_author)
    assert not edited.hidden
    assert rpc_error(s.posts.VoteRestoreItem, pb.VoteRestoreItemRequest(name=media.name), metadata=flaggers[0]).code() == SC.FAILED_PRECONDITION
    for md in restorers:
        state = s.posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=media.name), metadata=md)
    assert not state.hidden
    assert s.media.GetMediaItem(mp.GetMediaItemRequest(name=media.name), metadata=reader).title == media.title
    eventually(lambda: {page.name, media.name, comment.name} <= searched(s, reader, word), message="restored: back in search with the comment")
    page_events = [e.type_name for e in read_events(platform.settings, "posts") if e.aggregate_id == page.name.split("/")[1]]
    assert page_events.count("ItemFlagged") == 3 and page_events.count("ItemHidden") == 1 and page_events.count("ItemRestored") == 1


@covers("ListStatusUpdates", "GetNetworkFeed", kind="hidden_by_flags")
def test_status_updates_hide_by_flags(s, platform, people):
    (author, as_author), flaggers, restorers, (reader_id, reader) = people
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    graph.Follow(gp.FollowRequest(parent=f"profiles/{reader_id}", target=f"profiles/{author}"), metadata=reader)
    word = unique("statusflag")
    status = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(
        text=f"{word} today", visibility=gp.StatusUpdate.INTERNAL)), metadata=as_author)
    listed = lambda md: {u.name for u in s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{author}"), metadata=md).status_updates}  # noqa: E731
    feed = lambda: {i.name for i in s.search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{reader_id}"), metadata=reader).items}  # noqa: E731
    eventually(lambda: status.name in listed(reader) and status.name in feed(), message="status update listed and in the follower's feed")

    flag = lambda md: graph.FlagStatusUpdate(gp.FlagStatusUpdateRequest(name=status.name, reason="spam"), metadata=md)  # noqa: E731
    assert rpc_error(flag, as_author).code() == SC.FAILED_PRECONDITION
    assert rpc_error(flag, platform.metadata(unique("g"), "guest")).code() == SC.PERMISSION_DENIED
    assert rpc_error(graph.FlagStatusUpdate, gp.FlagStatusUpdateRequest(name=f"profiles/{author}/statusUpdates/nope", reason="x"), metadata=reader).code() == SC.NOT_FOUND
    assert rpc_error(graph.FlagStatusUpdate, gp.FlagStatusUpdateRequest(name="statusUpdates/x", reason="x"), metadata=reader).code() == SC.INVALID_ARGUMENT
    assert rpc_error(graph.FlagStatusUpdate, gp.FlagStatusUpdateRequest(name=status.name, reason=""), metadata=reader).code() == SC.INVALID_ARGUMENT
    retried = gp.FlagStatusUpdateRequest(name=status.name, reason="spam", request_id=str(uuid.uuid4()))
    first, again = (graph.FlagStatusUpdate(retried, metadata=flaggers[0]) for _ in range(2))  # a retry by request id: the first answer
    assert first.flag_count == again.flag_count == 1
    assert rpc_error(flag, flaggers[0]).code() == SC.ALREADY_EXISTS  # a new request of the same flagger: distinct people only
    assert [flag(md).hidden for md in flaggers[1:]] == [False, True]
    assert rpc_error(flag, reader).code() == SC.FAILED_PRECONDITION  # already hidden
    eventually(lambda: not {status.name} & (listed(reader) | listed(as_author) | feed()), message="hidden from the list and the feed, for everyone")

    restore = lambda md: graph.VoteRestoreStatusUpdate(gp.VoteRestoreStatusUpdateRequest(name=status.name), metadata=md)  # noqa: E731
    assert rpc_error(restore, flaggers[1]).code() == SC.FAILED_PRECONDITION
    assert [restore(md).hidden for md in restorers] == [True, True, False]
    eventually(lambda: status.name in listed(reader), message="restored by votes")


@covers("GetIdea", "SearchJamIdeas", "ListJamDiscussion", "GetJamLeaderboard", "Search", kind="hidden_by_flags")
def test_jam_ideas_threads_and_replies_hide_by_flags(s, platform, people):
    (_, host), flaggers, restorers, (_, reader) = people
    jam_id, seeded = open_jam(s.jams, host, ideas=1)
    jam = f"jams/{jam_id}"
    word = unique("jamflag")
    author = platform.author(unique("jp"))  # has accepted the participation guidelines
    idea = s.jams.CreateIdea(jp.CreateIdeaRequest(parent=jam, idea=jp.Idea(title=f"Idea {word}")), metadata=author)
    thread = s.jams.CreateThread(jp.CreateThreadRequest(parent=jam, thread=jp.Thread(idea=seeded[0], title=f"Thread {word}", body="let us talk")), metadata=author)
    reply = s.jams.CreateReply(jp.CreateReplyRequest(parent=thread.name, reply=jp.Reply(body=f"{word} reply")), metadata=reader)
    ideas = lambda md: {i.idea for i in s.search.SearchJamIdeas(sp.SearchJamIdeasRequest(jam=jam), metadata=md).ideas}  # noqa: E731
    discussion = lambda md, **kw: {p.name for p in s.search.ListJamDiscussion(sp.ListJamDiscussionRequest(jam=jam, **kw), metadata=md).posts}  # noqa: E731
    idea_count = lambda: s.search.GetJamLeaderboard(sp.GetJamLeaderboardRequest(jam=jam), metadata=reader).ideas  # noqa: E731
    eventually(lambda: idea.name in ideas(reader) and reply.name in discussion(reader, thread=thread.name) and idea_count() == 2, message="jam content indexed")
    eventually(lambda: {idea.name, thread.name, reply.name} <= searched(s, reader, word), message="jam content searchable")

    flag = lambda name, md: s.jams.FlagJamItem(jp.FlagJamItemRequest(name=name, reason="off topic"), metadata=md)  # noqa: E731
    assert rpc_error(flag, idea.name, author).code() == SC.FAILED_PRECONDITION
    assert rpc_error(flag, f"{jam}/forums/x", reader).code() == SC.INVALID_ARGUMENT
    for md in flaggers:
        idea_state, thread_state = flag(idea.name, md), flag(thread.name, md)
    assert idea_state.hidden and thread_state.hidden

    assert rpc_error(s.jams.GetIdea, jp.GetIdeaRequest(name=idea.name), metadata=reader).code() == SC.NOT_FOUND
    assert s.jams.GetIdea(jp.GetIdeaRequest(name=idea.name), metadata=author).hidden
    assert rpc_error(s.jams.CreateReply, jp.CreateReplyRequest(parent=thread.name, reply=jp.Reply(body="more")), metadata=reader).code() == SC.NOT_FOUND
    assert rpc_error(s.jams.CreateThread, jp.CreateThreadRequest(parent=jam, thread=jp.Thread(idea=idea.name, title="t", body="b")), metadata=reader).code() == SC.NOT_FOUND
    assert rpc_error(flag, reply.name, restorers[0]).code() == SC.NOT_FOUND  # a reply goes with its hidden thread

    def gone():
        assert idea.name not in ideas(reader) and idea_count() == 1
        assert not {thread.name, reply.name} & (discussion(reader) | discussion(reader, thread=thread.name))
        assert not {idea.name, thread.name, reply.name} & searched(s, reader, word)
        return True

    eventually(gone, message="hidden idea and thread (with its reply) gone from search, lists and counts")
    for md in restorers:
        state = s.jams.VoteRestoreJamItem(jp.VoteRestoreJamItemRequest(name=thread.name), metadata=md)
    assert not state.hidden
    eventually(lambda: reply.name in discussion(reader, thread=thread.name) and reply.name in searched(s, reader, word), message="thread restored with its reply")


@covers("GetMicropost", "GetComment", "GetPage", "GetIdea", "ListTimeline", "ListComments", "ListStatusUpdates", "SearchJamIdeas", kind="hidden_by_flags")
def test_community_owners_and_jam_hosts_hide_and_restore_with_a_reason_the_author_reads(s, platform, people):
    (author, as_author), _, _, (_, reader) = people
    owner, as_owner = s.person("Olga Owner")
    member, as_member = s.person("Mo Member")
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    community = unique("mod")
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Moderated", access=cp.Community.OPEN)), metadata=as_owner)
    c_name = f"communities/{community}"
    for md in (as_author, as_member):
        s.communities.JoinCommunity(cp.JoinCommunityRequest(name=c_name), metadata=md)
    word = unique("modword")
    micro = s.micro(as_author, f"{word} in the community", visibility=pb.Audience.COMMUNITY, community=c_name)
    public = s.micro(as_author, f"{word} for everyone", visibility=pb.Audience.PUBLIC)
    comment = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=micro, body=f"{word} said the member")), metadata=as_member).name
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("ms"), display_name="Ours", visibility=wp.RESTRICTED, owner=c_name)), metadata=as_author).name
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"Page {word}", body="text")), metadata=as_author).name
    status = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(
        text=f"{word} status", visibility=gp.StatusUpdate.COMMUNITY, community=c_name)), metadata=as_author).name
    timeline = lambda md: {p.name for p in s.search.ListTimeline(sp.ListTimelineRequest(person=f"profiles/{author}"), metadata=md).posts}  # noqa: E731
    statuses = lambda md: {u.name for u in s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{author}"), metadata=md).status_updates}  # noqa: E731
    eventually(lambda: micro in timeline(as_member) and status in statuses(as_member), message="community content indexed")

    hide = lambda name, md, reason="off topic here": s.posts.HideItem(pb.HideItemRequest(name=name, reason=reason), metadata=md)  # noqa: E731
    assert rpc_error(hide, micro, as_member).code() == SC.PERMISSION_DENIED  # a member is no moderator
    assert rpc_error(hide, micro, reader).code() == SC.NOT_FOUND  # not even in the audience
    assert rpc_error(hide, public, as_owner).code() == SC.PERMISSION_DENIED  # not in the owner's community
    assert rpc_error(hide, micro, as_owner, "").code() == SC.INVALID_ARGUMENT  # a reason is required
    for name in (comment, page, micro):  # the comment first: once its micropost is hidden, it follows it out of reach
        state = hide(name, as_owner)
        assert state.hidden and state.hide_reason == "off topic here"
        if name == comment:
            assert s.posts.GetComment(pb.GetCommentRequest(name=comment), metadata=as_member).hide_reason == "off topic here"  # its author reads why
    assert rpc_error(hide, micro, as_owner).code() == SC.FAILED_PRECONDITION  # already hidden
    hidden_status = graph.HideStatusUpdate(gp.HideStatusUpdateRequest(name=status, reason="not for this community"), metadata=as_owner)
    assert hidden_status.hidden and hidden_status.hide_reason == "not for this community"
    assert rpc_error(graph.HideStatusUpdate, gp.HideStatusUpdateRequest(name=status, reason="x"), metadata=as_member).code() == SC.PERMISSION_DENIED

    # The author reads their items with the reason; the community does not see them.
    seen = s.posts.GetMicropost(pb.GetMicropostRequest(name=micro), metadata=as_author)
    assert seen.hidden and seen.hide_reason == "off topic here"
    assert s.wiki.GetPage(wp.GetPageRequest(name=page), metadata=as_author).hide_reason == "off topic here"
    for call, request in ((s.posts.GetMicropost, pb.GetMicropostRequest(name=micro)), (s.wiki.GetPage, wp.GetPageRequest(name=page))):
        assert rpc_error(call, request, metadata=as_member).code() == SC.NOT_FOUND
    # Neither the author's edit nor restore votes overrule a moderator.
    edited = s.posts.UpdateMicropost(pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micro, text=f"{word} reworded"), update_mask={"paths": ["text"]}), metadata=as_author)
    assert edited.hidden
    assert rpc_error(s.posts.VoteRestoreItem, pb.VoteRestoreItemRequest(name=micro), metadata=as_member).code() == SC.FAILED_PRECONDITION
    eventually(lambda: micro not in timeline(as_member) and status not in statuses(as_member)
               and not s.search.ListComments(sp.ListCommentsRequest(target=micro), metadata=as_owner).comments, message="hidden from the community's lists")

    restored = s.posts.RestoreItem(pb.RestoreItemRequest(name=micro, reason="reworded, fine now"), metadata=as_owner)
    assert not restored.hidden and not restored.hide_reason
    graph.RestoreStatusUpdate(gp.RestoreStatusUpdateRequest(name=status, reason="fine"), metadata=as_owner)
    assert rpc_error(s.posts.RestoreItem, pb.RestoreItemRequest(name=micro, reason="again"), metadata=as_owner).code() == SC.FAILED_PRECONDITION
    assert not s.posts.GetMicropost(pb.GetMicropostRequest(name=micro), metadata=as_member).hidden
    eventually(lambda: micro in timeline(as_member) and status in statuses(as_member), message="restored in the community's lists")
    audited = [(e.type_name, e.envelope.actor.subject) for e in read_events(platform.settings, "posts") if e.aggregate_id == micro.split("/")[1]]
    assert ("ItemHiddenByModerator", owner) in audited and ("ItemRestoredByModerator", owner) in audited

    # A jam's hosts moderate inside their jam.
    _, host = s.person("Hana Host")
    jam_id, _ = open_jam(s.jams, host, ideas=1)
    idea = s.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=f"Idea {word}")), metadata=as_author).name
    assert rpc_error(s.jams.HideJamItem, jp.HideJamItemRequest(name=idea, reason="dup"), metadata=as_member).code() == SC.PERMISSION_DENIED
    assert s.jams.HideJamItem(jp.HideJamItemRequest(name=idea, reason="a duplicate of another idea"), metadata=host).hidden
    assert s.jams.GetIdea(jp.GetIdeaRequest(name=idea), metadata=as_author).hide_reason == "a duplicate of another idea"
    assert rpc_error(s.jams.GetIdea, jp.GetIdeaRequest(name=idea), metadata=as_member).code() == SC.NOT_FOUND
    ideas = lambda: {i.idea for i in s.search.SearchJamIdeas(sp.SearchJamIdeasRequest(jam=f"jams/{jam_id}"), metadata=as_member).ideas}  # noqa: E731
    eventually(lambda: idea not in ideas(), message="hidden idea out of the jam's ideas")
    assert not s.jams.RestoreJamItem(jp.RestoreJamItemRequest(name=idea, reason="not a duplicate"), metadata=host).hidden
    eventually(lambda: idea in ideas(), message="restored idea back")


@covers("GetSpace", "GetPage", "Search", kind="parent_changed")
def test_a_space_its_owner_changes_takes_its_pages_along(s, platform, people):
    (_, as_owner), _, _, (reader_id, reader) = people
    word = unique("spaceword")
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("us"), display_name="Team", visibility=wp.RESTRICTED, members=[reader_id])),
                               metadata=as_owner)
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title=f"Page {word}", body=word)), metadata=as_owner).name
    stranger = s.person("Sue Stranger")[1]
    eventually(lambda: page in searched(s, reader, word), message="the listed member finds the page")

    update = lambda md, mask, etag="", **fields: s.wiki.UpdateSpace(  # noqa: E731
        wp.UpdateSpaceRequest(space=wp.Space(name=space.name, etag=etag, **fields), update_mask={"paths": mask}), metadata=md)
    assert rpc_error(update, reader, ["display_name"], display_name="Ours").code() == SC.PERMISSION_DENIED  # a member, not the owner
    assert rpc_error(update, stranger, ["display_name"], display_name="Ours").code() == SC.NOT_FOUND
    assert rpc_error(update, as_owner, ["owner"], owner="profiles/x").code() == SC.INVALID_ARGUMENT
    assert rpc_error(update, as_owner, ["display_name"], etag='"99"', display_name="Stale").code() == SC.ABORTED
    narrowed = update(as_owner, ["members", "display_name"], display_name="Just me")
    assert list(narrowed.members) == [] and narrowed.display_name == "Just me"
    for call, request in ((s.wiki.GetSpace, wp.GetSpaceRequest(name=space.name)), (s.wiki.GetPage, wp.GetPageRequest(name=page))):
        assert rpc_error(call, request, metadata=reader).code() == SC.NOT_FOUND
    eventually(lambda: page not in searched(s, reader, word), message="the former member no longer finds the page")
    opened = update(as_owner, ["visibility"], visibility=wp.INTERNAL)
    assert opened.visibility == wp.INTERNAL
    assert s.wiki.GetPage(wp.GetPageRequest(name=page), metadata=stranger).name == page
    eventually(lambda: page in searched(s, stranger, word), message="an INTERNAL space's page is found by every employee")


@covers("ListAuditEvents", kind="levels")
def test_the_audit_trail_says_who_did_what_to_whose_content_for_services_only(s, platform, people):
    (author, as_author), _, _, (_, reader) = people
    owner, as_owner = s.person("Audra Owner")
    service = platform.metadata()
    community = unique("aud")
    c_name = f"communities/{community}"
    s.communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community, display_name="Audited", access=cp.Community.OPEN)), metadata=as_owner)
    s.communities.JoinCommunity(cp.JoinCommunityRequest(name=c_name), metadata=as_author)
    micro = s.micro(as_author, "audit me", visibility=pb.Audience.COMMUNITY, community=c_name)
    s.posts.HideItem(pb.HideItemRequest(name=micro, reason="off topic"), metadata=as_owner)
    s.posts.RestoreItem(pb.RestoreItemRequest(name=micro, reason="fine"), metadata=as_owner)

    audit = lambda md=service, **kw: s.search.ListAuditEvents(sp.ListAuditEventsRequest(**kw), metadata=md)  # noqa: E731
    for md in (as_author, as_owner, reader, platform.metadata(unique("g"), "guest"), platform.metadata(unique("a"), "alumni")):
        assert rpc_error(audit, md, resource=micro).code() == SC.PERMISSION_DENIED
    for bad in ({"target_owner": "someone"}, {"actor": "has space"}, {"page_size": 101}, {"page_token": "garbled"}):
        assert rpc_error(audit, **bad).code() == SC.INVALID_ARGUMENT, bad
    expected = ["ItemRestoredByModerator", "ItemHiddenByModerator", "MicropostCreated"]  # newest first
    eventually(lambda: [e.event_type for e in audit(resource=micro).audit_events] == expected, message="the item's trail")
    trail = audit(resource=micro).audit_events
    assert [(e.actor, e.target_owner) for e in trail] == [(owner, f"profiles/{author}")] * 2 + [(author, f"profiles/{author}")]
    stored = {e.envelope.event_id: e.envelope.correlation_id for e in read_events(platform.settings, "posts") if e.aggregate_id == micro.split("/")[1]}
    assert all(e.correlation_id == stored[e.event_id] and e.correlation_id for e in trail)
    assert [e.event_type for e in audit(actor=f"profiles/{owner}", target_owner=f"profiles/{author}").audit_events] == expected[:2]
    # A time range: from the hide (inclusive) to the restore (exclusive).
    assert [e.event_id for e in audit(resource=micro, start_time=trail[1].occur_time, end_time=trail[0].occur_time).audit_events] == [trail[1].event_id]
    assert rpc_error(audit, resource=micro, start_time=trail[0].occur_time, end_time=trail[1].occur_time).code() == SC.INVALID_ARGUMENT

    def paged() -> list[str]:
        names, token = [], ""
        while True:
            page = audit(resource=micro, page_size=1, page_token=token)
            names += [e.event_id for e in page.audit_events]
            token = page.next_page_token
            if not token:
                return names

    assert paged() == [e.event_id for e in trail]
    reindex = subprocess.run([sys.executable, "-m", "tools.cli", "reindex", "audit"], env={**os.environ, "COLUMNS": "200", "WC_LOG_FORMAT": "text"},
                             capture_output=True, text=True, timeout=600)
    assert reindex.returncode == 0, reindex.stderr
    assert [(e.event_id, e.actor, e.target_owner, e.resource) for e in audit(resource=micro).audit_events] == [(e.event_id, e.actor, e.target_owner, e.resource) for e in trail]

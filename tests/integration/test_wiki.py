"""The wiki through the real gRPC API, Kafka and Elasticsearch: concurrent editors,
history, diff, restore, rename resolution, delete, backlinks, visibility."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_info(error: grpc.RpcError) -> dict[str, str]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


@pytest.fixture()
def wiki(platform):
    return platform.stub(wg.WikiServiceStub, "posts")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def new_space(wiki, metadata, visibility=wp.INTERNAL, members=()):
    space_id = unique("s")
    return wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=space_id, display_name=f"Space {space_id}", visibility=visibility, members=list(members))), metadata=metadata)


def test_wiki_lifecycle_with_concurrent_editors(platform, wiki, search):
    alice, bob = unique("a"), unique("b")
    md_a, md_b = platform.author(alice), platform.author(bob)
    space = new_space(wiki, md_a)
    assert space.name == f"spaces/{space.space_id}" and space.owner == f"profiles/{alice}"

    guide = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Kafka Guide", body="Read [[Elastic Search]] first.\n"), request_id=str(uuid.uuid4())), metadata=md_a)
    target = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Elastic Search", body="one\ntwo\nthree\n")), metadata=md_a)
    assert guide.revision == 1 and list(guide.links) == ["Elastic Search"] and target.etag == '"1"'

    # Five editors on revision 1 at once: exactly one wins; the others are told the current revision.
    def edit(i: int):
        try:
            return wiki.EditPage(wp.EditPageRequest(name=target.name, base_revision=1, body=f"one\ntwo by {i}\nthree\n", summary=f"editor {i}"), metadata=md_b)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(edit, range(5)))
    winners = [o for o in outcomes if isinstance(o, wp.Page)]
    losers = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(winners) == 1 and len(losers) == 4
    for error in losers:
        assert error.code() == grpc.StatusCode.ABORTED
        assert error_info(error)["current_revision"] == "2"
        assert bad_request_fields(error) == ["base_revision"]
    current = wiki.GetPage(wp.GetPageRequest(name=target.name), metadata=md_b)
    assert current.revision == 2 and current.body == winners[0].body

    # Rename: the old title keeps resolving, and nobody else may take it.
    renamed = wiki.RenamePage(wp.RenamePageRequest(name=target.name, title="Search Engines", base_revision=2), metadata=md_b)
    assert renamed.revision == 3 and list(renamed.former_titles) == ["Elastic Search"]
    for title in ("Elastic Search", "elastic search", "Search Engines"):
        assert wiki.LookupPage(wp.LookupPageRequest(space=space.name, title=title), metadata=md_b).name == target.name
    taken = rpc_error(wiki.CreatePage, wp.CreatePageRequest(page=wp.Page(space=space.name, title="ÉLASTIC search", body="x")), metadata=md_b)
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS and bad_request_fields(taken) == ["page.title"]

    # Restore revision 1 as revision 4; history, revisions and diffs.
    restored = wiki.RestoreRevision(wp.RestoreRevisionRequest(name=target.name, revision=1, base_revision=3), metadata=md_a)
    assert restored.revision == 4 and restored.body == "one\ntwo\nthree\n" and restored.title == "Search Engines"
    first = wiki.ListRevisions(wp.ListRevisionsRequest(name=target.name, page_size=3), metadata=md_a)
    assert [r.revision for r in first.revisions] == [4, 3, 2] and first.next_page_token
    assert [r.action for r in first.revisions] == ["RESTORED", "RENAMED", "EDITED"]
    rest = wiki.ListRevisions(wp.ListRevisionsRequest(name=target.name, page_size=3, page_token=first.next_page_token), metadata=md_a)
    assert [r.revision for r in rest.revisions] == [1] and not rest.next_page_token
    assert wiki.GetRevision(wp.GetRevisionRequest(name=target.name, revision=2), metadata=md_a).body == winners[0].body
    diff = wiki.DiffRevisions(wp.DiffRevisionsRequest(name=target.name, from_revision=1, to_revision=2), metadata=md_a)
    assert "-two\n" in diff.diff and f"+{winners[0].body.splitlines()[1]}\n" in diff.diff and diff.from_title == "Elastic Search"

    # What links here: the guide links to the page by its old title.
    def backlinks():
        try:
            found = search.ListWikiBacklinks(sp.ListWikiBacklinksRequest(page=target.name), metadata=md_b)
        except grpc.RpcError as error:  # not projected yet
            raise AssertionError(error.details()) from None
        return [p.page for p in found.pages] == [guide.name]

    eventually(backlinks, message="backlink from the guide")

    # Restricted: an outsider cannot see the space or its pages; a member can.
    carol = unique("c")
    secret = new_space(wiki, md_a, wp.RESTRICTED, members=[bob])
    hidden = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=secret.name, title="Plans", body="x")), metadata=md_a)
    assert wiki.GetPage(wp.GetPageRequest(name=hidden.name), metadata=md_b).title == "Plans"
    outsider = rpc_error(wiki.GetPage, wp.GetPageRequest(name=hidden.name), metadata=platform.metadata(carol, "employee"))
    assert outsider.code() == grpc.StatusCode.NOT_FOUND

    # Delete: still readable with its history, no longer editable.
    deleted = wiki.DeletePage(wp.DeletePageRequest(name=target.name, base_revision=4), metadata=md_a)
    assert deleted.deleted and deleted.revision == 5
    gone = rpc_error(wiki.EditPage, wp.EditPageRequest(name=target.name, base_revision=5, body="z"), metadata=md_a)
    assert gone.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Every change is in Kafka once, in order.
    def published():
        events = [e for e in read_events(platform.settings, "posts") if e.aggregate_id == target.name.split("/")[1]]
        return [e.type_name for e in events] if len(events) == 5 else None

    assert eventually(published, message="page events in Kafka") == ["PageCreated", "PageEdited", "PageRenamed", "PageEdited", "PageDeleted"]
    eventually(lambda: not search.ListWikiBacklinks(sp.ListWikiBacklinksRequest(page=guide.name), metadata=md_b).pages, message="guide has no backlinks")
    # Once the deletion is projected, the page itself is gone from search.
    eventually(
        lambda: rpc_error(search.ListWikiBacklinks, sp.ListWikiBacklinksRequest(page=target.name), metadata=md_b).code() == grpc.StatusCode.NOT_FOUND,
        message="deleted page not found in search",
    )


def test_wiki_bad_input_is_named_and_stores_nothing(platform, wiki):
    alice = unique("a")
    md = platform.author(alice)
    space = new_space(wiki, md)
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Home", body="hi")), metadata=md)
    cases = [
        (wiki.CreatePage, wp.CreatePageRequest(page=wp.Page(space=space.name, title="bad [title]", body="x")), grpc.StatusCode.INVALID_ARGUMENT, "page.title"),
        (wiki.CreatePage, wp.CreatePageRequest(page=wp.Page(space="spaces/nope-" + alice, title="T", body="x")), grpc.StatusCode.NOT_FOUND, "page.space"),
        (wiki.EditPage, wp.EditPageRequest(name=page.name, base_revision=0, body="x"), grpc.StatusCode.INVALID_ARGUMENT, "base_revision"),
        (wiki.EditPage, wp.EditPageRequest(name=page.name, base_revision=9, body="x"), grpc.StatusCode.INVALID_ARGUMENT, "base_revision"),
        (wiki.EditPage, wp.EditPageRequest(name=f"pages/{uuid.uuid4()}", base_revision=1, body="x"), grpc.StatusCode.NOT_FOUND, "name"),
        (wiki.RestoreRevision, wp.RestoreRevisionRequest(name=page.name, revision=7, base_revision=1), grpc.StatusCode.INVALID_ARGUMENT, "revision"),
        (wiki.CreateSpace, wp.CreateSpaceRequest(space=wp.Space(space_id="Bad Id", display_name="x", visibility=wp.PUBLIC)), grpc.StatusCode.INVALID_ARGUMENT, "space.space_id"),
        (wiki.CreateSpace, wp.CreateSpaceRequest(space=wp.Space(space_id=space.space_id, display_name="x", visibility=wp.PUBLIC)), grpc.StatusCode.ALREADY_EXISTS, "space.space_id"),
    ]
    for call, request, code, field in cases:
        error = rpc_error(call, request, metadata=md)
        assert error.code() == code, (request, error.details())
        assert bad_request_fields(error) == [field], (request, error.details())
    # A guest may not write.
    guest = rpc_error(wiki.EditPage, wp.EditPageRequest(name=page.name, base_revision=1, body="x"), metadata=platform.metadata(unique("g"), "guest"))
    assert guest.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    after = wiki.GetPage(wp.GetPageRequest(name=page.name), metadata=md)
    assert after.revision == 1 and after.body == "hi"
    assert wiki.ListRevisions(wp.ListRevisionsRequest(name=page.name), metadata=md).revisions[0].revision == 1


def test_pages_and_media_take_comments_and_likes_through_the_posts_mechanism(platform, wiki):
    from watercooler.posts.v1 import media_pb2 as mp
    from watercooler.posts.v1 import media_pb2_grpc as mg
    from watercooler.posts.v1 import posts_pb2 as pb
    from watercooler.posts.v1 import posts_pb2_grpc as pg

    posts = platform.stub(pg.PostServiceStub, "posts")
    media = platform.stub(mg.MediaServiceStub, "posts")
    owner, member, outsider = unique("a"), unique("m"), unique("x")
    md_o, md_m, md_x = (platform.author(p) for p in (owner, member, outsider))
    open_space = new_space(wiki, md_o)
    closed_space = new_space(wiki, md_o, wp.RESTRICTED, members=[member])
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=open_space.name, title="Open", body="x")), metadata=md_o)
    closed = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=closed_space.name, title="Closed", body="x")), metadata=md_o)
    item = media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title="Clip", kind=mp.MediaItem.VIDEO, size_bytes=5, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri="s3://b/c")), metadata=md_o)

    for target in (page.name, item.name):
        comment = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=target, body="Nice")), metadata=md_x)
        assert comment.target == target
        assert posts.Like(pb.LikeRequest(target=target), metadata=md_x) is not None
    assert posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=closed.name, body="ok")), metadata=md_m).target == closed.name
    hidden = rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=closed.name, body="?")), metadata=md_x)
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    missing = rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=f"pages/{uuid.uuid4()}", body="?")), metadata=md_x)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    wiki.DeletePage(wp.DeletePageRequest(name=page.name, base_revision=1), metadata=md_o)
    assert rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=page.name, body="late")), metadata=md_x).code() == grpc.StatusCode.FAILED_PRECONDITION

"""The visibility matrix for classification labels: a CONFIDENTIAL item answers as if absent to
alumni and guests on every read path, whatever its visibility says, and is never PUBLIC.

The one reader the label changes something for, besides the visibility levels (a CONFIDENTIAL
item is never PUBLIC, and INTERNAL or narrower items reach no guest or alumnus anyway): an
author who has left the company. Their INTERNAL post is still theirs to read; their
CONFIDENTIAL post, and the comments on it, are gone for them, by name, in lists, searches and
counts, while a colleague still reads everything. Guests are checked too (they see neither)."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_search_unified import Stubs, unique, word
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
V, C = pb.Audience, pb.Classification
SC = gp.Classification


def covers(*reads: str, kind: str):
    """Declares the reads a case asserts on (tests/unit/test_read_gate.py reads it)."""
    assert kind == "confidential", kind

    def mark(test):
        return test

    return mark


@pytest.fixture(scope="module")
def world(platform):
    s = Stubs(platform)
    author, as_author = s.person("Leaving Author")
    colleague, as_colleague = s.person("Staying Colleague")
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    blog = s.blog(as_author, visibility=V.PUBLIC)
    words = {"confidential": word(8), "internal": word(8)}
    tag = word(8)
    names = {}
    for item, label in (("confidential", C.CONFIDENTIAL), ("internal", C.INTERNAL)):
        post = s.posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(
            title=f"{words[item]} plans", body=words[item], tags=[tag, words[item]], visibility=V.INTERNAL, classification=label)), metadata=as_author)
        s.posts.PublishPost(pb.PublishPostRequest(name=post.name), metadata=as_author)
        names[item] = post.name
        names[f"comment_{item}"] = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body=f"{words[item]} noted")),
                                                         metadata=as_colleague).name
    for item, label in (("micro_confidential", C.CONFIDENTIAL), ("micro_internal", C.INTERNAL)):
        words[item] = word(8)
        names[item] = s.posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(
            text=f"{words[item]} #{tag}", visibility=V.INTERNAL, classification=label)), metadata=as_author).name
    for item, label in (("bookmark_confidential", C.CONFIDENTIAL), ("bookmark_internal", C.INTERNAL)):
        names[item] = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(
            url=f"https://example.com/{unique('l')}", title=word(8), tags=[tag], visibility=V.INTERNAL, classification=label)), metadata=as_author).name
    for item, label in (("status_confidential", SC.CONFIDENTIAL), ("status_internal", SC.INTERNAL)):
        words[item] = word(8)
        names[item] = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(
            text=f"{words[item]} news", visibility=gp.StatusUpdate.INTERNAL, classification=label)), metadata=as_author).name
    graph.Follow(gp.FollowRequest(parent=f"profiles/{colleague}", target=f"profiles/{author}"), metadata=as_colleague)
    for item, label in (("space_confidential", C.CONFIDENTIAL), ("space_internal", C.INTERNAL)):
        words[item] = word(8)
        names[item] = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Plans", visibility=wp.INTERNAL,
                                                                             classification=label)), metadata=as_author).name
        names[f"page_{item}"] = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=names[item], title=f"{words[item]} page", body=words[item])),
                                                  metadata=as_author).name
    for item, label in (("media_confidential", C.CONFIDENTIAL), ("media_internal", C.INTERNAL)):
        words[item] = word(8)
        names[item] = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
            title=f"{words[item]} clip", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", tags=[tag], visibility=wp.INTERNAL,
            storage_uri="s3://b/x", classification=label)), metadata=as_author).name
    for item in ("space_confidential", "space_internal", "media_confidential", "media_internal"):  # a colleague's comment on each
        target = names[f"page_{item}"] if item.startswith("space") else names[item]
        names[f"comment_{item}"] = s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=target, body=f"{words[item]} seen")),
                                                         metadata=as_colleague).name
    s.profiles.LeaveCompany(prp.LeaveCompanyRequest(name=f"profiles/{author}", reason="moved on"), metadata=platform.metadata())

    def indexed():
        assert platform.es.count(index=platform.alias("posts"), query={"term": {"tags": tag}})["count"] == 4
        assert platform.es.count(index=platform.alias("bookmarks"), query={"term": {"tags": tag}})["count"] == 2
        assert platform.es.count(index=platform.alias("comments"), query={"terms": {"name": [names["comment_confidential"], names["comment_internal"]]}})["count"] == 2
        assert platform.es.count(index=platform.alias("statuses"), query={"term": {"author_id": author}})["count"] == 2
        assert platform.es.count(index=platform.alias("media"), query={"term": {"tags": tag}})["count"] == 2
        pages = [names["page_space_confidential"].split("/")[1], names["page_space_internal"].split("/")[1]]
        assert platform.es.count(index=platform.alias("wiki"), query={"ids": {"values": pages}})["count"] == 2
        on_library = [names[f"comment_{i}"] for i in ("space_confidential", "space_internal", "media_confidential", "media_internal")]
        assert platform.es.count(index=platform.alias("comments"), query={"terms": {"name": on_library}})["count"] == 4
        return True

    eventually(indexed, message="classified posts and their comments indexed")
    for item in ("confidential", "internal"):  # the comments have their published target's audience
        eventually(lambda item=item: [c.name for c in s.search.ListComments(sp.ListCommentsRequest(target=names[item]), metadata=as_colleague).comments]
                   == [names[f"comment_{item}"]], message="comments follow their published post")
    readers = {"colleague": as_colleague, "alumnus_author": platform.metadata(author, "alumni"), "guest": platform.metadata(unique("g"), "guest")}
    return dict(s=s, names=names, words=words, tag=tag, blog=blog, readers=readers, graph=graph, author=author, colleague=colleague)


# Who reads each item: the alumnus keeps their own INTERNAL post, not the CONFIDENTIAL one.
SEES = {"confidential": {"colleague"}, "internal": {"colleague", "alumnus_author"}}
MICRO_SEES = {"micro_confidential": {"colleague"}, "micro_internal": {"colleague", "alumnus_author"}}
BOOKMARK_SEES = {"bookmark_confidential": {"colleague"}, "bookmark_internal": {"colleague", "alumnus_author"}}
STATUS_SEES = {"status_confidential": {"colleague"}, "status_internal": {"colleague", "alumnus_author"}}
MEDIA_SEES = {"media_confidential": {"colleague"}, "media_internal": {"colleague", "alumnus_author"}}
SPACE_SEES = {"space_confidential": {"colleague"}, "space_internal": {"colleague", "alumnus_author"}}


@pytest.mark.parametrize("who", ["colleague", "alumnus_author", "guest"])
@covers("GetPost", "GetMicropost", "GetBookmark", "SearchBookmarks", "ListPostRevisions", "GetComment", "ListComments", "SearchPosts", "Search", "GetPostStats", kind="confidential")
def test_a_confidential_post_and_its_comments_answer_as_absent_to_alumni_and_guests(world, who):
    s, names, md = world["s"], world["names"], world["readers"][who]
    for item, readers in SEES.items():
        expected = who in readers
        post = names[item]

        def code(call, request):
            try:
                call(request, metadata=md)
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                return error.code()

        shown = grpc.StatusCode.OK if expected else grpc.StatusCode.NOT_FOUND
        assert code(s.posts.GetPost, pb.GetPostRequest(name=post)) == shown, (item, "GetPost")
        assert code(s.posts.ListPostRevisions, pb.ListPostRevisionsRequest(parent=post)) == shown, (item, "ListPostRevisions")
        assert code(s.posts.GetComment, pb.GetCommentRequest(name=names[f"comment_{item}"])) == shown, (item, "GetComment")
        listed = s.search.ListComments(sp.ListCommentsRequest(target=post), metadata=md) if expected else None
        if listed is not None:
            assert [c.name for c in listed.comments] == [names[f"comment_{item}"]]
        else:
            try:
                listed = s.search.ListComments(sp.ListCommentsRequest(target=post), metadata=md)
                assert not listed.comments, (item, "ListComments")
            except grpc.RpcError as error:
                assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), (item, "ListComments", error.code())
        found = {p.name for p in s.search.SearchPosts(sp.SearchPostsRequest(query=world["words"][item]), metadata=md).posts}
        assert (post in found) == expected, (item, "SearchPosts")
        hits = {h.name for h in s.search.Search(sp.SearchRequest(query=world["words"][item]), metadata=md).hits}
        assert (post in hits) == expected and (names[f"comment_{item}"] in hits) == expected, (item, "Search", hits)
    for item, readers in MICRO_SEES.items():
        try:
            s.posts.GetMicropost(pb.GetMicropostRequest(name=names[item]), metadata=md)
            shown = True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, (item, error.code())
            shown = False
        found = {p.name for p in s.search.SearchPosts(sp.SearchPostsRequest(query=world["words"][item]), metadata=md).posts}
        assert shown == (who in readers) == (names[item] in found), (item, "GetMicropost / SearchPosts")
    saved = {b.name for b in s.search.SearchBookmarks(sp.SearchBookmarksRequest(tag=world["tag"], page_size=10), metadata=md).bookmarks}
    for item, readers in BOOKMARK_SEES.items():
        try:
            s.posts.GetBookmark(pb.GetBookmarkRequest(name=names[item]), metadata=md)
            shown = True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, (item, error.code())
            shown = False
        assert shown == (who in readers) == (names[item] in saved), (item, "GetBookmark / SearchBookmarks")
    # Counts: the tag every item carries counts only what the reader may see.
    tags = {t.tag: t.count for t in s.search.GetPostStats(sp.GetPostStatsRequest(), metadata=md).popular_tags} if who != "guest" else {}
    if who != "guest":
        seen = [i for i, readers in (SEES | MICRO_SEES).items() if who in readers]
        assert tags.get(world["tag"], 0) == len(seen), tags.get(world["tag"])


@pytest.mark.parametrize("who", ["colleague", "alumnus_author", "guest"])
@covers("ListStatusUpdates", "GetNetworkFeed", kind="confidential")
def test_a_confidential_status_update_answers_as_absent_to_alumni_and_guests(world, who):
    s, names, md = world["s"], world["names"], world["readers"][who]
    listed = {u.name for u in s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{world['author']}", page_size=50), metadata=md).status_updates}
    for item, readers in STATUS_SEES.items():
        assert (names[item] in listed) == (who in readers), (item, "ListStatusUpdates")
    if who == "colleague":  # (the others follow nobody: their feed shows none of it anyway)
        feed = {i.name for i in s.search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{world['colleague']}", page_size=50), metadata=md).items}
        assert {names["status_confidential"], names["status_internal"]} <= feed


@pytest.mark.parametrize("who", ["colleague", "alumnus_author", "guest"])
@covers("GetMediaItem", "ListMediaItems", "Search", "GetComment", "ListComments", kind="confidential")
def test_a_confidential_media_item_answers_as_absent_to_alumni_and_guests(world, who):
    s, names, md = world["s"], world["names"], world["readers"][who]
    listed = {i.media_item for i in s.search.ListMediaItems(sp.ListMediaItemsRequest(owner=f"profiles/{world['author']}", page_size=50), metadata=md).media_items}
    for item, readers in MEDIA_SEES.items():
        try:
            s.media.GetMediaItem(mp.GetMediaItemRequest(name=names[item]), metadata=md)
            shown = True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, (item, error.code())
            shown = False
        hits = {h.name for h in s.search.Search(sp.SearchRequest(query=world["words"][item]), metadata=md).hits}
        assert shown == (who in readers) == (names[item] in listed) == (names[item] in hits), (item, shown, names[item] in listed, names[item] in hits)
        assert comment_shown(s, names, item, names[item], md) == (who in readers), (item, "comment")


@pytest.mark.parametrize("who", ["colleague", "alumnus_author", "guest"])
@covers("GetSpace", "GetPage", "Search", "GetComment", "ListComments", kind="confidential")
def test_a_confidential_space_and_its_pages_answer_as_absent_to_alumni_and_guests(world, who):
    s, names, md = world["s"], world["names"], world["readers"][who]
    for item, readers in SPACE_SEES.items():
        shown = {}
        for read, call, request in (("GetSpace", s.wiki.GetSpace, wp.GetSpaceRequest(name=names[item])), ("GetPage", s.wiki.GetPage, wp.GetPageRequest(name=names[f"page_{item}"]))):
            try:
                call(request, metadata=md)
                shown[read] = True
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, (item, read, error.code())
                shown[read] = False
        hits = {h.name for h in s.search.Search(sp.SearchRequest(query=world["words"][item]), metadata=md).hits}
        shown["Search"] = names[f"page_{item}"] in hits
        shown["comment"] = comment_shown(s, names, item, names[f"page_{item}"], md)
        assert shown == dict.fromkeys(shown, who in readers), (item, shown)


def test_a_confidential_space_is_never_public(world):
    s = world["s"]
    _, as_writer = s.person("Careful Editor")
    space = wp.Space(space_id=unique("s"), display_name="S", visibility=wp.PUBLIC, classification=C.CONFIDENTIAL)
    refused = rpc_error(s.wiki.CreateSpace, wp.CreateSpaceRequest(space=space), metadata=as_writer)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused) == ["space.classification"]
    space.visibility = wp.INTERNAL
    secret = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=space), metadata=as_writer)
    assert secret.classification == C.CONFIDENTIAL
    made_public = rpc_error(s.wiki.UpdateSpace, wp.UpdateSpaceRequest(space=wp.Space(name=secret.name, visibility=wp.PUBLIC), update_mask={"paths": ["visibility"]}),
                            metadata=as_writer)
    assert made_public.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(made_public) == ["space.visibility"]
    assert s.wiki.GetSpace(wp.GetSpaceRequest(name=secret.name), metadata=as_writer).visibility == wp.INTERNAL


def test_a_confidential_media_item_is_never_public(world):
    s = world["s"]
    _, as_writer = s.person("Careful Filmer")
    clip = mp.MediaItem(title="clip", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4", storage_uri="s3://b/x")
    clip.visibility, clip.classification = wp.PUBLIC, C.CONFIDENTIAL
    refused = rpc_error(s.media.RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=clip), metadata=as_writer)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused) == ["media_item.classification"]
    clip.visibility = wp.INTERNAL
    secret = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=clip), metadata=as_writer)
    assert secret.classification == C.CONFIDENTIAL
    made_public = rpc_error(s.media.UpdateMediaItem, mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=secret.name, visibility=wp.PUBLIC),
                                                                               update_mask={"paths": ["visibility"]}), metadata=as_writer)
    assert made_public.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(made_public) == ["media_item.visibility"]
    assert s.media.GetMediaItem(mp.GetMediaItemRequest(name=secret.name), metadata=as_writer).visibility == wp.INTERNAL


def test_a_confidential_status_update_is_never_public(world):
    s = world["s"]
    writer, as_writer = s.person("Careful Poster")
    refused = rpc_error(world["graph"].CreateStatusUpdate, gp.CreateStatusUpdateRequest(parent=f"profiles/{writer}", status_update=gp.StatusUpdate(
        text="x", visibility=gp.StatusUpdate.PUBLIC, classification=SC.CONFIDENTIAL)), metadata=as_writer)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused) == ["status_update.classification"]
    assert not s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{writer}"), metadata=as_writer).status_updates
    kept = world["graph"].CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{writer}", status_update=gp.StatusUpdate(
        text="x", visibility=gp.StatusUpdate.PUBLIC)), metadata=as_writer)
    assert kept.classification == SC.INTERNAL  # the default


def comment_shown(s, names, item: str, target: str, md) -> bool:
    """Whether the comment on ``target`` is read by name and listed, asserting both agree."""
    try:
        s.posts.GetComment(pb.GetCommentRequest(name=names[f"comment_{item}"]), metadata=md)
        by_name = True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, (item, "GetComment", error.code())
        by_name = False
    try:
        listed = names[f"comment_{item}"] in {c.name for c in s.search.ListComments(sp.ListCommentsRequest(target=target), metadata=md).comments}
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), (item, "ListComments", error.code())
        listed = False
    assert by_name == listed, (item, by_name, listed)
    return by_name


def test_a_confidential_post_is_never_public(world):
    s = world["s"]
    # (The world's author has left: a writer of their own.)
    _, as_writer = s.person("Careful Writer")
    blog = s.blog(as_writer, visibility=V.PUBLIC)
    link = pb.Bookmark(url=f"https://example.com/{unique('l')}", visibility=V.PUBLIC)
    saved_public = s.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=link), metadata=as_writer)
    relabel = rpc_error(s.posts.UpdateBookmark, pb.UpdateBookmarkRequest(bookmark=pb.Bookmark(name=saved_public.name, classification=C.CONFIDENTIAL),
                                                                       update_mask={"paths": ["classification"]}), metadata=as_writer)
    assert relabel.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(relabel) == ["bookmark.classification"]
    micro = rpc_error(s.posts.CreateMicropost, pb.CreateMicropostRequest(micropost=pb.Micropost(text="x", visibility=V.PUBLIC, classification=C.CONFIDENTIAL)),
                      metadata=as_writer)
    assert micro.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(micro) == ["micropost.classification"]
    both = rpc_error(s.posts.CreatePost, pb.CreatePostRequest(parent=blog, post=pb.Post(title="t", visibility=V.PUBLIC, classification=C.CONFIDENTIAL)), metadata=as_writer)
    assert both.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(both) == ["post.classification"]
    secret = s.posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title="t", visibility=V.INTERNAL, classification=C.CONFIDENTIAL)), metadata=as_writer)
    assert secret.classification == C.CONFIDENTIAL
    made_public = rpc_error(s.posts.UpdatePost, pb.UpdatePostRequest(post=pb.Post(name=secret.name, visibility=V.PUBLIC), update_mask={"paths": ["visibility"]}), metadata=as_writer)
    assert made_public.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(made_public) == ["post.visibility"]
    public = s.posts.CreatePost(pb.CreatePostRequest(parent=blog, post=pb.Post(title="t", visibility=V.PUBLIC)), metadata=as_writer)
    assert public.classification == C.INTERNAL  # the default
    relabelled = rpc_error(s.posts.UpdatePost, pb.UpdatePostRequest(post=pb.Post(name=public.name, classification=C.CONFIDENTIAL), update_mask={"paths": ["classification"]}),
                           metadata=as_writer)
    assert relabelled.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(relabelled) == ["post.classification"]
    # Nothing was stored for the refusals; an edit that keeps the label keeps it.
    assert s.posts.GetPost(pb.GetPostRequest(name=secret.name), metadata=as_writer).visibility == V.INTERNAL
    edited = s.posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=secret.name, title="u"), update_mask={"paths": ["title"]}), metadata=as_writer)
    assert edited.classification == C.CONFIDENTIAL and edited.revision == 2

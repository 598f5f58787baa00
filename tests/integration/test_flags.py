"""Community self-regulation: N distinct flags hide an item everywhere; restore by votes or by the author's edit."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import read_events, rpc_error
from tests.integration.test_blogs_directory import publish
from tests.integration.test_posts_lifecycle import blog, found, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def test_flag_hide_restore_by_votes_and_by_author_edit(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    _, as_ana = person(platform, "Ana Flagged")
    others = [person(platform, f"Neighbour {i}")[1] for i in range(6)]
    b = blog(posts, as_ana)
    word = unique("flagword")
    post = publish(posts, as_ana, b.name, f"{word} post")
    eventually(lambda: post.name in found(search, others[0], query=word), message="visible")

    flag = lambda md: posts.FlagItem(pb.FlagItemRequest(name=post.name, reason="off topic"), metadata=md)  # noqa: E731
    assert flag(others[0]).flag_count == 1
    assert rpc_error(flag, others[0]).code() == grpc.StatusCode.ALREADY_EXISTS  # distinct people only
    assert not flag(others[1]).hidden
    state = flag(others[2])
    assert state.hidden and state.threshold == 3

    def hidden_everywhere():
        assert post.name not in found(search, others[3], query=word)
        assert post.name not in found(search, as_ana, query=word)
        entry = [e for e in search.ListBlogDirectory(sp.ListBlogDirectoryRequest(page_size=100), metadata=others[3]).blogs if e.blog == b.name]
        assert not entry or entry[0].post_count == 0
        return True

    eventually(hidden_everywhere, message="hidden from search and directory counts")
    comment = rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="hi")), metadata=others[4])
    assert comment.code() == grpc.StatusCode.NOT_FOUND  # hidden: not there for anyone but its author
    assert rpc_error(posts.VoteRestoreItem, pb.VoteRestoreItemRequest(name=post.name), metadata=others[0]).code() == grpc.StatusCode.FAILED_PRECONDITION

    for md in others[3:5]:
        assert posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=post.name), metadata=md).hidden
    assert not posts.VoteRestoreItem(pb.VoteRestoreItemRequest(name=post.name), metadata=others[5]).hidden
    eventually(lambda: post.name in found(search, others[3], query=word), message="restored by votes")

    # Hidden again, then the author's edit brings it back.
    for md in others[3:6]:
        flag(md)
    eventually(lambda: post.name not in found(search, others[0], query=word), message="hidden again")
    current = posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_ana)
    assert current.hidden
    edited = posts.UpdatePost(
        pb.UpdatePostRequest(post=pb.Post(name=post.name, body="toned down", etag=current.etag), update_mask={"paths": ["body"]}), metadata=as_ana
    )
    assert not edited.hidden
    eventually(lambda: post.name in found(search, others[0], query=word), message="restored by the author's edit")
    kinds = [e.type_name for e in read_events(platform.settings, "posts") if e.aggregate_id == post.name.split("/")[1]]
    assert kinds.count("ItemHidden") == 2 and kinds.count("ItemRestored") == 2 and kinds.count("ItemFlagged") == 6


def test_flagged_comments_and_microposts_hide_too(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    _, as_ana = person(platform, "Ana Chatty")
    others = [person(platform, f"Reader {i}")[1] for i in range(3)]
    m = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=f"{unique('m')} spam", visibility=pb.Audience.INTERNAL)), metadata=as_ana)
    c = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=m.name, body="more spam")), metadata=as_ana)
    eventually(lambda: [x.name for x in search.ListComments(sp.ListCommentsRequest(target=m.name), metadata=others[0]).comments] == [c.name])
    for md in others:
        posts.FlagItem(pb.FlagItemRequest(name=c.name, reason="spam"), metadata=md)
        posts.FlagItem(pb.FlagItemRequest(name=m.name, reason="spam"), metadata=md)
    eventually(lambda: not search.ListComments(sp.ListCommentsRequest(target=m.name), metadata=others[0]).comments, message="comment hidden")
    eventually(
        lambda: m.name not in {p.name for p in search.ListTimeline(sp.ListTimelineRequest(person=m.author), metadata=others[0]).posts},
        message="micropost hidden",
    )
    bad = rpc_error(posts.FlagItem, pb.FlagItemRequest(name="blogs/x", reason="r"), metadata=others[0])
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_reason = rpc_error(posts.FlagItem, pb.FlagItemRequest(name=m.name, reason=""), metadata=as_ana)
    assert no_reason.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)


def test_only_an_edit_of_the_text_answers_the_flags(platform):
    """Tags or the audience alone do not lift flags; changing what people read does."""
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, as_ana = person(platform, "Ana Retagging")
    flaggers = [person(platform, f"Flagger {i}")[1] for i in range(3)]
    post = publish(posts, as_ana, blog(posts, as_ana).name, "flag me")
    micro = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text="flag me too", visibility=pb.Audience.INTERNAL)), metadata=as_ana)
    bookmark = posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{unique('f')}", title="flag me", visibility=pb.Audience.INTERNAL)), metadata=as_ana)
    for name in (post.name, micro.name, bookmark.name):
        for md in flaggers:
            posts.FlagItem(pb.FlagItemRequest(name=name, reason="spam"), metadata=md)

    get = lambda: posts.GetPost(pb.GetPostRequest(name=post.name), metadata=as_ana)  # noqa: E731
    retagged = posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=post.name, tags=["one-more"], etag=get().etag), update_mask={"paths": ["tags"]}), metadata=as_ana)
    assert retagged.hidden and list(retagged.tags) == ["one-more"]
    moved = posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=post.name, visibility=pb.Audience.PUBLIC, etag=retagged.etag), update_mask={"paths": ["visibility"]}), metadata=as_ana)
    assert moved.hidden
    assert rpc_error(posts.GetPost, pb.GetPostRequest(name=post.name), metadata=flaggers[0]).code() == grpc.StatusCode.NOT_FOUND
    assert not posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=post.name, title="flag me, reworded", etag=moved.etag), update_mask={"paths": ["title"]}), metadata=as_ana).hidden

    same = posts.UpdateMicropost(pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micro.name, text="flag me too"), update_mask={"paths": ["text"]}), metadata=as_ana)
    assert same.hidden  # the same text again answers nothing
    assert not posts.UpdateMicropost(pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micro.name, text="reworded"), update_mask={"paths": ["text"]}), metadata=as_ana).hidden

    tagged = posts.UpdateBookmark(pb.UpdateBookmarkRequest(bookmark=pb.Bookmark(name=bookmark.name, tags=["x"]), update_mask={"paths": ["tags"]}), metadata=as_ana)
    assert tagged.hidden
    assert not posts.UpdateBookmark(pb.UpdateBookmarkRequest(bookmark=pb.Bookmark(name=bookmark.name, notes="why I saved it"), update_mask={"paths": ["notes"]}), metadata=as_ana).hidden

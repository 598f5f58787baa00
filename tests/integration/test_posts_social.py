"""Microblog, comments, ratings and likes through the real APIs, Kafka and Elasticsearch."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from tests.integration.test_blogs_directory import publish
from tests.integration.test_posts_lifecycle import V, blog, found, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


@pytest.fixture()
def posts(platform):
    return platform.stub(pg.PostServiceStub, "posts")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def micro(posts, metadata, text, **kwargs):
    return posts.CreateMicropost(
        pb.CreateMicropostRequest(micropost=pb.Micropost(text=text, visibility=kwargs.pop("visibility", V.INTERNAL), **kwargs)), metadata=metadata
    )


def test_microposts_mentions_hashtags_replies_reposts_and_timeline(platform, posts, search):
    ana, as_ana = person(platform, "Ana Micro")
    bob, as_bob = person(platform, "Bob Micro")
    tag = unique("tag")
    first = micro(posts, as_ana, f"hello @{bob} #{tag} #Kafka")
    assert list(first.mentions) == [f"profiles/{bob}"] and list(first.hashtags) == [tag, "kafka"]
    reply = micro(posts, as_bob, "hi back", reply_to=first.name)
    repost = micro(posts, as_bob, "", repost_of=first.name)
    assert reply.reply_to == first.name and repost.repost_of == first.name

    # Bad input: too long, unknown mention, unknown reply target; nothing stored.
    too_long = rpc_error(micro, posts, as_ana, "x" * 281)
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(too_long) == ["micropost.text"]
    unknown = rpc_error(micro, posts, as_ana, "hey @nobody-by-this-name")
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(unknown) == ["micropost.text"]
    missing = rpc_error(micro, posts, as_ana, "re", reply_to=f"microposts/{uuid.uuid4()}")
    assert missing.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(missing) == ["micropost.reply_to"]

    def timeline():
        names = [p.name for p in search.ListTimeline(sp.ListTimelineRequest(person=f"profiles/{bob}"), metadata=as_ana).posts]
        assert names == [repost.name, reply.name]
        return names

    eventually(timeline, message="bob's timeline, newest first")
    eventually(lambda: first.name in found(search, as_bob, tag=tag), message="hashtag search")
    assert first.name in found(search, as_bob, mentions=f"profiles/{bob}")
    assert not [e for e in read_events(platform.settings, "posts") if e.type_name == "MicropostCreated" and e.payload.text.startswith("hey @nobody")]


def test_threaded_comments_edit_delete_and_likes(platform, posts, search):
    ana, as_ana = person(platform, "Ana Comments")
    _, as_bob = person(platform, "Bob Comments")
    b = blog(posts, as_ana)
    post = publish(posts, as_ana, b.name, "commented")
    top = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="first!")), metadata=as_bob)
    answer = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post.name, parent=top.name, body="thanks")), metadata=as_ana)
    m = micro(posts, as_ana, "comment me")
    on_micro = posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=m.name, body="nice")), metadata=as_bob)
    assert on_micro.target == m.name

    edited = posts.UpdateComment(
        pb.UpdateCommentRequest(comment=pb.Comment(name=top.name, body="first (edited)", etag=top.etag), update_mask={"paths": ["body"]}), metadata=as_bob
    )
    assert edited.body == "first (edited)"
    denied = rpc_error(
        posts.UpdateComment, pb.UpdateCommentRequest(comment=pb.Comment(name=top.name, body="x"), update_mask={"paths": ["body"]}), metadata=as_ana
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    stale = rpc_error(
        posts.UpdateComment,
        pb.UpdateCommentRequest(comment=pb.Comment(name=top.name, body="y", etag=top.etag), update_mask={"paths": ["body"]}),
        metadata=as_bob,
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    posts.Like(pb.LikeRequest(target=top.name), metadata=as_ana)
    posts.Like(pb.LikeRequest(target=top.name), metadata=as_ana)  # idempotent
    posts.Like(pb.LikeRequest(target=m.name), metadata=as_bob)

    def thread():
        comments = search.ListComments(sp.ListCommentsRequest(target=post.name), metadata=as_bob).comments
        assert [(c.name, c.parent) for c in comments] == [(top.name, ""), (answer.name, top.name)]
        assert comments[0].edited and comments[0].body == "first (edited)" and comments[0].like_count == 1
        return comments

    eventually(thread, message="threaded comments")
    def micropost_likes() -> int:
        hit = found(search, as_bob, kind="micro", author=f"profiles/{ana}").get(m.name)
        return hit.like_count if hit is not None else -1  # not indexed yet

    eventually(lambda: micropost_likes() == 1, message="micropost like")
    posts.DeleteComment(pb.DeleteCommentRequest(name=answer.name), metadata=as_ana)
    eventually(lambda: [c.name for c in search.ListComments(sp.ListCommentsRequest(target=post.name), metadata=as_bob).comments] == [top.name])

    # Commenting on a deleted post is NOT_FOUND, as reading it is (a deleted item is nobody's:
    # answering "was deleted" would tell a stranger that a PRIVATE post had existed), and stores nothing.
    posts.DeletePost(pb.DeletePostRequest(name=post.name), metadata=as_ana)
    error = rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=post.name, body="late")), metadata=as_bob)
    assert error.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(error) == ["comment.target"]
    bad_target = rpc_error(posts.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target="nonsense/1", body="x")), metadata=as_bob)
    assert bad_target.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad_target) == ["comment.target"]
    assert not [e for e in read_events(platform.settings, "posts") if e.type_name == "CommentCreated" and e.payload.body == "late"]


def test_ratings_are_one_per_person_changeable_withdrawable_and_exact(platform, posts, search):
    _, as_ana = person(platform, "Ana Rated")
    raters = [person(platform, f"Rater {i}")[1] for i in range(3)]
    b = blog(posts, as_ana)
    post = publish(posts, as_ana, b.name, unique("rated"))
    for metadata, value in zip(raters, (5, 4, 4), strict=False):
        posts.RatePost(pb.RatePostRequest(post=post.name, value=value), metadata=metadata)
    posts.RatePost(pb.RatePostRequest(post=post.name, value=1), metadata=raters[0])  # last one wins: 1, 4, 4

    def rated(count, average):
        def check():
            try:
                stats = search.GetPostStats(sp.GetPostStatsRequest(post=post.name), metadata=as_ana)
            except grpc.RpcError as error:  # NOT_FOUND until the post is projected: retried
                raise AssertionError(error.details()) from None
            assert (stats.rating_count, round(stats.rating_average, 6)) == (count, average)
            hit = found(search, as_ana, blog=b.name)[post.name]
            assert (hit.rating_count, round(hit.rating_average, 6)) == (count, average)
            return True

        eventually(check, message=f"{count} ratings averaging {average}")

    rated(3, 3.0)
    posts.WithdrawRating(pb.WithdrawRatingRequest(post=post.name), metadata=raters[1])
    rated(2, 2.5)
    again = rpc_error(posts.WithdrawRating, pb.WithdrawRatingRequest(post=post.name), metadata=raters[1])
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    posts.RatePost(pb.RatePostRequest(post=post.name, value=2), metadata=raters[1])
    rated(3, round(7 / 3, 6))
    for value in (0, 6, -1):
        error = rpc_error(posts.RatePost, pb.RatePostRequest(post=post.name, value=value), metadata=raters[2])
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["value"]
    rated(3, round(7 / 3, 6))

"""Blogs and posts end to end, for real: gRPC -> event store -> Kafka -> Elasticsearch -> search."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as ppg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration
V = pb.Audience


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def posts(platform):
    return platform.stub(pg.PostServiceStub, "posts")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def person(
    platform, display_name: str, sort_name: str = "", kind: str = "employee", department: str = "Research", country: str = "DE", accepted: bool = True
):
    """A new profile and its metadata; ``accepted``: it has accepted the participation guidelines."""
    employee = unique("p")
    platform.stub(ppg.ProfileServiceStub, "profiles").CreateProfile(
        pp.CreateProfileRequest(
            profile=pp.Profile(employee_id=employee, display_name=display_name, sort_name=sort_name, department=department, country=country)
        ),
        metadata=platform.metadata(),
    )
    if accepted:
        platform.accept_guidelines(employee)
    return employee, platform.metadata(employee, kind)


def blog(posts, metadata, title="A blog", visibility=V.INTERNAL, community=""):
    handle = unique("b-")
    return posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=handle, title=title, visibility=visibility, community=community)), metadata=metadata)


def found(search, metadata, **kwargs):
    return {hit.name: hit for hit in search.SearchPosts(sp.SearchPostsRequest(**kwargs), metadata=metadata).posts}


def test_draft_publish_edit_revisions_tags_and_tombstone(platform, posts, search):
    ana, as_ana = person(platform, "Ana Ñúñez")
    _, as_bob = person(platform, "Bob Stone")
    b = blog(posts, as_ana)
    word = unique("zebra")
    draft = posts.CreatePost(
        pb.CreatePostRequest(
            parent=b.name, post=pb.Post(title=f"On {word}", body="first", tags=["Kafka"], visibility=V.INTERNAL), request_id=str(uuid.uuid4())
        ),
        metadata=as_ana,
    )
    assert draft.state == pb.Post.DRAFT and draft.author == f"profiles/{ana}" and list(draft.tags) == ["kafka"]

    # A draft reaches its author only.
    eventually(lambda: draft.name in found(search, as_ana, query=word), message="draft indexed")
    assert draft.name not in found(search, as_bob, query=word)
    assert rpc_error(posts.GetPost, pb.GetPostRequest(name=draft.name), metadata=as_bob).code() == grpc.StatusCode.NOT_FOUND

    published = posts.PublishPost(pb.PublishPostRequest(name=draft.name, etag=draft.etag), metadata=as_ana)
    assert published.state == pb.Post.PUBLISHED and published.HasField("publish_time")
    eventually(lambda: draft.name in found(search, as_bob, query=word), message="published post visible to colleagues")

    # Edits keep every revision; a stale etag is ABORTED; a stranger is PERMISSION_DENIED.
    mask = {"paths": ["body", "tags"]}
    edited = posts.UpdatePost(
        pb.UpdatePostRequest(post=pb.Post(name=draft.name, body="second", tags=["kafka", "streams"], etag=published.etag), update_mask=mask), metadata=as_ana
    )
    assert edited.revision == 2 and edited.body == "second"
    stale = rpc_error(
        posts.UpdatePost, pb.UpdatePostRequest(post=pb.Post(name=draft.name, body="third", etag=published.etag), update_mask=mask), metadata=as_ana
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    denied = rpc_error(posts.UpdatePost, pb.UpdatePostRequest(post=pb.Post(name=draft.name, body="pwned"), update_mask=mask), metadata=as_bob)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    revisions = posts.ListPostRevisions(pb.ListPostRevisionsRequest(parent=draft.name, page_size=1), metadata=as_bob)
    assert [r.body for r in revisions.revisions] == ["first"] and revisions.next_page_token
    rest = posts.ListPostRevisions(pb.ListPostRevisionsRequest(parent=draft.name, page_size=1, page_token=revisions.next_page_token), metadata=as_bob)
    assert [(r.revision, r.body, list(r.tags)) for r in rest.revisions] == [(2, "second", ["kafka", "streams"])]

    eventually(lambda: draft.name in found(search, as_bob, tag="streams"), message="tag search")
    hit = found(search, as_bob, query=word)[draft.name]
    assert hit.blog == b.name and hit.state == "PUBLISHED" and hit.title == f"On {word}"

    # Deleted: a tombstone in the log, gone from search and from GetPost.
    posts.DeletePost(pb.DeletePostRequest(name=draft.name), metadata=as_ana)
    eventually(lambda: draft.name not in found(search, as_ana, query=word), message="deleted post gone from search")
    assert rpc_error(posts.GetPost, pb.GetPostRequest(name=draft.name), metadata=as_ana).code() == grpc.StatusCode.NOT_FOUND
    post_id = draft.name.split("/")[1]
    kinds = [e.type_name for e in read_events(platform.settings, "posts") if e.aggregate_id == post_id]
    assert kinds == ["PostCreated", "PostPublished", "PostEdited", "PostDeleted"]


@pytest.mark.parametrize(
    ("post", "field", "code"),
    [
        (pb.Post(title="", visibility=V.PUBLIC), "post.title", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="x" * 301, visibility=V.PUBLIC), "post.title", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="t", visibility=V.PUBLIC, tags=[f"t{i}" for i in range(21)]), "post.tags", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="t", visibility=V.PUBLIC, tags=["has space"]), "post.tags", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="t"), "post.visibility", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="t", visibility=V.COMMUNITY), "post.community", grpc.StatusCode.INVALID_ARGUMENT),
        (pb.Post(title="t\u0007", visibility=V.PUBLIC), "post.title", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_posts_name_the_field_and_store_nothing(platform, posts, search, post, field, code):
    _, as_ana = person(platform, "Ana Bad")
    b = blog(posts, as_ana)
    error = rpc_error(posts.CreatePost, pb.CreatePostRequest(parent=b.name, post=post), metadata=as_ana)
    assert error.code() == code and bad_request_fields(error) == [field]
    assert search.SearchPosts(sp.SearchPostsRequest(blog=b.name), metadata=as_ana).total_size == 0


def test_alumni_cannot_publish_internal_and_strangers_cannot_post(platform, posts):
    _, as_alum = person(platform, "Al Umnus", kind="alumni")
    error = rpc_error(posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title="T", visibility=V.INTERNAL)), metadata=as_alum)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(error) == ["blog.visibility"]
    public = blog(posts, as_alum, visibility=V.PUBLIC)
    error = rpc_error(posts.CreatePost, pb.CreatePostRequest(parent=public.name, post=pb.Post(title="t", visibility=V.INTERNAL)), metadata=as_alum)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(error) == ["post.visibility"]
    _, as_bob = person(platform, "Bob")
    error = rpc_error(posts.CreatePost, pb.CreatePostRequest(parent=public.name, post=pb.Post(title="t", visibility=V.PUBLIC)), metadata=as_bob)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(error) == ["parent"]
    again = rpc_error(posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=public.handle, title="T", visibility=V.PUBLIC)), metadata=as_bob)
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    bad = rpc_error(posts.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle="X!", title="T", visibility=V.PUBLIC)), metadata=as_bob)
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(bad) == ["blog.handle"]

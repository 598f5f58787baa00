"""UpdateBlog (title/description, update_mask, etag) and micropost editing (author only;
an author's edit restores a flag-hidden micropost), through the real APIs, Kafka and ES."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from tests.integration.test_posts_lifecycle import V, blog, found, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def test_the_owner_updates_a_blog_with_a_mask_and_an_etag(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    _, as_ana = person(platform, "Ana Editor")
    _, as_bob = person(platform, "Bob Other")
    b = blog(posts, as_ana, title="Old title")
    update = lambda md, mask, **fields: posts.UpdateBlog(  # noqa: E731
        pb.UpdateBlogRequest(blog=pb.Blog(name=b.name, **fields), update_mask={"paths": mask} if mask is not None else None), metadata=md
    )
    edited = update(as_ana, ["title"], title="New title", description="ignored: not in the mask", etag=b.etag)
    assert (edited.title, edited.description) == ("New title", b.description) and edited.etag != b.etag
    assert posts.GetBlog(pb.GetBlogRequest(name=b.name), metadata=as_bob).title == "New title"
    edited = update(as_ana, ["description"], description="About things")
    assert (edited.title, edited.description) == ("New title", "About things")

    rejected = [
        (update, (as_ana, ["title"]), dict(title="Stale", etag=b.etag), grpc.StatusCode.ABORTED, ["blog.etag"]),
        (update, (as_bob, ["title"]), dict(title="Mine now"), grpc.StatusCode.PERMISSION_DENIED, ["blog.name"]),
        (update, (as_ana, ["title"]), dict(title=""), grpc.StatusCode.INVALID_ARGUMENT, ["blog.title"]),
        (update, (as_ana, ["handle"]), dict(handle="renamed"), grpc.StatusCode.INVALID_ARGUMENT, ["update_mask"]),
        (update, (as_ana, None), dict(title="No mask"), grpc.StatusCode.INVALID_ARGUMENT, ["update_mask"]),
    ]
    for call, args, fields, code, named in rejected:
        error = rpc_error(call, *args, **fields)
        assert error.code() == code and bad_request_fields(error) == named, (fields, error.details())
    missing = rpc_error(
        posts.UpdateBlog, pb.UpdateBlogRequest(blog=pb.Blog(name=f"blogs/{unique('none-')}", title="x"), update_mask={"paths": ["title"]}), metadata=as_ana
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    # Two edits reached Kafka, nothing from the rejected ones; the directory shows the new title.
    def edits():
        seen = [e for e in read_events(platform.settings, "posts") if e.type_name == "BlogEdited" and e.payload.title == "New title"]
        assert [list(e.payload.changed_fields) for e in seen if e.aggregate_id == seen[0].aggregate_id] == [["title"], ["description"]]
        return seen

    eventually(edits, message="BlogEdited events relayed")
    assert not [e for e in read_events(platform.settings, "posts") if e.type_name == "BlogEdited" and e.payload.title in ("Stale", "Mine now", "No mask")]

    def indexed():
        hits = platform.es.search(index=platform.alias("blogs"), query={"term": {"handle": b.handle}})["hits"]["hits"]
        assert hits and hits[0]["_source"]["title"] == "New title" and hits[0]["_source"]["description"] == "About things"
        return True

    eventually(indexed, message="the blogs index has the new title")


def test_the_author_edits_a_micropost_and_the_edit_restores_it_if_flags_hid_it(platform):
    posts = platform.stub(pg.PostServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    _, as_ana = person(platform, "Ana Micro Editor")
    bob, as_bob = person(platform, "Bob Mentioned")
    flaggers = [person(platform, f"Flagger {n}")[1] for n in range(3)]
    old_tag, new_tag = unique("old"), unique("new")
    micro = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=f"first #{old_tag}", visibility=V.INTERNAL)), metadata=as_ana)
    update = lambda md, text, etag="": posts.UpdateMicropost(  # noqa: E731
        pb.UpdateMicropostRequest(micropost=pb.Micropost(name=micro.name, text=text, etag=etag), update_mask={"paths": ["text"]}), metadata=md
    )
    edited = update(as_ana, f"better #{new_tag} with @{bob}", etag=micro.etag)
    assert edited.text.startswith("better") and list(edited.hashtags) == [new_tag] and list(edited.mentions) == [f"profiles/{bob}"]

    for md, text, etag, code, named in [
        (as_bob, "hijacked", "", grpc.StatusCode.PERMISSION_DENIED, ["micropost.name"]),
        (as_ana, "stale", micro.etag, grpc.StatusCode.ABORTED, ["micropost.etag"]),
        (as_ana, "x" * 281, "", grpc.StatusCode.INVALID_ARGUMENT, ["micropost.text"]),
        (as_ana, "hi @nobody-by-this-name", "", grpc.StatusCode.INVALID_ARGUMENT, ["micropost.text"]),
    ]:
        error = rpc_error(update, md, text, etag)
        assert error.code() == code and bad_request_fields(error) == named, (text, error.details())
    eventually(lambda: micro.name in found(search, as_bob, tag=new_tag), message="search has the edited text")
    assert micro.name not in found(search, as_bob, tag=old_tag)

    # Three flags hide it; the author's edit brings it back.
    for md in flaggers:
        state = posts.FlagItem(pb.FlagItemRequest(name=micro.name, reason="spam"), metadata=md)
    assert state.hidden
    assert posts.GetMicropost(pb.GetMicropostRequest(name=micro.name), metadata=as_ana).hidden
    restored = update(as_ana, f"toned down #{new_tag}")
    assert not restored.hidden

    def reasons() -> list[str]:
        restores = [e for e in read_events(platform.settings, "posts") if e.type_name == "ItemRestored"]
        return [e.payload.reason for e in restores if f"microposts/{e.aggregate_id}" == micro.name]

    eventually(lambda: reasons() == ["author_edit"], message="ItemRestored(author_edit) relayed")
    edits = [e for e in read_events(platform.settings, "posts") if e.type_name == "MicropostEdited" and f"microposts/{e.aggregate_id}" == micro.name]
    assert [e.payload.text.split()[0] for e in edits] == ["better", "toned"]
    eventually(lambda: micro.name in found(search, as_bob, tag=new_tag) and found(search, as_bob, tag=new_tag)[micro.name], message="shown again")

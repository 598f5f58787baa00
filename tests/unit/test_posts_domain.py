"""Pure domain rules of blogs, posts, microblog, bookmarks and flags (no servers)."""

from __future__ import annotations

import itertools

import pytest

from services.posts.domainmodel import (
    Bookmark,
    Comment,
    Micropost,
    Post,
    Rating,
    audience,
    normalize_url,
    parse_hashtags,
    parse_mentions,
    validate_post_fields,
)
from watercooler.envelope import to_envelope
from watercooler.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a/./b/../c", "https://example.com/a/c"),
        ("http://example.com:80/x#frag", "http://example.com/x"),
        ("http://example.com:8080/x/", "http://example.com:8080/x/"),
        ("https://example.com/%7euser/%e2%82%ac", "https://example.com/~user/%E2%82%AC"),
        ("https://example.com/p?utm_source=x&b=2&a=1", "https://example.com/p?b=2&a=1"),
        ("https://bücher.de/", "https://xn--bcher-kva.de/"),
        ("https://user:pw@example.com/", "https://example.com/"),
        ("  https://example.com/a b  ".strip().replace(" ", "%20"), "https://example.com/a%20b"),
    ],
)
def test_urls_are_normalised(raw, normalised):
    assert normalize_url(raw) == normalised


@pytest.mark.parametrize(
    "raw", ["ftp://example.com/", "javascript:alert(1)", "example.com", "https:///nohost", "", "http://x.com/" + "a" * 2100, "http://exa mple.com/"]
)
def test_only_http_urls_are_accepted(raw):
    with pytest.raises(InvalidArgument) as error:
        normalize_url(raw)
    assert error.value.field == "url"


def test_visibility_rules():
    assert audience("COMMUNITY", "guild-1", "employee") == ("COMMUNITY", "guild-1")
    with pytest.raises(PermissionDenied):
        audience("INTERNAL", "", "alumni")
    with pytest.raises(PermissionDenied):
        audience("INTERNAL", "", "guest")
    assert audience("PUBLIC", "", "guest") == ("PUBLIC", "")
    with pytest.raises(InvalidArgument) as error:
        audience("COMMUNITY", "", "employee")
    assert error.value.field == "community"
    with pytest.raises(InvalidArgument) as error:
        audience("", "", "employee")
    assert error.value.field == "visibility"


def test_mentions_and_hashtags():
    assert parse_mentions("hi @ana.b and @e000001, mail x@y.com @ana.b") == ["ana.b", "e000001"]
    assert parse_hashtags("#Kafka rocks #kafka #ES_8 a#b") == ["kafka", "es_8"]


def test_post_lifecycle_keeps_revisions_and_checks_the_author():
    values = validate_post_fields({"title": " Hello ", "body": "b", "tags": ["A", "a", "#b"], "visibility": "INTERNAL"}, "employee")
    assert values["title"] == "Hello" and values["tags"] == ["a", "b"]
    post = Post.create("blog-1", "ana", values)
    with pytest.raises(PermissionDenied):
        post.edit("bob", {**values, "title": "x"})
    post.edit("ana", {**values, "title": "Hello again"})
    assert post.revision == 2 and post.state == "DRAFT"
    post.publish("ana", "employee", "2026-01-01T00:00:00Z")
    with pytest.raises(FailedPrecondition):
        post.publish("ana", "employee", "2026-01-01T00:00:00Z")
    post.delete("ana")
    with pytest.raises(NotFound):
        post.edit("ana", values)
    names = [type(e).__name__ for e in post.collect_events()]
    assert names == ["PostCreated", "PostEdited", "PostPublished", "PostDeleted"]


def test_flags_hide_at_the_threshold_and_restore_by_votes_or_author_edit():
    comment = Comment.create("posts/x", "", "ana", "body", "INTERNAL", "")
    comment.flag("b", "spam", 3)
    with pytest.raises(AlreadyExists):
        comment.flag("b", "spam", 3)
    with pytest.raises(FailedPrecondition):
        comment.flag("ana", "mine", 3)
    comment.flag("c", "spam", 3)
    assert not comment.hidden
    comment.flag("d", "spam", 3)
    assert comment.hidden
    with pytest.raises(FailedPrecondition):
        comment.vote_restore("b", 3)  # a flagger cannot vote to restore
    for voter in ("e", "f"):
        comment.vote_restore(voter, 3)
    assert comment.hidden
    comment.vote_restore("g", 3)
    assert not comment.hidden and comment.flaggers == []
    for flagger in ("b", "c", "d"):
        comment.flag(flagger, "again", 3)
    assert comment.hidden
    comment.edit("ana", "better body")
    assert not comment.hidden


def test_bounds():
    with pytest.raises(InvalidArgument) as error:
        Micropost.create("ana", "x" * 281, [], "", "", "PUBLIC", "")
    assert error.value.field == "text"
    with pytest.raises(InvalidArgument) as error:
        validate_post_fields({"title": "t", "tags": [f"t{i}" for i in range(21)], "visibility": "PUBLIC"}, "employee")
    assert error.value.field == "tags"
    with pytest.raises(InvalidArgument) as error:
        validate_post_fields({"title": "", "visibility": "PUBLIC"}, "employee")
    assert error.value.field == "title"


def test_every_event_converts_to_its_envelope():
    post = Post.create("blog-1", "ana", validate_post_fields({"title": "t", "visibility": "PUBLIC"}, "employee"))
    post.edit("ana", {"title": "u", "body": "", "tags": ["x"], "visibility": "PUBLIC", "community": ""})
    post.publish("ana", "employee", "2026-01-01T00:00:00Z")
    post.flag("b", "r", 1)
    post.vote_restore("c", 1)
    post.delete("ana")
    micro = Micropost.create("ana", "hi #x @bob", ["bob"], "", "", "PUBLIC", "")
    micro.delete("ana")
    comment = Comment.create("posts/x", "", "ana", "b", "PUBLIC", "")
    comment.edit("ana", "c")
    comment.flag("b", "r", 1)
    comment.delete("ana")
    rating = Rating(post="p", rater_id="ana", value=3, visibility="PUBLIC", community="")
    rating.change(4)
    rating.withdraw()
    bookmark = Bookmark(owner_id="ana", url="https://x.com/", title="t", tags=[], notes="", visibility="PUBLIC", community="")
    bookmark.edit("ana", {"title": "u", "tags": ["a"], "notes": "n", "visibility": "PUBLIC", "community": ""})
    bookmark.flag("b", "r", 1)
    bookmark.delete("ana")
    bookmark.resave({"title": "u", "tags": ["a"], "notes": "n", "visibility": "PUBLIC", "community": ""})
    from services.posts.domainmodel import Blog, Like

    blog = Blog.create(
        "my-blog", "T", "", {"employee_id": "ana", "display_name": "Ana", "sort_name": "", "department": "R", "country": "DE"}, "PUBLIC", "", "employee"
    )
    like = Like(target="microposts/x", person_id="ana")
    like.unlike()
    like.like()
    from services.search.readmodels.projections import ALL

    def keepers(envelope) -> set[str]:
        return {cls.name for cls in ALL if envelope.aggregate_type in cls.aggregate_types}

    seen = set()
    for aggregate in (post, micro, comment, rating, bookmark, blog, like):
        envelopes = [to_envelope("posts", event, sequence) for sequence, event in enumerate(aggregate.collect_events(), 1)]
        seen.update(envelope.event_type.rsplit(".", 1)[-1] for envelope in envelopes)
        # The projections that keep an item keep every later event of it too: flag events
        # are Flaggable's (the class that defines them), not the item's.
        kept_by = keepers(envelopes[0])
        assert kept_by, envelopes[0].event_type
        for envelope in envelopes[1:]:
            assert kept_by <= keepers(envelope), (envelope.event_type, envelope.aggregate_type, kept_by)
    assert {"PostCreated", "ItemHidden", "ItemRestored", "BookmarkResaved", "Reliked", "RatingWithdrawn", "BlogCreated"} <= seen


# --- COMMUNITY reads, edits, and view request ids (issues 4 and 5, follow-up) ----------------------
def test_a_community_item_is_read_by_its_members_only() -> None:
    from services.posts.application import may_read
    from watercooler.auth import Principal

    asked: list[tuple[str, str]] = []

    def members(community: str, person: str) -> bool:
        asked.append((community, person))
        return (community, person) == ("guild", "mia")

    assert may_read(Principal("mia", "employee"), "COMMUNITY", "guild", "ana", members)
    assert not may_read(Principal("olaf", "employee"), "COMMUNITY", "guild", "ana", members)
    assert not may_read(Principal("mia", "employee"), "COMMUNITY", "guild", "ana")  # no way to ask: hidden
    assert may_read(Principal("ana", "employee"), "COMMUNITY", "guild", "ana", members)  # the author
    assert may_read(Principal("search", "service"), "COMMUNITY", "guild", "ana", members)
    assert may_read(Principal("olaf", "employee"), "INTERNAL", "", "ana", members)
    assert asked == [("guild", "mia"), ("guild", "olaf")]  # membership is asked only for COMMUNITY items


def test_only_the_author_edits_a_micropost_and_an_edit_restores_it_when_hidden() -> None:
    micropost = Micropost.create("ana", "first #a", [], "", "", "INTERNAL", "")
    with pytest.raises(PermissionDenied):
        micropost.edit("bob", "mine", [])
    for person in ("p1", "p2", "p3"):
        micropost.flag(person, "spam", 3)
    assert micropost.hidden
    micropost.edit("ana", "second #b", ["bob"])
    assert not micropost.hidden and micropost.hashtags == ["b"] and micropost.mentions == ["bob"]
    with pytest.raises(InvalidArgument):
        micropost.edit("ana", "x" * 281, [])
    micropost.delete("ana")
    with pytest.raises(NotFound):
        micropost.edit("ana", "back", [])


def test_a_view_request_id_sends_once_and_a_reuse_with_another_body_is_refused() -> None:
    import asyncio

    from services.posts.library.viewlog import RecentRequests

    sent: list[str] = []

    async def scenario() -> None:
        recent = RecentRequests(size=2)

        async def send(tag: str, fail: bool = False) -> int:
            await asyncio.sleep(0.01)
            if fail:
                raise ConnectionError("kafka down")
            sent.append(tag)
            return 3

        key = ("views", "ana", "r1")
        # Racing copies and a later retry: one send, the same answer for all.
        answers = await asyncio.gather(*(recent.once(key, "f1", lambda: send("r1")) for _ in range(3)))
        assert answers == [3, 3, 3] and await recent.once(key, "f1", lambda: send("r1 again")) == 3
        with pytest.raises(InvalidArgument):
            await recent.once(key, "other body", lambda: send("reuse"))
        # A failed attempt is forgotten, so its retry is sent.
        with pytest.raises(ConnectionError):
            await recent.once(("views", "ana", "r2"), "f2", lambda: send("r2", fail=True))
        assert await recent.once(("views", "ana", "r2"), "f2", lambda: send("r2")) == 3
        # Bounded: the oldest request is forgotten first.
        await recent.once(("views", "ana", "r3"), "f3", lambda: send("r3"))
        await recent.once(("views", "ana", "r4"), "f4", lambda: send("r4"))
        await recent.once(key, "f1", lambda: send("r1 forgotten"))

    asyncio.run(scenario())
    assert sent == ["r1", "r2", "r3", "r4", "r1 forgotten"]


def test_a_view_whose_caller_gave_up_is_still_sent_once_and_its_retry_waits_for_it() -> None:
    import asyncio

    from services.posts.library.viewlog import RecentRequests

    sent: list[str] = []

    async def scenario() -> None:
        recent = RecentRequests(size=10)
        kafka_back = asyncio.Event()

        async def send(tag: str) -> int:
            await kafka_back.wait()  # the producer holds the fact until Kafka is back
            sent.append(tag)
            return 1

        key = ("views", "ana", "r1")
        # The first caller's deadline passes while the fact sits in the producer.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(recent.once(key, "f1", lambda: send("first")), timeout=0.05)
        retry = asyncio.ensure_future(recent.once(key, "f1", lambda: send("retry")))
        await asyncio.sleep(0.01)
        kafka_back.set()
        assert await retry == 1

    asyncio.run(scenario())
    assert sent == ["first"]


# --- publishing into a community: members only -----------------------------------------------------
class _Members:
    """Community membership as the profiles service would answer it (services/posts/membership.py)."""

    def __init__(self, members: dict[str, set[str]]):
        self.members = members

    def is_member(self, community: str, person: str) -> bool:
        return person in self.members.get(community, set())

    def archived(self, community: str) -> bool:
        return False

    def owners(self, community: str) -> list[str]:
        return []


class _Directory:
    def lookup(self, employee_id: str) -> dict[str, str]:
        return {"employee_id": employee_id, "display_name": employee_id.title(), "sort_name": employee_id, "department": "Sales", "country": "PT"}


class _Accepted:
    """Everyone has accepted the participation guidelines (their rule: tests/unit/test_guidelines.py)."""

    def require(self, principal) -> None:
        pass


@pytest.fixture()
def posts_app(tmp_path):
    import dataclasses

    from services.posts.application import PostsApplication
    from watercooler import config
    from watercooler.personaldata import MemoryKeyRing

    app = PostsApplication(dataclasses.replace(config.load(), data_dir=tmp_path, store="sqlite", namespace=""), profiles=_Directory(),
                           membership=_Members({"guild": {"ana", "mia"}}), guidelines=_Accepted(), personal_keys=MemoryKeyRing())
    yield app
    app.close()


_request_ids = itertools.count(1)


def _ctx(person: str, kind: str = "employee"):
    from watercooler.auth import Principal
    from watercooler.eventstore import CommandContext

    return CommandContext(Principal(person, kind), request_id=f"r{next(_request_ids)}")


def _events_stored(app) -> int:
    return len(app.recorder.select_notifications(start=1, limit=10_000))


def test_only_a_member_publishes_into_a_community_and_a_refusal_stores_nothing(posts_app) -> None:
    community = {"visibility": "COMMUNITY", "community": "guild"}
    micro = posts_app.create_micropost(_ctx("ana"), {"text": "for the guild", **community}, "f1")
    assert micro.community == "guild"
    stored = _events_stored(posts_app)
    for attempt in (lambda: posts_app.create_micropost(_ctx("olaf"), {"text": "let me in", **community}, "f2"),
                    lambda: posts_app.create_bookmark(_ctx("olaf"), {"url": "https://example.com/a", **community}, "f3"),
                    lambda: posts_app.create_blog(_ctx("olaf"), {"handle": "olafs-guild", "title": "Mine", **community}, "f4")):
        with pytest.raises(PermissionDenied, match="communities/guild") as refused:
            attempt()
        assert refused.value.field == "community"
    assert _events_stored(posts_app) == stored  # nothing was stored for the refusals
    # A member other than the author publishes there too.
    assert posts_app.create_bookmark(_ctx("mia"), {"url": "https://example.com/b", **community}, "f6").community == "guild"


def test_moving_an_item_into_a_community_needs_membership_but_editing_one_already_there_does_not(posts_app) -> None:
    bookmark = posts_app.create_bookmark(_ctx("olaf"), {"url": "https://example.com/c", "visibility": "INTERNAL"}, "f1")
    with pytest.raises(PermissionDenied, match="communities/guild"):
        posts_app.update_bookmark(_ctx("olaf"), str(bookmark.id), {"visibility": "COMMUNITY", "community": "guild"}, "", "f2")
    blog = posts_app.create_blog(_ctx("ana"), {"handle": "anas-guild", "title": "Guild notes", "visibility": "COMMUNITY", "community": "guild"}, "f3")
    post = posts_app.create_post(_ctx("ana"), blog.handle, {"title": "Hello", "body": "Guild only.", "visibility": "COMMUNITY", "community": "guild"}, "f4")
    posts_app.membership.members["guild"].discard("ana")  # ana leaves the community
    edited = posts_app.update_post(_ctx("ana"), str(post.id), {"title": "Hello again"}, "", "f5")
    assert edited.title == "Hello again" and edited.community == "guild"
    with pytest.raises(PermissionDenied):
        posts_app.create_post(_ctx("ana"), blog.handle, {"title": "More", "body": "x", "visibility": "COMMUNITY", "community": "guild"}, "f6")


def test_events_stored_before_classification_labels_replay_as_internal():
    post = Post.create("blog-1", "ana", validate_post_fields({"title": "t", "visibility": "INTERNAL", "classification": "CONFIDENTIAL"}, "employee"))
    post.edit("ana", {"title": "u"})
    micro = Micropost.create("ana", "hi", [], "", "", "INTERNAL", "", "CONFIDENTIAL")
    bookmark = Bookmark(owner_id="ana", url="https://x.com/", title="t", tags=[], notes="", visibility="INTERNAL", community="", classification="CONFIDENTIAL")
    bookmark.edit("ana", {"title": "u"})
    for aggregate in (post, micro, bookmark):
        rebuilt = None
        for stored in aggregate.collect_events():
            stored.__dict__.pop("classification")  # as events were stored before labels existed
            rebuilt = stored.mutate(rebuilt)
        assert rebuilt.classification == "INTERNAL", type(aggregate).__name__


def test_a_confidential_item_is_never_public():
    with pytest.raises(InvalidArgument) as both:
        validate_post_fields({"title": "t", "visibility": "PUBLIC", "classification": "CONFIDENTIAL"}, "employee")
    assert both.value.field == "classification"
    current = validate_post_fields({"title": "t", "visibility": "INTERNAL", "classification": "CONFIDENTIAL"}, "employee")
    with pytest.raises(InvalidArgument) as made_public:
        validate_post_fields({"visibility": "PUBLIC"}, "employee", current)
    assert made_public.value.field == "visibility"
    with pytest.raises(InvalidArgument) as unknown:
        validate_post_fields({"title": "t", "visibility": "INTERNAL", "classification": "SECRET"}, "employee")
    assert unknown.value.field == "classification"
    with pytest.raises(InvalidArgument):
        Micropost.create("ana", "hi", [], "", "", "PUBLIC", "", "CONFIDENTIAL")
    assert validate_post_fields({"title": "t", "visibility": "PUBLIC"}, "employee")["classification"] == "INTERNAL"

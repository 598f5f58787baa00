"""The blog directory and COMMUNITY visibility across search, directory counts, facets and stats."""

from __future__ import annotations

import time

import grpc
import pytest

from services.search.memberships import STATS_MEMBERS_READ
from tests.conftest import eventually
from tests.integration.test_posts_lifecycle import V, blog, found, person, unique
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import posts_pb2_grpc as pg
from watercooler.profiles.v1 import communities_pb2 as cp
from watercooler.profiles.v1 import communities_pb2_grpc as cg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as ppg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


@pytest.fixture()
def posts(platform):
    return platform.stub(pg.PostServiceStub, "posts")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def publish(posts, metadata, parent, title, visibility=V.INTERNAL, community="", tags=()):
    post = posts.CreatePost(
        pb.CreatePostRequest(parent=parent, post=pb.Post(title=title, visibility=visibility, community=community, tags=list(tags))), metadata=metadata
    )
    return posts.PublishPost(pb.PublishPostRequest(name=post.name), metadata=metadata)


def directory(search, metadata, letter=""):
    entries, token = [], ""
    while True:
        page = search.ListBlogDirectory(sp.ListBlogDirectoryRequest(page_size=3, page_token=token, letter=letter), metadata=metadata)
        entries += page.blogs
        token = page.next_page_token
        if not token:
            return entries


def test_directory_is_in_collation_order_paged_with_counts_and_letters(platform, posts, search):
    people = [
        person(platform, n, s)
        for n, s in [("Zoë Ångström", "Ångström, Zoë"), ("Émile Zola", "Zola, Émile"), ("Ann Baker", "Baker, Ann"), ("Ole Ørsted", "Ørsted, Ole")]
    ]
    blogs = [blog(posts, md, title=f"blog of {n}") for (n, md) in people]
    for _ in range(2):
        publish(posts, people[2][1], blogs[2].name, "a post")
    mine = {b.name for b in blogs}

    def listed():
        entries = [e for e in directory(search, people[0][1]) if e.blog in mine]
        assert len(entries) == 4
        return entries

    entries = eventually(listed, message="blogs in the directory")
    assert [e.owner_sort_name for e in entries] == ["Ångström, Zoë", "Baker, Ann", "Ørsted, Ole", "Zola, Émile"]
    assert [e.letter for e in entries] == ["A", "B", "O", "Z"]
    counts = eventually(
        lambda: (lambda e: e if e[blogs[2].name].post_count == 2 else None)({e.blog: e for e in directory(search, people[0][1]) if e.blog in mine})
    )
    assert counts[blogs[2].name].last_post_time and counts[blogs[0].name].post_count == 0
    # Jump to a letter: the page starts at the first name under it.
    from_o = [e.blog for e in directory(search, people[0][1], letter="O") if e.blog in mine]
    assert from_o == [blogs[3].name, blogs[1].name]


def test_a_community_post_never_reaches_a_non_member(platform, posts, search):
    ana, as_ana = person(platform, "Ana Member")
    _, as_bob = person(platform, "Bob Outsider")
    carl, as_carl = person(platform, "Carl Joiner")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    community_id = unique("guild-")
    communities.CreateCommunity(
        cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name="Guild", access=cp.Community.OPEN)), metadata=as_ana
    )
    communities.JoinCommunity(cp.JoinCommunityRequest(name=f"communities/{community_id}"), metadata=as_carl)
    b = blog(posts, as_ana)
    secret_tag = unique("secret")
    word = unique("walrus")
    secret = publish(posts, as_ana, b.name, f"{word} plans", visibility=V.COMMUNITY, community=f"communities/{community_id}", tags=[secret_tag])
    public = publish(posts, as_ana, b.name, f"{word} news", visibility=V.INTERNAL)

    eventually(lambda: {secret.name, public.name} <= set(found(search, as_carl, query=word)), message="member sees both")
    eventually(lambda: {secret.name, public.name} <= set(found(search, as_ana, query=word)), message="author sees both")
    outsider = search.SearchPosts(sp.SearchPostsRequest(query=word), metadata=as_bob)
    assert {p.name for p in outsider.posts} == {public.name} and outsider.total_size == 1
    # Not in any facet, directory count or stat either.
    assert secret_tag not in {t.tag for t in search.SearchPosts(sp.SearchPostsRequest(), metadata=as_bob).tags}
    assert secret_tag not in {t.tag for t in search.GetPostStats(sp.GetPostStatsRequest(), metadata=as_bob).popular_tags}
    assert secret_tag in {t.tag for t in search.SearchPosts(sp.SearchPostsRequest(tag=secret_tag), metadata=as_carl).tags}
    entry = {e.blog: e for e in directory(search, as_bob)}[b.name]
    assert entry.post_count == 1
    assert {e.blog: e for e in directory(search, as_carl)}[b.name].post_count == 2
    stats = search.GetPostStats(sp.GetPostStatsRequest(blog=b.name), metadata=as_bob)
    assert sum(d.count for d in stats.posts_per_day) == 1
    assert sum(d.count for d in search.GetPostStats(sp.GetPostStatsRequest(blog=b.name), metadata=as_carl).posts_per_day) == 2
    # A guest sees neither (INTERNAL is for employees; not a member).
    guest = platform.metadata(unique("g"), "guest")
    assert not found(search, guest, query=word)


def stats_with(search, blog_name: str, metadata) -> sp.PostStats:
    """GetPostStats with a blog's posts per day; NOT_FOUND (the blog not projected yet) raised as
    AssertionError, which `eventually` retries."""
    try:
        return search.GetPostStats(sp.GetPostStatsRequest(blog=blog_name), metadata=metadata)
    except grpc.RpcError as error:
        raise AssertionError(error.details()) from None


def test_blog_stats_count_totals_departments_countries_and_activity(platform, posts, search):
    dept = unique("Dept")
    people = [person(platform, f"Stat {i}", department=dept, country="JP") for i in range(3)]
    blogs = [blog(posts, md) for (_, md) in people]
    publish(posts, people[0][1], blogs[0].name, "recent", tags=["statstag"])
    service = platform.metadata()

    def counted():
        stats = stats_with(search, blogs[0].name, service)
        per_dept = {d.key: d.count for d in stats.blogs_per_department}
        assert per_dept.get(dept) == 3
        assert sum(d.count for d in stats.posts_per_day) == 1
        return stats

    stats = eventually(counted, message="blog stats")
    assert stats.blogs_total >= 3 and stats.blogs_active_30d >= 1
    assert {d.key: d.count for d in stats.blogs_per_country}.get("JP", 0) >= 3

    # An owner with no department or country: the blog counts in the total, under no empty key.
    _, as_nobody = person(platform, "Stat Nowhere", department="", country="")
    unplaced = blog(posts, as_nobody)
    stats = eventually(lambda: stats_with(search, unplaced.name, service), message="the blog without department projected")
    assert "" not in {d.key for d in stats.blogs_per_department} and "" not in {d.key for d in stats.blogs_per_country}


def test_the_directory_follows_an_owner_renamed_after_their_blogs_were_made_also_after_a_reindex(platform, posts, search):
    from tests.integration.test_cli import cli

    mark = unique("")
    people = [person(platform, n, s, department="Research") for n, s in [(f"Al Adams {mark}", f"Adams, Al {mark}"), (f"Bo Baker {mark}", f"Baker, Bo {mark}"),
                                                                         (f"Cy Clark {mark}", f"Clark, Cy {mark}")]]
    (_, as_al), (bo, as_bo), (_, as_cy) = people
    blogs = [blog(posts, as_al, title="Al's"), blog(posts, as_bo, title="Bo's"), blog(posts, as_bo, title="Bo's other"), blog(posts, as_cy, title="Cy's")]
    mine = {b.name for b in blogs}

    def entries():
        return [(e.owner_sort_name, e.owner_display_name, e.letter, e.title) for e in directory(search, as_al) if e.blog in mine]

    # Equal owner names are ordered by handle.
    bos_blogs = [b.title for b in sorted(blogs[1:3], key=lambda b: b.handle)]
    before = [(f"Adams, Al {mark}", f"Al Adams {mark}", "A", "Al's"), *[(f"Baker, Bo {mark}", f"Bo Baker {mark}", "B", title) for title in bos_blogs],
              (f"Clark, Cy {mark}", f"Cy Clark {mark}", "C", "Cy's")]
    eventually(lambda: sorted(entries()) == sorted(before), message="blogs in the directory")
    assert entries() == before

    profiles = platform.stub(ppg.ProfileServiceStub, "profiles")
    profiles.UpdateProfile(pp.UpdateProfileRequest(profile=pp.Profile(name=f"profiles/{bo}", display_name=f"Bo Zeller {mark}", sort_name=f"Zeller, Bo {mark}", department="Sales"),
                                                   update_mask={"paths": ["display_name", "sort_name", "department"]}), metadata=platform.metadata())
    # Renamed, the owner's blogs move to Z.
    after = [before[0], before[3], *[(f"Zeller, Bo {mark}", f"Bo Zeller {mark}", "Z", title) for title in bos_blogs]]
    eventually(lambda: entries() == after, message="the directory follows the rename")

    def blogs_in(department: str) -> float:
        return search.GetStats(sp.GetStatsRequest(metric="blogs", department=department), metadata=as_al).total

    assert blogs_in("Sales") >= 2
    # A blog made after the rename shows the new name from the start.
    newer = blog(posts, as_bo, title="Bo's newest")
    mine.add(newer.name)
    bos_blogs = [b.title for b in sorted([*blogs[1:3], newer], key=lambda b: b.handle)]
    after = [before[0], before[3], *[(f"Zeller, Bo {mark}", f"Bo Zeller {mark}", "Z", title) for title in bos_blogs]]
    eventually(lambda: entries() == after, message="a newer blog of the renamed owner")

    # A rebuild replays blogs and profiles in whatever order its partitions come: the same directory.
    result = cli("reindex", "blogs")
    assert result.returncode == 0, result.stderr
    assert entries() == after


def test_the_blogs_projection_ends_on_the_owners_latest_facts_in_every_order_of_the_two_topics(platform):
    """The blog's events and its owner's profile events come on two topics: any interleaving
    (each topic in its own order), one batch or many, or both streams applied at once."""
    import asyncio
    import itertools
    import uuid

    from services.search.readmodels.projections.blogs import BlogsProjection, owner_profile_id
    from watercooler.events.v1.envelope_pb2 import EventEnvelope
    from watercooler.posts.v1 import events_pb2 as posts_events
    from watercooler.profiles.v1 import events_pb2 as profiles_events
    from watercooler.projection import es_client

    def record(aggregate_type: str, aggregate_id: str, version: int, payload) -> bytes:
        envelope = EventEnvelope(event_id=str(uuid.uuid4()), event_type=payload.DESCRIPTOR.full_name, aggregate_type=aggregate_type,
                                 aggregate_id=aggregate_id, aggregate_version=version)
        envelope.occurred_at.GetCurrentTime()
        envelope.payload.Pack(payload)
        return envelope.SerializeToString()

    def story() -> tuple[str, list[bytes], list[bytes]]:
        owner, blog_id = unique("own"), str(uuid.uuid4())
        old = dict(display_name="Old Name", sort_name="Name, Old", department="Research", country="DE")
        blog_events = [
            record("Blog", blog_id, 1, posts_events.BlogCreated(handle=unique("b-"), title="First", owner_id=owner, owner_display_name=old["display_name"],
                                                                owner_sort_name=old["sort_name"], owner_department=old["department"], owner_country="DE", visibility="INTERNAL")),
            record("Blog", blog_id, 2, posts_events.BlogEdited(changed_fields=["title"], title="Second")),
        ]
        profile_events = [
            record("Profile", owner_profile_id(owner), 1, profiles_events.ProfileCreated(employee_id=owner, **old)),
            record("Profile", owner_profile_id(owner), 2, profiles_events.ProfileUpdated(changed_fields=["display_name", "sort_name", "department"], display_name="New Name",
                                                                                         sort_name="Zed, New", department="Sales", country="DE")),
        ]
        return blog_id, blog_events, profile_events

    async def run() -> None:
        es = es_client(platform.settings)
        projection = BlogsProjection(platform.settings)
        await projection.ensure_index(es)
        scratch = f"{projection.alias}-order-test-{uuid.uuid4().hex[:8]}"
        await es.indices.create(index=scratch, **projection.index_body())
        apply = lambda batch: projection.apply_batch(es, batch, lambda r: r, index=scratch)  # noqa: E731
        outcomes: list[tuple[str, str]] = []
        try:
            stories = []
            # Every interleaving that keeps each topic's order, one event a batch.
            for blog_first in set(itertools.permutations("bbpp")):
                blog_id, blogs, profiles = story()
                stories.append(blog_id)
                for source in blog_first:
                    await apply([(blogs if source == "b" else profiles).pop(0)])
            # All in one batch, the profile's first.
            blog_id, blogs, profiles = story()
            stories.append(blog_id)
            await apply(profiles + blogs)
            # Both streams at once, as two partitions of one batch or two workers apply them.
            for _ in range(5):
                blog_id, blogs, profiles = story()
                stories.append(blog_id)

                async def stream(events: list[bytes]) -> None:
                    for event in events:
                        await apply([event])

                await asyncio.gather(stream(blogs), stream(profiles))
            for blog_id in stories:
                doc = (await es.get(index=scratch, id=blog_id))["_source"]
                outcomes.append((doc["title"], doc["owner_display_name"], doc["owner_sort_name"], doc["owner_department"], doc["letter"]))
        finally:
            await es.indices.delete(index=scratch, ignore_unavailable=True)
            await es.close()
        assert outcomes == [("Second", "New Name", "Zed, New", "Sales", "Z")] * len(outcomes)

    asyncio.run(run())


def test_a_member_removed_stops_seeing_the_community_post_in_search_and_suggest_within_seconds_and_a_rejoin_brings_it_back(platform, posts, search):
    # The search service keeps a caller's communities until one changes (services/search/memberships.py):
    # what it kept for a member must follow a removal and a re-join, on every read path.
    ana, as_ana = person(platform, "Ana Owner")
    carl, as_carl = person(platform, "Carl Member")
    communities = platform.stub(cg.CommunityServiceStub, "profiles")
    community_id = unique("guild-")
    name = f"communities/{community_id}"
    communities.CreateCommunity(cp.CreateCommunityRequest(community=cp.Community(community_id=community_id, display_name="Guild", access=cp.Community.OPEN)), metadata=as_ana)
    communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=as_carl)
    b = blog(posts, as_ana)
    word = unique("narwhal")
    secret = publish(posts, as_ana, b.name, f"{word} plans", visibility=V.COMMUNITY, community=name)

    def in_search() -> bool:
        return secret.name in {h.name for h in search.Search(sp.SearchRequest(query=word), metadata=as_carl).hits}

    def in_suggest() -> bool:
        return secret.name in {s.name for s in search.Suggest(sp.SuggestRequest(prefix=word), metadata=as_carl).suggestions}

    def in_lists() -> bool:
        return secret.name in set(found(search, as_carl, query=word))

    eventually(lambda: in_search() and in_suggest() and in_lists(), message="the member sees it")

    def members_read() -> int:  # the callers' communities the search service read directly
        stats = platform.es.indices.stats(index=platform.settings.index_alias("communities"), metric="search", groups=[STATS_MEMBERS_READ])["indices"]
        return sum(s["total"]["search"].get("groups", {}).get(STATS_MEMBERS_READ, {}).get("query_total", 0) for s in stats.values())

    read_before = members_read()
    for _ in range(3):  # seconds apart, past the one-second scope: kept, not read afresh
        time.sleep(1.1)
        assert in_search() and in_suggest() and in_lists()
    assert members_read() == read_before
    communities.RemoveMember(cp.RemoveMemberRequest(name=name, member=f"profiles/{carl}"), metadata=as_ana)
    removed_at = time.monotonic()
    eventually(lambda: not in_search() and not in_suggest() and not in_lists(), timeout=10, interval=0.1, message="the removal reaches every path")
    assert time.monotonic() - removed_at < 10
    outside = search.Search(sp.SearchRequest(query=word), metadata=as_carl)
    assert outside.total_size == 0 and not outside.hits
    communities.JoinCommunity(cp.JoinCommunityRequest(name=name), metadata=as_carl)
    eventually(lambda: in_search() and in_suggest() and in_lists(), timeout=10, interval=0.1, message="the re-join reaches every path")

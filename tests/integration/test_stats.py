"""GetStats through the real gRPC API: totals and series of posts, ratings, wiki views,
media downloads, people and jams, read from what the projections and stats processors
keep; filters, intervals and bad input."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, rpc_error
from tests.integration.test_jams_api import open_jam
from tests.integration.test_search_unified import Stubs, unique, word
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration


def seed_company(platform) -> dict:
    """A small company day: a blog with posts, ratings and comments; a wiki page viewed and a
    video downloaded; a jam with ideas, threads and votes. Used by the dashboard test too."""
    s = Stubs(platform)
    department = unique("Dept-")
    ana, as_ana = s.person("Ana Stats", department)
    _, as_bob = s.person("Bob Stats", department)
    tag = word(8)
    blog = s.blog(as_ana)
    posts = [s.post(as_ana, blog, f"Post {n} about {tag}", "body", tags=[tag]) for n in range(3)]
    s.post(as_ana, blog, "A draft", "body", publish=False)
    s.posts.RatePost(pb.RatePostRequest(post=posts[0], value=5), metadata=as_bob)
    s.posts.RatePost(pb.RatePostRequest(post=posts[1], value=4), metadata=as_bob)
    s.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=posts[0], body="great")), metadata=as_bob)
    space = s.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Handbook", visibility=wp.INTERNAL)), metadata=as_ana).name
    page_title = f"Handbook {tag}"
    page = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=page_title, body="x")), metadata=as_ana).name
    other = s.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"Other {tag}", body="y")), metadata=as_ana).name
    s.wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page)] * 4 + [wp.PageView(page=other)]), metadata=as_bob)
    video = s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title=f"Video {tag}", kind=mp.MediaItem.VIDEO, size_bytes=10, content_type="video/mp4",
                                                                                          visibility=wp.INTERNAL, storage_uri="s3://b/v")), metadata=as_ana).name
    s.media.BatchRecordDownloads(mp.BatchRecordDownloadsRequest(downloads=[mp.Download(media_item=video)] * 2), metadata=as_bob)
    host = platform.author(unique("host"))
    jam_id, ideas = open_jam(s.jams, host, budget=3, ideas=3)
    jam = f"jams/{jam_id}"
    s.jams.CreateThread(jp.CreateThreadRequest(parent=jam, thread=jp.Thread(idea=ideas[0], title="Wonderful idea", body="I love it, great and useful.")), metadata=as_ana)
    s.jams.CreateThread(jp.CreateThreadRequest(parent=jam, thread=jp.Thread(idea=ideas[1], title="Terrible", body="This is awful and bad.")), metadata=as_bob)
    s.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam, phase=jp.OPEN), metadata=host)
    voters = [platform.metadata(unique("v"), "employee") for _ in range(4)]
    for n, voter in enumerate(voters):
        s.jams.CastVote(jp.CastVoteRequest(jam=jam, idea=ideas[0 if n < 3 else 1]), metadata=voter)
    return dict(s=s, department=department, tag=tag, blog=blog, posts=posts, page=page, page_title=page_title, other=other, space=space, video=video,
                jam=jam, ideas=ideas, ana=ana, as_ana=as_ana, voters=len(voters))


def stats(s, md, **kwargs) -> sp.GetStatsResponse:
    try:
        return s.search.GetStats(sp.GetStatsRequest(**kwargs), metadata=md)
    except grpc.RpcError as error:  # NOT_FOUND while the projections catch up: retried by eventually()
        assert error.code() != grpc.StatusCode.NOT_FOUND, error.details()
        raise


@pytest.fixture(scope="module")
def company(platform):
    seeded = seed_company(platform)
    s, md = seeded["s"], seeded["as_ana"]
    eventually(lambda: stats(s, md, metric="jam_votes", jam=seeded["jam"]).total == 4, timeout=90, message="jam stats")
    eventually(lambda: stats(s, md, metric="wiki_views", target=seeded["page"]).total == 4, timeout=60, message="views counted")
    eventually(lambda: stats(s, md, metric="ratings", blog=seeded["blog"]).total == 2, timeout=60, message="ratings")
    # The blogs index is its own projection: caught up on the ratings says nothing about it.
    eventually(lambda: stats(s, md, metric="blogs", department=seeded["department"]).total == 1, timeout=90, message="the blog counted")
    return seeded


def today_range() -> dict:
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    request = sp.GetStatsRequest()
    request.start_time.FromDatetime((start - dt.timedelta(days=6)).replace(tzinfo=None))
    request.end_time.FromDatetime((start + dt.timedelta(days=1)).replace(tzinfo=None))
    return dict(start_time=request.start_time, end_time=request.end_time)


def test_content_stats_totals_and_daily_series(company):
    s, md = company["s"], company["as_ana"]
    posts = stats(s, md, metric="posts", blog=company["blog"], **today_range())
    assert posts.total == 3  # the draft does not count
    assert [p.value for p in posts.series] == [0, 0, 0, 0, 0, 0, 3]  # seven days, zeros included
    assert posts.series[-1].start_time.ToDatetime().date() == dt.datetime.now(dt.UTC).date()
    assert stats(s, md, metric="ratings", blog=company["blog"]).total == 2
    assert stats(s, md, metric="people", department=company["department"]).total == 2
    assert stats(s, md, metric="alumni", department=company["department"]).total == 0
    assert stats(s, md, metric="blogs").total >= 1 and stats(s, md, metric="active_blogs", **today_range()).total >= 1
    assert stats(s, md, metric="comments").total >= 1


def test_blog_stats_by_owner_department_and_country_comments_ratings_per_post_and_popular_tags(company, platform):
    s, md = company["s"], company["as_ana"]
    department, blog, posts, tag = company["department"], company["blog"], company["posts"], company["tag"]
    # Blogs and active blogs by the owner's department (Ana's blog; Bob has none).
    assert stats(s, md, metric="blogs", department=department).total == 1
    active = stats(s, md, metric="active_blogs", department=department, **today_range())
    assert active.total == 1 and active.series[-1].value == 1
    assert stats(s, md, metric="active_blogs", department=unique("Nobody-"), **today_range()).total == 0
    # By country: a blogger in a country of her own department, so other tests' blogs do not count.
    abroad = unique("Abroad-")
    person = unique("e")
    s.profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=person, display_name="Zoë Abroad", department=abroad, country="pt")),
                             metadata=platform.metadata())
    platform.accept_guidelines(person)
    as_zoe = platform.metadata(person, "employee")
    zoe_blog = s.blog(as_zoe)
    s.post(as_zoe, zoe_blog, "Olá", "body", tags=[tag])
    eventually(lambda: stats(s, md, metric="active_blogs", department=abroad, country="PT", **today_range()).total == 1, timeout=60, message="active blog in PT")
    assert stats(s, md, metric="blogs", department=abroad, country="PT").total == 1
    assert stats(s, md, metric="blogs", department=abroad, country="DE").total == 0
    assert stats(s, md, metric="people", department=abroad, country="PT").total == 1
    # Comments and ratings per post.
    assert stats(s, md, metric="comments", target=posts[0]).total == 1
    assert stats(s, md, metric="comments", target=posts[1]).total == 0
    assert stats(s, md, metric="ratings", target=posts[0]).total == 1
    assert stats(s, md, metric="ratings", target=posts[2]).total == 0
    for kwargs in ({"metric": "comments", "target": "blogs/x"}, {"metric": "ratings", "target": "pages/x"}):
        error = rpc_error(s.search.GetStats, sp.GetStatsRequest(**kwargs), metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "target" in bad_request_fields(error)
    # Popular tags: within Ana's blog one tag on three posts; across blogs Zoë's post adds one more.
    in_blog = stats(s, md, metric="tags", blog=blog, top_size=5)
    assert in_blog.total == 1 and [(t.name, t.title, t.value) for t in in_blog.top] == [(f"tags/{tag}", tag, 3.0)]
    everywhere = stats(s, md, metric="tags", top_size=50)
    assert ("tags/" + tag, 4.0) in [(t.name, t.value) for t in everywhere.top]


def test_views_downloads_and_top_pages(company):
    s, md = company["s"], company["as_ana"]
    views = stats(s, md, metric="wiki_views", space=company["space"], **today_range())
    assert views.total == 5 and views.series[-1].value == 5
    assert [(t.name, t.title, t.value) for t in views.top] == [(company["page"], company["page_title"], 4), (company["other"], f"Other {company['tag']}", 1)]
    downloads = eventually(lambda: (d := stats(s, md, metric="media_downloads", target=company["video"])).total == 2 and d, message="downloads")
    assert downloads.top[0].name == company["video"]
    # A guest may not see the INTERNAL space: its views are NOT_FOUND, and absent from totals.
    guest = s.platform.metadata(unique("g"), "guest")
    error = rpc_error(s.search.GetStats, sp.GetStatsRequest(metric="wiki_views", space=company["space"]), metadata=guest)
    assert error.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(error) == ["space"]
    assert company["page"] not in {t.name for t in stats(s, guest, metric="wiki_views", top_size=50).top}


def test_jam_votes_activity_participants_and_tone(company):
    s, md, jam = company["s"], company["as_ana"], company["jam"]
    votes = stats(s, md, metric="jam_votes", jam=jam, interval="hour")
    assert votes.total == 4 and sum(p.value for p in votes.series) == 4
    assert [(t.name, t.value) for t in votes.top][:2] == [(company["ideas"][0], 3), (company["ideas"][1], 1)]
    activity = stats(s, md, metric="jam_activity", jam=jam, interval="hour")
    assert activity.total == 3 + 2  # three ideas and two threads
    assert stats(s, md, metric="jam_participants", jam=jam).total >= company["voters"]
    tone = stats(s, md, metric="jam_tone", jam=jam, interval="hour")
    assert len(tone.series) >= 1 and -1 <= tone.total <= 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(metric="likes"), "metric"),
        (dict(metric=""), "metric"),
        (dict(metric="posts", target="pages/x"), "target"),
        (dict(metric="people", jam="jams/x"), "jam"),
        (dict(metric="posts", interval="minute"), "interval"),
        (dict(metric="wiki_views", interval="hour"), "interval"),
        (dict(metric="jam_votes"), "jam"),
        (dict(metric="jam_votes", jam="nope"), "jam"),
        (dict(metric="wiki_views", target="media/x"), "target"),
        (dict(metric="wiki_views", top_size=51), "top_size"),
        (dict(metric="posts", blog="blog/x"), "blog"),
    ],
)
def test_bad_stats_requests_name_the_field(platform, kwargs, field):
    search = Stubs(platform).search
    error = rpc_error(search.GetStats, sp.GetStatsRequest(**kwargs), metadata=platform.metadata("e1", "employee"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_request_fields(error) == [field]


def test_stats_range_checks(platform):
    search = Stubs(platform).search
    md = platform.metadata("e1", "employee")
    backwards = sp.GetStatsRequest(metric="posts")
    backwards.start_time.FromSeconds(2_000_000)
    backwards.end_time.FromSeconds(1_000_000)
    error = rpc_error(search.GetStats, backwards, metadata=md)
    assert bad_request_fields(error) == ["end_time"]
    too_many = sp.GetStatsRequest(metric="posts", interval="hour")
    too_many.start_time.FromSeconds(0)
    too_many.end_time.FromSeconds(3600 * 2000)
    error = rpc_error(search.GetStats, too_many, metadata=md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(error) == ["interval"]


def documented_stats_filters() -> dict[str, set[str]]:
    """metric -> the filters docs/search.md's GetStats table says it takes."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "search.md").read_text()
    table = text[text.index("| metric | counts | filters | from |"):].split("\n\n", 1)[0]
    documented: dict[str, set[str]] = {}
    for line in table.splitlines()[2:]:
        metrics, _, filters, _ = (cell.strip() for cell in line.strip("|").split("|"))
        for metric in re.findall(r"`([a-z_]+)`", metrics):
            documented[metric] = set(re.findall(r"`([a-z_]+)`", filters))
    return documented


def test_get_stats_takes_every_filter_the_docs_list_and_refuses_the_others(company, platform):
    s, md = company["s"], company["as_ana"]
    documented = documented_stats_filters()
    assert "blog" in documented["active_blogs"] and documented["microposts"] == set()
    every_filter = set().union(*documented.values())
    targets = {"comments": company["posts"][0], "ratings": company["posts"][0], "wiki_views": company["page"], "media_downloads": company["video"]}
    values = {"blog": company["blog"], "department": company["department"], "country": "DE", "space": company["space"], "jam": company["jam"]}
    for metric, filters in sorted(documented.items()):
        required = {"jam": company["jam"]} if metric.startswith("jam_") else {}
        for name in sorted(filters):
            value = targets[metric] if name == "target" else values[name]
            try:
                s.search.GetStats(sp.GetStatsRequest(metric=metric, **{**required, name: value}), metadata=md)
            except grpc.RpcError as error:
                raise AssertionError(f"{metric} refused its documented filter {name}: {error.code()} {error.details()}") from None
        for name in sorted(every_filter - filters):
            refused = rpc_error(s.search.GetStats, sp.GetStatsRequest(metric=metric, **{**required, name: values.get(name, "posts/x")}), metadata=md)
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused) == [name], (metric, name, refused.details())
    # The filter counts: the blog's posts make it one active blog.
    assert s.search.GetStats(sp.GetStatsRequest(metric="active_blogs", blog=company["blog"]), metadata=md).total == 1


def test_ratings_count_every_post_the_caller_may_see_also_read_in_pages(company, platform, monkeypatch):
    """Ratings carry no audience of their own: the posts they count are read and named. That
    list was the 10,000 most recent posts the caller may see, so the ratings of every older
    post were left out of a dashboard. Read in pages of two (standing in for Elasticsearch's
    10,000 hits) each count is the one the API gives, and a post made private after it was
    rated counts for its author and services only."""
    import asyncio

    from services.search import visibility
    from services.search.stats_queries import Stats, StatsQuery
    from watercooler.auth import Principal
    from watercooler.projection import es_client

    s, as_ana = company["s"], company["as_ana"]
    carl, as_carl = s.person("Carl Stats", company["department"])
    _, as_bob = s.person("Bob Rater", company["department"])
    hidden = s.post(as_carl, s.blog(as_carl), f"Later private {company['tag']}", "body")
    s.posts.RatePost(pb.RatePostRequest(post=hidden, value=3), metadata=as_bob)
    etag = s.posts.GetPost(pb.GetPostRequest(name=hidden), metadata=as_carl).etag
    s.posts.UpdatePost(pb.UpdatePostRequest(post=pb.Post(name=hidden, visibility=pb.Audience.PRIVATE, etag=etag), update_mask={"paths": ["visibility"]}), metadata=as_carl)
    service = platform.metadata()
    eventually(lambda: stats(s, service, metric="ratings", target=hidden).total == 1 and stats(s, as_ana, metric="ratings", target=hidden).total == 0,
               timeout=60, message="the rating counted, the post private")
    assert stats(s, as_carl, metric="ratings", target=hidden).total == 1
    # Every rating the service counts and Ana does not is on a post she may not see.
    assert stats(s, service, metric="ratings").total > stats(s, as_ana, metric="ratings").total

    def in_process(subject: str, kind: str, **filters) -> int:
        async def count() -> int:
            es = es_client(platform.settings)
            try:
                query = StatsQuery(metric="ratings", interval="day", start=None, end=None, top=10, **filters)
                return (await Stats(es, platform.settings).get_stats(Principal(subject, kind), query)).total
            finally:
                await es.close()
        return asyncio.run(count())

    asks = [(as_ana, (company["ana"], "employee"), {}), (as_ana, (company["ana"], "employee"), {"blog": company["blog"]}),
            (as_carl, (carl, "employee"), {}), (service, ("search", "service"), {})]
    through_api = [stats(s, md, metric="ratings", **filters).total for md, _, filters in asks]
    monkeypatch.setattr(visibility, "SCOPE_PAGE", 2)
    paged = [in_process(*who, **{k: v.removeprefix("blogs/") for k, v in filters.items()}) for _, who, filters in asks]
    assert paged == through_api
    assert through_api[1] == 2  # the blog's two rated posts of three published and a draft: past a page of two

"""A client retry of RecordPageView / RecordDownload batches (same request_id) is not
counted twice; a new request_id is counted again (AIP-155, services/posts/library/viewlog.py)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from services.posts.library.viewlog import view_id_of
from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_topic, rpc_error
from tests.integration.test_views import counts, unique
from watercooler.posts.v1 import library_events_pb2 as le
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import media_pb2_grpc as mg
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def reader_and_page(platform, prefix: str) -> tuple[str, list, wp.Page]:
    """A new employee (in Research), their metadata, and a page in an INTERNAL space of theirs."""
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    reader = unique(prefix)
    platform.stub(pg.ProfileServiceStub, "profiles").CreateProfile(
        pp.CreateProfileRequest(profile=pp.Profile(employee_id=reader, display_name=reader, department="Research")), metadata=platform.metadata()
    )
    platform.accept_guidelines(reader)
    md = platform.metadata(reader, "employee")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique(f"{prefix}s"), display_name="Retries", visibility=wp.INTERNAL)), metadata=md)
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Retried", body="x")), metadata=md)
    return reader, md, page


def a_video(platform, md, title: str) -> mp.MediaItem:
    """A video media item of the caller's (its file is never uploaded: only its downloads count here)."""
    return platform.stub(mg.MediaServiceStub, "posts").RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(
        title=title, kind=mp.MediaItem.VIDEO, size_bytes=1, content_type="video/mp4", visibility=wp.INTERNAL, storage_uri=f"s3://b/{title.lower()}")), metadata=md)


def test_a_retried_batch_is_counted_once_and_a_new_request_id_again(platform):
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    media = platform.stub(mg.MediaServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    reader, md, page = reader_and_page(platform, "r")
    video = a_video(platform, md, "Clip")

    first = str(uuid.uuid4())
    batch = wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="web")] * 3, request_id=first)
    assert wiki.BatchRecordPageViews(batch, metadata=md).recorded == 3
    assert wiki.BatchRecordPageViews(batch, metadata=md).recorded == 3  # the retry gets the first answer
    # Two copies racing each other: one is sent, the other waits for its outcome.
    racing = wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="app")] * 2, request_id=str(uuid.uuid4()))
    with ThreadPoolExecutor(2) as pool:
        assert [r.recorded for r in pool.map(lambda _: wiki.BatchRecordPageViews(racing, metadata=md), range(2))] == [2, 2]
    # The same request_id with another body is refused, and sends nothing.
    reused = rpc_error(wiki.BatchRecordPageViews, wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name)], request_id=first), metadata=md)
    assert reused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(reused) == ["request_id"]
    # A new request_id is new views.
    assert wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=batch.views, request_id=str(uuid.uuid4())), metadata=md).recorded == 3
    single = wp.RecordPageViewRequest(view=wp.PageView(page=page.name), request_id=str(uuid.uuid4()))
    wiki.RecordPageView(single, metadata=md)
    wiki.RecordPageView(single, metadata=md)

    download = mp.RecordDownloadRequest(download=mp.Download(media_item=video.name), request_id=str(uuid.uuid4()))
    media.RecordDownload(download, metadata=md)
    media.RecordDownload(download, metadata=md)
    downloads = mp.BatchRecordDownloadsRequest(downloads=[mp.Download(media_item=video.name)] * 2, request_id=str(uuid.uuid4()))
    media.BatchRecordDownloads(downloads, metadata=md)
    media.BatchRecordDownloads(downloads, metadata=md)

    # 3 + 2 + 3 + 1 views and 1 + 2 downloads. A last view without a request_id lands after
    # all of them in the page's partition: once it is counted, everything before it is.
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=md)
    media.RecordDownload(mp.RecordDownloadRequest(download=mp.Download(media_item=video.name)), metadata=md)
    eventually(lambda: counts(search, md, page.name).total >= 10, message="the page's views counted")
    eventually(lambda: counts(search, md, video.name).total >= 4, message="the item's downloads counted")
    assert counts(search, md, page.name).total == 10
    assert counts(search, md, video.name).total == 4

    # Each view was sent once, with a deterministic id derived from (caller, request_id, index).
    facts = [le.ViewFact.FromString(r.value) for r in read_topic(platform.settings, platform.settings.fact_topic("views"))]
    first_ids = [view_id_of(reader, first, index) for index in range(3)]
    assert sorted(f.view_id for f in facts if f.target == page.name and f.view_id in first_ids) == sorted(first_ids)


def test_a_fact_names_the_viewers_department_never_the_viewer(platform):
    """Views and downloads are kept on Kafka for ever: a fact holds the department they are counted
    by, and neither the viewer's id nor (in its view id) the id of a person recording their own."""
    from services.search.readmodels.counters.views import retryable

    wiki = platform.stub(wg.WikiServiceStub, "posts")
    media = platform.stub(mg.MediaServiceStub, "posts")
    reader, md, page = reader_and_page(platform, "anon")
    video = a_video(platform, md, "Watched")
    own = str(uuid.uuid4())
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name, client="web"), request_id=own), metadata=md)  # the reader calls
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name, viewer=reader, client="web")), metadata=platform.metadata())  # a service
    media.RecordDownload(mp.RecordDownloadRequest(download=mp.Download(media_item=video.name), request_id=own), metadata=md)

    for kind, target in (("views", page.name), ("downloads", video.name)):
        records = [r for r in read_topic(platform.settings, platform.settings.fact_topic(kind)) if le.ViewFact.FromString(r.value).target == target]
        assert len(records) == (2 if kind == "views" else 1), kind
        assert not any(reader.encode() in r.value or reader.encode() in (r.key or b"") for r in records), f"{kind}: a fact names the viewer"
        facts = [le.ViewFact.FromString(r.value) for r in records]
        assert {f.department for f in facts} == {"Research"}, kind
        # The reader's own request keeps its deterministic (retryable) id; the other is random.
        assert sorted(retryable(f.view_id) for f in facts) == ([False, True] if kind == "views" else [True]), kind
        assert view_id_of(reader, own, 0) in {f.view_id for f in facts}, kind


def test_a_retry_that_reaches_a_restarted_posts_service_is_counted_once(platform):
    """The posts service remembers answered request ids in memory only: after a restart it
    sends a retried view again. The second copy carries the same view_id on the same
    partition, and the counter skips it (services/search/readmodels/counters/views.py, SeenViewIds)."""
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    reader, md, page = reader_and_page(platform, "rr")
    request_id = str(uuid.uuid4())
    batch = wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="web")] * 2, request_id=request_id)
    assert wiki.BatchRecordPageViews(batch, metadata=md).recorded == 2
    eventually(lambda: counts(search, md, page.name).total >= 2, message="the first two views counted")

    platform.platform.kill("posts")
    platform.platform.restart("posts")
    wiki = platform.stub(wg.WikiServiceStub, "posts")
    assert eventually(lambda: wiki.BatchRecordPageViews(batch, metadata=md, timeout=10).recorded == 2, timeout=60, message="the retry answered")
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=md)  # a new view, after the copies

    # Kafka holds the two views twice (the restarted service sent them again) ...
    def copies() -> int:
        facts = [le.ViewFact.FromString(r.value) for r in read_topic(platform.settings, platform.settings.fact_topic("views"))]
        return sum(1 for f in facts if f.view_id in {view_id_of(reader, request_id, i) for i in range(2)})

    assert eventually(lambda: copies() == 4, message="the retry sent again")
    # ... and the counter counts them once, plus the new view.
    eventually(lambda: counts(search, md, page.name).total >= 3, message="the new view counted")
    assert counts(search, md, page.name).total == 3


def test_a_retry_after_many_other_views_counts_once_on_another_worker(platform):
    """Clients may retry for an hour (services/search/readmodels/counters/views.py, RETRY_WINDOW_SECONDS),
    however many views came in between: here 60,000 on the same page, more than the 50,000
    facts a partition's window once held.  The retry reaches a restarted posts service (which
    forgot the request) and is counted by another stats worker than the first attempt."""
    from tools.runner import ProcessSpec

    wiki = platform.stub(wg.WikiServiceStub, "posts")
    search = platform.stub(sg.SearchServiceStub, "search")
    reader, md, page = reader_and_page(platform, "rl")
    service = platform.metadata()
    batch = wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="web")] * 2, request_id=str(uuid.uuid4()))
    assert wiki.BatchRecordPageViews(batch, metadata=md).recorded == 2
    between = 60_000
    others = [wp.PageView(page=page.name, viewer=f"v{i % 7}", client="load") for i in range(1000)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: wiki.BatchRecordPageViews(wp.BatchRecordPageViewsRequest(views=others), metadata=service, timeout=60), range(between // 1000)))
    eventually(lambda: counts(search, md, page.name).total >= 2 + between, timeout=300, message="the views between counted")

    # A second stats worker joins, and the first leaves: the second owns every partition.
    runner = platform.platform
    second = "stats-second"
    runner.specs[second] = ProcessSpec(second, runner.specs["stats"].argv)
    runner.start_process(second)
    try:
        runner.kill("stats")
        runner.kill("posts")
        runner.restart("posts")
        wiki = platform.stub(wg.WikiServiceStub, "posts")
        assert eventually(lambda: wiki.BatchRecordPageViews(batch, metadata=md, timeout=10).recorded == 2, timeout=60, message="the retry answered")
        wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=md)  # a new view, after the copies
        facts = [le.ViewFact.FromString(r.value) for r in read_topic(platform.settings, platform.settings.fact_topic("views"))]
        assert sum(1 for f in facts if f.view_id in {view_id_of(reader, batch.request_id, i) for i in range(2)}) == 4, "the retry was not sent again"
        eventually(lambda: counts(search, md, page.name).total >= 3 + between, timeout=120, message="the new view counted")
        assert counts(search, md, page.name).total == 3 + between
    finally:
        runner.restart("stats")
        runner.kill(second)
        del runner.specs[second], runner.procs[second]


def test_the_store_of_seen_view_ids_skips_a_copy_an_hour_later_and_drops_old_hours(platform):
    """The counter's store itself (services/search/readmodels/counters/views.py, SeenViewIds) against the real
    Elasticsearch, with record times hours apart (a gRPC client cannot wait that long)."""
    import asyncio
    from types import SimpleNamespace

    from elasticsearch import AsyncElasticsearch

    from services.search.readmodels.counters.views import KEPT_BUCKETS, RETRY_WINDOW_SECONDS, SeenViewIds, bucket_of

    hour_ms = RETRY_WINDOW_SECONDS * 1000
    start = bucket_of(1_780_000_000_000) * hour_ms + hour_ms // 2
    request = uuid.uuid4().hex

    def fact(offset: int, at_ms: int, index: int = 0) -> SimpleNamespace:
        view = le.ViewFact(target="pages/store", view_id=f"someone/{request}/{index}")
        return SimpleNamespace(partition=0, offset=offset, timestamp=at_ms, value=view.SerializeToString())

    async def scenario() -> tuple[list[list[int]], list[str]]:
        es = AsyncElasticsearch(platform.settings.es_url, request_timeout=30)
        try:
            seen = SeenViewIds(es, platform.settings)
            one_worker, another = seen, SeenViewIds(es, platform.settings)
            decided = [
                [r.offset for r in await one_worker.first_sightings("views", [fact(0, start), fact(1, start, index=1)])],
                [r.offset for r in await another.first_sightings("views", [fact(0, start)])],  # a replay elsewhere
                [r.offset for r in await another.first_sightings("views", [fact(5, start + 59 * 60_000)])],  # 59 min later
                [r.offset for r in await one_worker.first_sightings("views", [fact(9, start + hour_ms)])],  # 60 min later
                [r.offset for r in await another.first_sightings("views", [fact(20, start + 10 * hour_ms, index=1)])],  # 10 h later
            ]
            names = sorted(await es.indices.get(index=f"{seen.prefix}-*"))
            return decided, names
        finally:
            await es.close()

    decided, names = asyncio.run(scenario())
    assert decided == [[0, 1], [0], [], [], [20]]
    # The hours of the first views were dropped once ten hours later were written; the newest kept.
    buckets = [int(n.rsplit("-", 1)[1]) for n in names]
    latest = bucket_of(start + 10 * hour_ms)
    assert bucket_of(start) not in buckets and min(buckets) > latest - KEPT_BUCKETS and {latest - 1, latest, latest + 1} <= set(buckets)

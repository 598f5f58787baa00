"""What must hold with several replicas of each service (the cluster topology, tests/cluster):
a jam changes phase once per transition however many jams replicas run the scheduler; a request
id retried on the other replica is answered from the first run; a view batch retried on the
other replica counts once; the rate limit is per person per replica, as README.md says; one
caller's searches are answered by one copy of each shard."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import grpc
import pytest
from elasticsearch import Elasticsearch

from services.jams.domainmodel import jam_id_of
from tests.conftest import eventually
from tests.integration.helpers import read_events, read_topic
from watercooler.client import service_config
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.jams.v1 import jams_pb2_grpc as jg
from watercooler.posts.v1 import library_events_pb2 as le
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.posts.v1 import wiki_pb2_grpc as wg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.cluster


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def ts(seconds_from_now: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds_from_now))
    return stamp


def employee_with_space(cluster, prefix: str) -> tuple[tuple, wp.Space]:
    person = unique(prefix)
    cluster.stub(pg.ProfileServiceStub, "profiles").CreateProfile(
        pp.CreateProfileRequest(profile=pp.Profile(employee_id=person, display_name=person, department="Research")), metadata=cluster.metadata(), timeout=30
    )
    # Writing what others read asks for the participation guidelines of the ConfigMap's version.
    cluster.stub(pg.ProfileServiceStub, "profiles").AcceptGuidelines(
        pp.AcceptGuidelinesRequest(name=f"profiles/{person}", version=cluster.rendered("WC_GUIDELINES_VERSION")), metadata=cluster.metadata(), timeout=30
    )
    md = cluster.metadata(person, "employee")
    wiki = cluster.stub(wg.WikiServiceStub, "posts")
    space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique(f"{prefix}s"), display_name="Replicas", visibility=wp.INTERNAL)), metadata=md, timeout=30)
    return md, space


def test_every_service_runs_two_replicas_each_answering(cluster):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for service in ("profiles", "posts", "jams", "search"):
        addresses = cluster.cluster.replica_addresses(service)
        assert len(addresses) == 2
        for replica in range(2):
            status = health_pb2_grpc.HealthStub(cluster.channel(service, replica)).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING, (service, replica)


def test_a_jam_changes_phase_once_per_transition_with_two_schedulers(cluster):
    jams = cluster.stub(jg.JamServiceStub, "jams")
    host = cluster.metadata(unique("host"), "employee")
    jam_id = unique("jam")
    created = jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Two schedulers", open_time=ts(3), voting_time=ts(5), close_time=ts(7))), metadata=host, timeout=30)
    assert created.phase == jp.SCHEDULED
    # Both replicas tick every half second and both see the jam (one shared store).
    eventually(lambda: jams.GetJam(jp.GetJamRequest(name=created.name), metadata=host, timeout=10).phase == jp.RESULTS_PUBLISHED, timeout=90, message="results published")

    aggregate = str(jam_id_of(jam_id))

    def phase_events():
        return [e for e in read_events(cluster.settings, "jams") if e.aggregate_id == aggregate and e.type_name == "JamPhaseChanged"]

    # Kafka has every stored event once the relay caught up; a second CLOSED would follow the first.
    changes = eventually(lambda: len(e := phase_events()) >= 3 and e, timeout=60, message="phase events in Kafka")
    time.sleep(2)
    changes = phase_events()
    assert [c.payload.to_phase for c in changes] == ["OPEN", "VOTING", "CLOSED"]


def test_a_request_id_retried_on_the_other_replica_is_answered_from_the_first_run(cluster):
    md, space = employee_with_space(cluster, "rid")
    first, second = cluster.stub(wg.WikiServiceStub, "posts", 0), cluster.stub(wg.WikiServiceStub, "posts", 1)
    create = wp.CreatePageRequest(page=wp.Page(space=space.name, title="Retried", body="one"), request_id=str(uuid.uuid4()))
    page = first.CreatePage(create, metadata=md, timeout=30)
    again = second.CreatePage(create, metadata=md, timeout=30)
    assert (again.name, again.revision, again.etag) == (page.name, page.revision, page.etag)

    edit = wp.EditPageRequest(name=page.name, body="two", base_revision=page.revision, request_id=str(uuid.uuid4()))
    edited = second.EditPage(edit, metadata=md, timeout=30)
    retried = first.EditPage(edit, metadata=md, timeout=30)
    assert (retried.revision, retried.etag) == (edited.revision, edited.etag) == (2, edited.etag)
    revisions = first.ListRevisions(wp.ListRevisionsRequest(name=page.name), metadata=md, timeout=30)
    assert len(revisions.revisions) == 2


def test_a_view_batch_retried_on_the_other_replica_counts_once(cluster):
    md, space = employee_with_space(cluster, "vw")
    wiki = cluster.stub(wg.WikiServiceStub, "posts")
    page = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space.name, title="Viewed", body="x")), metadata=md, timeout=30)
    request_id = str(uuid.uuid4())
    batch = wp.BatchRecordPageViewsRequest(views=[wp.PageView(page=page.name, client="web")] * 3, request_id=request_id)
    assert cluster.stub(wg.WikiServiceStub, "posts", 0).BatchRecordPageViews(batch, metadata=md, timeout=30).recorded == 3
    assert cluster.stub(wg.WikiServiceStub, "posts", 1).BatchRecordPageViews(batch, metadata=md, timeout=30).recorded == 3
    # The other replica did not know the request: it sent the batch again, same view ids ...
    facts = eventually(
        lambda: len(f := [x for x in (le.ViewFact.FromString(r.value) for r in read_topic(cluster.settings, cluster.settings.fact_topic("views"))) if x.target == page.name]) >= 6 and f,
        message="both copies in Kafka",
    )
    assert sorted(f.view_id for f in facts).count(facts[0].view_id) == 2
    # ... and a last view without a request_id lands after both copies in the page's partition.
    wiki.RecordPageView(wp.RecordPageViewRequest(view=wp.PageView(page=page.name)), metadata=md, timeout=30)
    search = cluster.stub(sg.SearchServiceStub, "search")

    def total() -> int:
        try:
            return search.GetViewCounts(sp.GetViewCountsRequest(name=page.name), metadata=md, timeout=10).total
        except grpc.RpcError as error:
            raise AssertionError(error.details()) from None

    eventually(lambda: total() >= 4, timeout=90, message="the views counted")
    # Whichever search replica answers, and whichever copy of the counts' shard: one count,
    # never going back (each copy refreshes on its own; a caller's reads stay on one copy).
    assert [total() for _ in range(10)] == [4] * 10


def test_the_rate_limit_is_per_person_per_replica(cluster):
    """README.md: WC_RATE_LIMIT / WC_RATE_BURST are per person per service replica, so a person
    whose calls are spread over N replicas gets up to N times the rate. Both replicas' buckets
    fill the same burst: more calls pass than one replica allows, never more than two do."""
    rate, burst = float(cluster.rendered("WC_RATE_LIMIT")), float(cluster.rendered("WC_RATE_BURST"))
    target = cluster.cluster.service_target("profiles")
    md = cluster.metadata(unique("eager"), "employee")

    async def hammer() -> tuple[int, int, float]:
        ok = limited = 0
        async with grpc.aio.insecure_channel(target, options=[("grpc.service_config", service_config(target))]) as channel:
            stub = pg.ProfileServiceStub(channel)
            await channel.channel_ready()

            async def one() -> grpc.StatusCode:
                try:
                    await stub.GetProfile(pp.GetProfileRequest(name="profiles/nobody-here"), metadata=md, timeout=30)
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    return error.code()

            started = time.monotonic()
            while limited < 2 * burst:
                codes = await asyncio.gather(*(one() for _ in range(int(burst))))
                ok += sum(1 for c in codes if c == grpc.StatusCode.NOT_FOUND)
                limited += sum(1 for c in codes if c == grpc.StatusCode.RESOURCE_EXHAUSTED)
                assert set(codes) <= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
            return ok, limited, time.monotonic() - started

    ok, limited, elapsed = asyncio.run(hammer())
    one_replica = burst + rate * elapsed
    assert one_replica < ok <= 2 * one_replica, (ok, limited, elapsed)


def test_one_callers_searches_are_answered_by_one_copy_of_each_shard(cluster):
    """Each copy of a shard refreshes and scores on its own: a caller's second page answered by
    the other copy could repeat or skip a hit. The search service names its caller in every
    search (services/search/copies.py), so Elasticsearch answers them from the same copies."""
    es = Elasticsearch(cluster.settings.es_url.split(","))
    alias = cluster.settings.index_alias("people")

    def queries_per_copy() -> dict[tuple[str, str], int]:
        stats = es.indices.stats(index=alias, metric="search", level="shards")
        (index,) = stats["indices"].values()
        return {(shard, copy["routing"]["node"]): copy["search"]["query_total"] for shard, copies in index["shards"].items() for copy in copies}

    searches = 24
    before = queries_per_copy()
    search = cluster.stub(sg.SearchServiceStub, "search")  # both search replicas, round-robin
    md = cluster.metadata(unique("pin"), "employee")
    for n in range(searches):
        search.SearchPeople(sp.SearchPeopleRequest(query=f"someone {n}"), metadata=md, timeout=30)
    grown: dict[str, list[int]] = {}
    for (shard, node), total in queries_per_copy().items():
        grown.setdefault(shard, []).append(total - before.get((shard, node), 0))
    es.close()
    assert grown and all(len(copies) == 2 for copies in grown.values()), grown  # two copies of every shard
    # Every one of the caller's searches reached the same copy of each shard (other callers,
    # a background poll, may add to either copy).
    assert all(max(copies) >= searches for copies in grown.values()), grown

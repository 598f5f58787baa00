"""Notifications: from an acknowledged write to WatchNotifications delivering it, and fan-out.

    WC_INFRA=external WC_KAFKA_BOOTSTRAP=127.0.0.1:29092 WC_ES_URL=http://127.0.0.1:29200 \\
        .venv/bin/python -m benchmarks.notifications --rates 20,200 --seconds 10 --jam-participants 100000

Starts the platform in a namespace of its own (tools.runner.Platform), then:

- **Delay**: ``--watchers`` recipients each keep a WatchNotifications stream open; a writer
  posts microposts at a constant offered rate (open loop: the clock starts at the scheduled
  send, no coordinated omission), each mentioning one recipient in turn. A notification's
  delay is its delivery on the stream minus the CreateMicropost acknowledgement (same
  machine, same clock). p50/p90/p99/max, and how many were delivered.
- **Mention fan-out**: one micropost mentioning the most people the platform allows
  (MAX_MENTIONS, 20: a micropost cannot mention 50), each with a stream open: time from the
  acknowledgement until every stream has delivered.
- **Jam fan-out**: a jam whose participants (``--jam-participants``) are written straight
  into the projection's ``notification_facts`` index (what ballots, ideas and replies would
  have noted: creating 100,000 voters through the API would take this machine hours), then
  one AdvanceJamPhase through the API: time until every participant's notification is
  indexed and searchable (a count on the index, polled), and the projections process's RSS
  before and at its peak (sampled every 100 ms).

Results: test-artifacts/bench/notifications-<stamp>.json. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "test-artifacts" / "bench"


def _platform_env() -> None:
    from benchmarks.harness import free_port
    from watercooler import config

    os.environ["WC_NAMESPACE"] = f"notif{secrets.token_hex(3)}"
    env = {"WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_SEARCH_HTTP_PORT": str(free_port()), "WC_RATE_LIMIT": "0"}
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    os.environ.update(env)


async def _people(settings, n: int, prefix: str) -> list[str]:
    import grpc

    from watercooler.auth import issue_token
    from watercooler.client import bearer_metadata
    from watercooler.profiles.v1 import profiles_pb2 as pp
    from watercooler.profiles.v1 import profiles_pb2_grpc as pg

    service = bearer_metadata(issue_token(settings, "watercooler-bench", "service", ttl_seconds=3600))
    ids = [f"{prefix}{i}" for i in range(n)]
    async with grpc.aio.insecure_channel(settings.grpc_address("profiles")) as ch:
        stub = pg.ProfileServiceStub(ch)
        await asyncio.gather(*(stub.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=e, display_name=f"Bench {e}")), metadata=service, timeout=120) for e in ids))
    return ids


def _token(settings, subject: str, kind: str = "employee"):
    from watercooler.auth import issue_token
    from watercooler.client import bearer_metadata

    return bearer_metadata(issue_token(settings, subject, kind, ttl_seconds=3600))


class Watchers:
    """One WatchNotifications stream per recipient; records when each notification (by item) arrived."""

    def __init__(self, settings, recipients: list[str]):
        self.settings, self.recipients = settings, recipients
        self.arrived: dict[tuple[str, str], float] = {}
        self.tasks: list[asyncio.Task] = []
        self.channel = None

    async def start(self) -> None:
        import grpc

        from watercooler.search.v1 import notifications_pb2 as sn
        from watercooler.search.v1 import notifications_pb2_grpc as sng

        self.channel = grpc.aio.insecure_channel(self.settings.grpc_address("search"))
        stub = sng.NotificationServiceStub(self.channel)

        async def watch(person: str) -> None:
            call = stub.WatchNotifications(sn.WatchNotificationsRequest(parent=f"profiles/{person}"), metadata=_token(self.settings, person))
            async for notification in call:
                self.arrived.setdefault((person, notification.item), time.time())

        self.tasks = [asyncio.create_task(watch(p)) for p in self.recipients]
        await asyncio.sleep(3)  # every stream open (its start is "now" on the server)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.channel.close()


async def delay_at_rate(settings, writer: str, recipients: list[str], rate: float, seconds: float, drain: float) -> dict[str, Any]:
    import grpc

    from benchmarks.harness import hist, record, summary
    from watercooler.posts.v1 import posts_pb2 as pb
    from watercooler.posts.v1 import posts_pb2_grpc as pg
    from watercooler.projection import es_client

    watchers = Watchers(settings, recipients)
    await watchers.start()
    acked: dict[tuple[str, str], float] = {}
    errors = 0
    # The baseline, same writes, same minutes: when each micropost itself is searchable in the
    # posts index (what the notification waits for too, plus its own projection and the stream's poll).
    es, searchable, stop = es_client(settings), {}, asyncio.Event()

    async def poll_posts() -> None:
        while not stop.is_set():
            pending = [name for _, name in acked if name not in searchable]
            if pending:
                found = await es.search(index=settings.index_alias("posts"), query={"terms": {"name": pending[:1000]}}, size=1000, source=["name"])
                now = time.time()
                for hit in found["hits"]["hits"]:
                    searchable.setdefault(hit["_source"]["name"], now)
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll_posts())
    async with grpc.aio.insecure_channel(settings.grpc_address("posts")) as ch:
        stub = pg.PostServiceStub(ch)
        md = _token(settings, writer)

        async def send(i: int, due: float) -> None:
            nonlocal errors
            recipient = recipients[i % len(recipients)]
            try:
                reply = await stub.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=f"hi @{recipient} #{i}", visibility=pb.Audience.INTERNAL)), metadata=md, timeout=60)
                acked[(recipient, reply.name)] = time.time()
            except grpc.RpcError:
                errors += 1

        began = time.time()
        total = int(rate * seconds)
        sends = []
        for i in range(total):
            due = began + i / rate
            pause = due - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            sends.append(asyncio.create_task(send(i, due)))
        await asyncio.gather(*sends)
        sent_for = time.time() - began
    deadline = time.time() + drain
    while time.time() < deadline and not set(acked) <= set(watchers.arrived):
        await asyncio.sleep(0.2)
    await watchers.stop()
    stop.set()
    await poller
    await es.close()
    h, baseline = hist(), hist()
    for key, at in acked.items():
        if key in watchers.arrived:
            record(h, watchers.arrived[key] - at)
        if key[1] in searchable:
            record(baseline, searchable[key[1]] - at)
    return {"offered_per_s": rate, "achieved_per_s": round(len(acked) / sent_for, 1), "writes": len(acked), "errors": errors,
            "delivered": sum(1 for k in acked if k in watchers.arrived), "delay": summary(h), "watchers": len(recipients),
            "baseline_micropost_searchable": summary(baseline)}


async def mention_fan_out(settings, writer: str, recipients: list[str], drain: float) -> dict[str, Any]:
    import grpc

    from watercooler.posts.v1 import posts_pb2 as pb
    from watercooler.posts.v1 import posts_pb2_grpc as pg

    watchers = Watchers(settings, recipients)
    await watchers.start()
    async with grpc.aio.insecure_channel(settings.grpc_address("posts")) as ch:
        text = "all of you: " + " ".join(f"@{r}" for r in recipients)
        reply = await pg.PostServiceStub(ch).CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=text, visibility=pb.Audience.INTERNAL)), metadata=_token(settings, writer), timeout=60)
        acked = time.time()
    wanted = {(r, reply.name) for r in recipients}
    deadline = time.time() + drain
    while time.time() < deadline and not wanted <= set(watchers.arrived):
        await asyncio.sleep(0.05)
    await watchers.stop()
    delivered = [watchers.arrived[k] - acked for k in wanted if k in watchers.arrived]
    return {"mentioned": len(recipients), "delivered": len(delivered), "all_delivered_after_s": round(max(delivered), 3) if len(delivered) == len(wanted) else None,
            "first_delivered_after_s": round(min(delivered), 3) if delivered else None}


async def jam_fan_out(settings, host: str, participants: int, procs, drain: float) -> dict[str, Any]:
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from benchmarks.harness import rss_bytes
    from services.jams.domainmodel import jam_id_of
    from watercooler.jams.v1 import jams_pb2 as jp
    from watercooler.jams.v1 import jams_pb2_grpc as jg
    from watercooler.projection import es_client

    def ts(seconds: float) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).replace(tzinfo=None))
        return stamp

    es = es_client(settings)
    jam_id = f"bench-{secrets.token_hex(3)}"
    md = _token(settings, host)
    async with grpc.aio.insecure_channel(settings.grpc_address("jams")) as ch:
        stub = jg.JamServiceStub(ch)
        await stub.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Bench", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))), metadata=md, timeout=60)
        await stub.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=jp.SCHEDULED), metadata=md, timeout=60)
        facts = settings.index_alias("notification_facts")
        key, joined = str(jam_id_of(jam_id)), (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        # The first phase change applied (its fact kept) before the participants are written: only the second is measured.
        seen = {"bool": {"filter": [{"term": {"fact": "jam_event"}}, {"term": {"key": key}}]}}
        while (await es.count(index=facts, query=seen))["count"] < 1:
            await asyncio.sleep(0.2)
        for start in range(0, participants, 5000):
            operations: list[dict[str, Any]] = []
            for i in range(start, min(participants, start + 5000)):
                person = f"p{i:07d}"
                operations += [{"index": {"_index": facts, "_id": f"jam_member\x1f{key}\x1f{person}"}}, {"fact": "jam_member", "key": key, "person": person, "value": "", "jam_id": jam_id, "at": joined}]
            await es.bulk(operations=operations, filter_path="errors")
        await es.indices.refresh(index=facts)
        pid = procs["projections"].pid
        rss_before = rss_bytes(pid)
        peak = rss_before or 0
        await stub.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=jp.OPEN), metadata=md, timeout=60)
        acked = time.time()
    alias = settings.index_alias("notifications")
    query = {"bool": {"filter": [{"term": {"kind": "jam_phase"}}, {"term": {"item": f"jams/{jam_id}"}}]}}
    count, deadline, done_at = 0, time.time() + drain, None
    while time.time() < deadline:
        peak = max(peak, rss_bytes(pid) or 0)
        count = (await es.count(index=alias, query=query))["count"]
        if count >= participants:  # the host is not told of their own phase change
            done_at = time.time()
            break
        await asyncio.sleep(0.1)
    await es.close()
    return {"participants": participants, "notified": count, "all_searchable_after_s": round(done_at - acked, 2) if done_at else None,
            "notifications_per_s": round(count / (done_at - acked), 1) if done_at else None,
            "projections_rss_mb_before": round((rss_before or 0) / 2**20, 1), "projections_rss_mb_peak": round(peak / 2**20, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.notifications", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="20,200", help="offered mention writes per second, comma separated (the lower one: the same path unloaded)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--watchers", type=int, default=20, help="recipients with a stream open for the delay")
    p.add_argument("--jam-participants", type=int, default=100_000)
    p.add_argument("--drain", type=float, default=120.0, help="how long to wait for the last deliveries")
    args = p.parse_args(argv)
    _platform_env()
    from benchmarks.freshness import clean
    from benchmarks.harness import loadavg
    from tools.runner import Platform
    from watercooler import auth, config

    settings = config.load()
    auth.ensure_dev_keys(settings)
    running = Platform(settings, log_dir=OUT_DIR / "logs" / settings.namespace)
    report: dict[str, Any] = {"started_at": dt.datetime.now(dt.UTC).isoformat(), "args": vars(args), "nproc": os.cpu_count(), "loadavg_start": loadavg()}
    try:
        running.start()

        async def run() -> None:
            people = await _people(settings, 1 + max(args.watchers, 20), "nb")
            writer, recipients = people[0], people[1:]
            report["delay"] = []
            for rate in (float(r) for r in args.rates.split(",")):
                report["delay"].append(await delay_at_rate(settings, writer, recipients[:args.watchers], rate, args.seconds, args.drain))
                print(f"[notifications] delay @ {rate:g}/s: {report['delay'][-1]}", flush=True)
            report["mention_fan_out"] = await mention_fan_out(settings, writer, recipients[:20], args.drain)
            print(f"[notifications] mention fan-out: {report['mention_fan_out']}", flush=True)
            report["jam_fan_out"] = await jam_fan_out(settings, writer, args.jam_participants, running.procs, args.drain)
            print(f"[notifications] jam fan-out: {report['jam_fan_out']}", flush=True)

        asyncio.run(run())
    finally:
        report["loadavg_end"] = loadavg()
        running.stop()
        clean(settings)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"notifications-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"[notifications] wrote {out}")
    return report


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()

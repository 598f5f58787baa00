"""`make bench`: the platform measured next to the raw limits of its parts, in one run.

Every latency is taken at a constant offered rate and counted from the request's
*scheduled* send time (no coordinated omission) into an HDR histogram; a throughput is
reported together with whether latency stayed bounded at it.  Sections:

- machine: CPU, memory, load, Python, JDK, Kafka and Elasticsearch versions;
- raw: Elasticsearch `_bulk` of the people documents the projection writes, Kafka's own
  ProducerPerformance, a bare grpc.aio unary echo in another process;
- platform: CreateProfile burst and constant-rate runs (latency, freshness = ack to first
  search hit, indexed events/s), processor catch-up from a pre-filled topic, a full
  `PeopleProjection.rebuild`, SearchPeople/ListPeople at 100 req/s, Search and Suggest at
  100 req/s over 1,000,000 content documents (benchmarks.search_latency), idle RSS of every process;
- partitions: benchmarks.partitions, 1→2→3 processor workers over 6 partitions;
- ratios and targets, and where the time goes (py-spy samples of the busy processes).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import json
import os
import platform as pyplatform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3

# The issue's targets, as ratios or absolute bounds.
TARGETS = {
    "e2e_indexing_vs_es_bulk": 0.60,
    "rebuild_vs_es_bulk": 0.80,
    "write_rpc_vs_grpc_echo": 0.40,
    "freshness_p99_at_1000_s": 1.5,
    "search_p99_s": 0.050,
    "suggest_p99_s": 0.010,
    # CPU per Search over the content corpus (ms): Elasticsearch's and the search service's.
    "search_es_cpu_ms": 4.0,
    "search_service_cpu_ms": 1.5,
    "idle_rss_gib": 3.0,
}


@dataclass
class BenchConfig:
    employees: int = 400_000  # the company the generator describes (people are drawn in hiring order)
    seed: int = 42
    burst_profiles: int = 3_000  # closed-loop CreateProfile burst
    write_warmup_seconds: float = 180.0  # the most CreateProfile runs before the write path is measured (fresh Kafka and Elasticsearch JVMs' JIT)
    write_warmup_min_seconds: float = 60.0
    write_warmup_profiles: int = 120_000  # people set aside for it (~600/s for the 180 s; it stops early when they run out)
    concurrency: int = 32
    command_calls: int = 2_000  # closed-loop calls of each other main command (CreatePost, CreateComment, RatePost, Follow, CreateStatusUpdate)
    batched_profiles: int = 40_000  # written by BatchCreateProfiles (AIP-233), after the burst
    batch_size: int = 500  # profiles per BatchCreateProfiles call (the processor's BATCH_SIZE)
    batch_concurrency: int = 4  # BatchCreateProfiles calls in flight
    rates: tuple[float, ...] = (200.0, 1000.0)  # offered CreateProfile rates for latency and freshness
    rate_seconds: float = 20.0
    people_events: int = 100_000  # profile events produced straight to the topic for catch-up, rebuild, SearchPeople
    search_docs: int = 1_000_000  # content documents bulk-loaded for Search and Suggest (benchmarks/search_latency.py)
    # A second, larger corpus measured the same way after the first (0: skip), to show how a
    # Search's cost grows with the corpus rather than one point.
    search_docs_large: int = 5_000_000
    search_rate: float = 100.0
    search_seconds: float = 20.0
    search_warmup_seconds: float = 180.0  # the most Search and Suggest each run before being measured (a fresh Elasticsearch JVM's JIT)
    people_warmup_seconds: float = 120.0  # the most SearchPeople and ListPeople run before being measured (the same reason; 60 s did not settle)
    people_warmup_min_seconds: float = 20.0
    bulk_docs: int = 50_000
    bulk_batch: int = 500  # the processor's BATCH_SIZE
    kafka_records: int = 200_000
    echo_seconds: float = 10.0
    partition_events: int = 20_000
    partition_workers: tuple[int, ...] = (1, 2, 3)
    profile_seconds: float = 10.0  # py-spy sampling during the highest rate; 0 to skip
    jam_participants: int = 500_000  # x jam_votes_each vote events replayed into the tally (the brief's 5,000,000-vote jam)
    jam_votes_each: int = 10
    search_callers: int = 50  # distinct employees the search load speaks as (per-person limits, caches)
    relevance: bool = True  # the judged relevance set (benchmarks/relevance.py): nDCG@10, recall@10
    idle_settle_seconds: float = 5.0  # quiet time before reading resident memory
    out_dir: Path = field(default_factory=lambda: ROOT / "docs" / "benchmarks")
    name: str = "latest"


COMMANDS = ("CreatePost", "CreateComment", "RatePost", "Follow", "CreateStatusUpdate")  # PlatformBench.commands


# --- small utilities --------------------------------------------------------------------------
def hist() -> HdrHistogram:
    return HdrHistogram(1, 600_000_000, 3)  # microseconds, up to 10 minutes


def summary(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"count": 0}
    ms = lambda p: round(h.get_value_at_percentile(p) / 1000, 3)  # noqa: E731
    return {"count": h.get_total_count(), "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99), "p999_ms": ms(99.9), "max_ms": round(h.get_max_value() / 1000, 3)}


def record(h: HdrHistogram, seconds: float) -> None:
    h.record_value(max(1, min(600_000_000, int(seconds * 1_000_000))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process that is running."""
    used = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    return {name: v for name, v in used.items() if v is not None}


def jit_cpu_seconds(pid: int) -> float | None:
    """CPU seconds so far of a JVM's JIT compiler threads (C1 and C2), from /proc: what a
    freshly started Kafka or Elasticsearch spends on top of the work itself until warm."""
    total, seen = 0.0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if not (task / "comm").read_text().startswith(("C1 CompilerThre", "C2 CompilerThre")):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total, seen = total + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), True
    return total if seen else None


def per_item_ms(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item of each process between two cpu_of readings, busiest first."""
    spent = {name: 1000 * (after[name] - before[name]) / max(1, items) for name in after if name in before}
    return {name: round(v, 3) for name, v in sorted(spent.items(), key=lambda kv: -kv[1])}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found + [g for c in found for g in children(c)]


def measured_settings(settings):
    """``settings`` with the Kafka and Elasticsearch ports of the servers actually used, read from
    their addresses: whose CPU is read (``listening_pid``). With servers given by address alone
    (WC_INFRA=external, WC_KAFKA_BOOTSTRAP, WC_ES_URL) the port settings keep their defaults, and
    the bench read no server's CPU at all, reporting 0 ms of Elasticsearch CPU per request."""
    from dataclasses import replace
    from urllib.parse import urlsplit

    kafka_port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    return replace(settings, kafka_port=kafka_port, es_port=urlsplit(settings.es_url).port or 9200)


def listening_pid(port: int) -> int | None:
    """The pid listening on a local TCP port (from /proc), for servers we did not start."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def _index_settings(settings) -> dict[str, Any]:
    from services.search.readmodels.projections.people import PeopleProjection

    return PeopleProjection(settings).index_body()["settings"]


def machine(settings) -> dict[str, Any]:
    from tools import infra

    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu.group(1).strip() if cpu else "unknown",
        "memory_gib": round(int(mem.group(1)) / 1024**2, 1) if mem else None,
        "kernel": pyplatform.release(),
        "python": sys.version.split()[0],
        "loadavg_start": loadavg(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "infra_mode": settings.infra_mode,
        "es_refresh_interval": _index_settings(settings).get("refresh_interval"),
        "relay_idle_max_s": settings.relay_idle_max, "processor_batch_within_s": settings.processor_batch_within,
        "rate_limit_per_principal": os.environ.get("WC_RATE_LIMIT", "50 (default)"),
    }
    try:
        jdk = infra.find_jdk()
        out = subprocess.run([str(jdk.java), "-version"], capture_output=True, text=True).stderr.splitlines()
        info["jdk"] = out[0] if out else str(jdk.version)
    except Exception as exc:  # reported, not fatal
        info["jdk"] = f"not found: {exc}"
    versions = infra.pom_versions()
    info["kafka"], info["elasticsearch"] = versions.kafka, versions.elasticsearch
    try:
        from elasticsearch import Elasticsearch

        info["elasticsearch_running"] = Elasticsearch(settings.es_url).info()["version"]["number"]
    except Exception:
        pass
    return info


# --- the data: the synthetic company as events and as the documents the projection writes --------
def profile_envelope(person, occurred: dt.datetime | None = None) -> bytes:
    """The envelope the relay would publish for this person's ProfileCreated."""
    from google.protobuf import any_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.profiles.domainmodel import profile_id
    from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
    from watercooler.profiles.v1 import events_pb2

    payload = any_pb2.Any()
    payload.Pack(events_pb2.ProfileCreated(
        employee_id=person.employee_id, display_name=person.display_name, sort_name=person.sort_name, title=person.title,
        department=person.department, country=person.country, manager_id=person.manager_id, expertise=list(person.expertise)))
    stamp = Timestamp()
    stamp.FromDatetime((occurred or dt.datetime.now(dt.UTC)).replace(tzinfo=None))
    return EventEnvelope(
        event_id=str(uuid.uuid4()), event_type="watercooler.profiles.v1.ProfileCreated", aggregate_type="Profile",
        aggregate_id=str(profile_id(person.employee_id)), aggregate_version=1, occurred_at=stamp,
        actor=Actor(subject="watercooler-bench", kind="service"), schema_version=1, payload=payload, source="profiles",
    ).SerializeToString()


def people_docs(people) -> list[tuple[str, dict]]:
    """(doc id, document) exactly as PeopleProjection.apply_batch would write them."""
    from services.search.readmodels.projections.people import PeopleProjection
    from watercooler.envelope import decode

    projection = PeopleProjection.__new__(PeopleProjection)  # apply() is pure: no settings needed
    docs = []
    for person in people:
        event = decode(profile_envelope(person))
        doc = projection.apply(None, event)
        doc.setdefault("deleted", False)
        doc["updated_at"] = event.occurred_at.isoformat()
        docs.append((event.aggregate_id, doc))
    return docs


# --- raw limits -------------------------------------------------------------------------------------
def raw_es_bulk(settings, cfg: BenchConfig, company) -> dict[str, Any]:
    """`_bulk` of the people documents into an index with the projection's own settings and
    mappings, external versions, batches of the processor's size, one request at a time (as
    one processor does) and two at a time (what two cores can give)."""
    from concurrent.futures import ThreadPoolExecutor

    from elasticsearch import Elasticsearch

    from services.search.readmodels.projections.people import PeopleProjection

    es = Elasticsearch(settings.es_url, request_timeout=120)
    docs = people_docs(company.people(limit=cfg.bulk_docs))
    body = PeopleProjection(settings).index_body()
    results: dict[str, Any] = {"documents": len(docs), "batch": cfg.bulk_batch, "avg_doc_bytes": round(sum(len(json.dumps(d)) for _, d in docs) / len(docs))}
    for parallel in (1, 2):
        index = f"{settings.index_alias('bench-raw')}-{parallel}-{uuid.uuid4().hex[:6]}"
        es.indices.create(index=index, **body)
        batches = []
        for start in range(0, len(docs), cfg.bulk_batch):
            ops: list[dict] = []
            for doc_id, doc in docs[start:start + cfg.bulk_batch]:
                ops += [{"index": {"_index": index, "_id": doc_id, "version": 1, "version_type": "external"}}, doc]
            batches.append(ops)
        began = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            for response in pool.map(lambda ops: es.bulk(operations=ops), batches):
                if response["errors"]:
                    raise RuntimeError("raw bulk reported errors")
        es.indices.refresh(index=index)
        elapsed = time.perf_counter() - began
        count = es.count(index=index)["count"]
        results[f"docs_per_s_{parallel}_in_flight"] = round(count / elapsed, 1)
        es.indices.delete(index=index)
    results["docs_per_s"] = max(results["docs_per_s_1_in_flight"], results["docs_per_s_2_in_flight"])
    es.close()
    return results


def raw_kafka(settings, cfg: BenchConfig, record_size: int) -> dict[str, Any]:
    """Kafka's own ProducerPerformance from the distribution we run, acks=all like the relay."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from tools import infra

    topic = f"{settings.namespace or 'bench'}.bench-raw-producer"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=settings.topic_partitions, replication_factor=1)])
    jdk = infra.find_jdk()
    cmd = [str(jdk.java), "-Xmx256m", "-cp", f"{infra.kafka_libs_dir(settings)}/*", "org.apache.kafka.tools.ProducerPerformance",
           "--topic", topic, "--num-records", str(cfg.kafka_records), "--record-size", str(record_size), "--throughput", "-1",
           "--producer-props", f"bootstrap.servers={settings.kafka_bootstrap}", "acks=all", "linger.ms=5", "batch.size=262144"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
    final = [line for line in out.stdout.splitlines() if "records sent" in line][-1:]
    if out.returncode != 0 or not final:
        raise RuntimeError(f"ProducerPerformance failed: {out.stderr[-2000:]}")
    line = final[0]
    num = lambda pattern: float(re.search(pattern, line).group(1))  # noqa: E731
    return {
        "records": cfg.kafka_records, "record_size": record_size, "acks": "all",
        "records_per_s": num(r"([\d.]+) records/sec"), "mb_per_s": num(r"\(([\d.]+) MB/sec\)"),
        "avg_latency_ms": num(r"([\d.]+) ms avg latency"), "p50_ms": num(r"([\d.]+) ms 50th"), "p99_ms": num(r"([\d.]+) ms 99th"),
        "output": line.strip(),
    }


ECHO_SERVER = r"""
import asyncio, sys, grpc
async def main():
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


async def _closed_loop(call, make_request, seconds: float, concurrency: int, total: int | None = None) -> tuple[int, HdrHistogram, float]:
    """`concurrency` workers call back to back for `seconds`, or until `total` calls have been
    made; worker w's n-th request is make_request(w, n)."""
    h = hist()
    done = issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done, issued
        n = 0
        while time.perf_counter() < deadline and (total is None or issued < total):
            issued += 1
            began = time.perf_counter()
            await call(make_request(w, n))
            record(h, time.perf_counter() - began)
            done += 1
            n += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, h, time.perf_counter() - began


async def _open_loop(call, make_request, rate: float, seconds: float, on_ack=None) -> dict[str, Any]:
    """Send at a constant rate for `seconds`; latency from each request's scheduled time."""
    h = hist()
    errors: collections.Counter = collections.Counter()
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    completions: list[float] = []
    max_slip = 0.0

    async def one(k: int, scheduled: float) -> None:
        nonlocal max_slip
        max_slip = max(max_slip, loop.time() - scheduled)
        try:
            result = await call(make_request(k))
        except Exception as exc:
            errors[str(exc.code()) if hasattr(exc, "code") else type(exc).__name__] += 1
            return
        now = loop.time()
        record(h, now - scheduled)
        completions.append(now)
        if on_ack:
            on_ack(k, result, time.monotonic())
        return None

    tasks = []
    aborted_at = None
    for k in range(total):
        scheduled = t0 + k / rate
        # The machine cannot keep up: stop offering rather than queue for minutes (reported).
        if len(tasks) - len(completions) - sum(errors.values()) > max(200, 3 * rate):
            aborted_at = round(loop.time() - t0, 2)
            break
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, scheduled)))
    await asyncio.gather(*tasks)
    span = (max(completions) - t0) if completions else float("nan")
    achieved = len(completions) / span if completions else 0.0
    latency = summary(h)
    return {"offered_per_s": rate, "seconds": seconds, "requests": total, "completed": len(completions), "errors": dict(errors),
            "achieved_per_s": round(achieved, 1), "stopped_offering_after_s": aborted_at, "latency_from_scheduled": latency, "max_send_slip_ms": round(max_slip * 1000, 1),
            "sustained": bool(completions) and aborted_at is None and achieved >= 0.95 * rate and not errors and latency.get("p99_ms", 1e9) < 1000}


async def until_settled(window, cost_of, min_seconds: float, max_seconds: float, settled_within: float = 0.10) -> dict[str, Any]:
    """Run measuring windows until a cost has settled: `window(seconds_left)` runs one and returns
    its record (None: nothing left to run); the cost is settled once the last three windows'
    `cost_of(record)` are within `settled_within` of their mean, after at least `min_seconds`.
    Stops after `max_seconds` either way. Two alike windows are not enough: a JIT's tail is slow
    (two-core runs showed two alike windows still 15 % above the settled cost)."""
    windows: list[dict[str, Any]] = []
    started = time.monotonic()
    ended = f"at its {max_seconds:g} s limit"
    while time.monotonic() - started < max_seconds:
        record = await window(max_seconds - (time.monotonic() - started))
        if record is None:
            ended = "with nothing left to run"
            break
        windows.append(record)
        last = [cost_of(w) for w in windows[-3:]]
        if time.monotonic() - started >= min_seconds and len(last) == 3 and None not in last and max(last) - min(last) <= settled_within * sum(last) / 3:
            ended = "settled"
            break
    return {"seconds": round(time.monotonic() - started, 1), "windows": windows, "settled": ended == "settled", "ended": ended}


def raw_grpc_echo(cfg: BenchConfig, payload_size: int) -> dict[str, Any]:
    import grpc

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        payload = os.urandom(payload_size)

        async def run() -> dict[str, Any]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                echo = ch.unary_unary("/bench.Echo/Echo")
                await echo(payload)
                pids = {"echo server": server.pid, "load generator": os.getpid()}
                cpu_before = cpu_of(pids)
                done, h, elapsed = await _closed_loop(lambda r: echo(r, timeout=30), lambda w, n: payload, cfg.echo_seconds, cfg.concurrency)
                cpu_after = cpu_of(pids)
                capacity = done / elapsed
                steady = await _open_loop(lambda r: echo(r, timeout=30), lambda k: payload, min(1000.0, capacity * 0.5), min(cfg.echo_seconds, 10))
            return {"payload_bytes": payload_size, "concurrency": cfg.concurrency, "closed_loop_rpc_per_s": round(capacity, 1),
                    "closed_loop_latency": summary(h), "cpu_ms_per_call": per_item_ms(cpu_before, cpu_after, done), "constant_rate": steady}

        return asyncio.run(run())
    finally:
        server.terminate()
        server.wait(10)


# --- the platform ----------------------------------------------------------------------------------
class PlatformBench:
    def __init__(self, settings, cfg: BenchConfig, company, procs: dict[str, subprocess.Popen]):
        self.settings, self.cfg, self.company, self.procs = settings, cfg, company, procs
        self.people = list(company.people(limit=self.people_needed()))
        self.next_person = 0
        self.written_in_batches: list = []
        self.alias = settings.index_alias("people")

    def people_needed(self) -> int:
        cfg = self.cfg
        return min(self.company.employees, 64 + cfg.write_warmup_profiles + cfg.burst_profiles + cfg.batched_profiles + int(sum(cfg.rates) * cfg.rate_seconds) + cfg.people_events)

    def take(self, n: int) -> list:
        chosen = self.people[self.next_person:self.next_person + n]
        self.next_person += len(chosen)
        return chosen

    def request(self, person):
        from tools.company import create_profile_request

        return create_profile_request(person, f"bench-{self.cfg.seed}-{person.employee_id}")

    async def writes(self) -> dict[str, Any]:
        import grpc

        from watercooler.auth import issue_token
        from watercooler.client import bearer_metadata
        from watercooler.profiles.v1 import profiles_pb2_grpc
        from watercooler.projection import es_client

        metadata = bearer_metadata(issue_token(self.settings, "watercooler-bench", "service", ttl_seconds=24 * 3600))
        es = es_client(self.settings)
        out: dict[str, Any] = {}
        async with grpc.aio.insecure_channel(self.settings.grpc_address("profiles")) as ch:
            stub = profiles_pb2_grpc.ProfileServiceStub(ch)
            create = lambda req: stub.CreateProfile(req, metadata=metadata, timeout=60)  # noqa: E731
            # The top of the manager tree first, in order: every later manager then exists.
            for person in self.take(min(64, len(self.people))):
                await create(self.request(person))
            out["request_bytes"] = len(self.request(self.people[0]).SerializeToString())
            warm_up_people = self.people[self.next_person:self.next_person + self.cfg.write_warmup_profiles]
            out["warm_up"] = await self._warm_up(create)
            # The burst's CPU is counted until its last write is searchable: the warm-up's backlog
            # in the processors must not be counted with it.
            out["warm_up"]["all_indexed_after_s"] = await self._wait_indexed(es, warm_up_people[:out["warm_up"]["writes"]], time.perf_counter())
            # Capacity: closed loop (the bare echo is measured the same way).
            burst = self.take(self.cfg.burst_profiles)
            first_index = burst[0].index if burst else 0
            cpu_before, jit_before = self.cpu_by_process(), self.jit_by_process()
            began = time.perf_counter()
            done, h, elapsed = await self._burst(create, list(reversed(burst)))
            cpu_written = self.cpu_by_process()
            indexed_at = await self._wait_indexed(es, burst, began)
            cpu_indexed, jit_indexed = self.cpu_by_process(), self.jit_by_process()
            out["burst"] = {"profiles": len(burst), "concurrency": self.cfg.concurrency, "rpc_per_s": round(done / elapsed, 1),
                            "latency": summary(h), "all_indexed_after_s": round(indexed_at, 2),
                            "e2e_events_per_s": round(len(burst) / indexed_at, 1) if indexed_at else None, "first_index": first_index,
                            "cpu_ms_per_write": per_item_ms(cpu_before, cpu_written, len(burst)),
                            "cpu_ms_per_indexed_write": per_item_ms(cpu_before, cpu_indexed, len(burst)),
                            "jit_cpu_ms_per_indexed_write": per_item_ms(jit_before, jit_indexed, len(burst))}
            out["batched"] = await self._batched(stub, metadata, es)
            # Constant offered rates: latency, freshness, indexed events/s.
            out["rates"] = []
            for rate in self.cfg.rates:
                out["rates"].append(await self._rate_run(es, create, rate))
        await es.close()
        return out

    async def _batched(self, stub, metadata, es) -> dict[str, Any]:
        """The same writes as the burst, `batch_size` to a BatchCreateProfiles call: what a bulk
        import (an HR feed) sends. End to end it is measured like `_bulk`, many documents a
        request, so its events/s from first send to all searchable is the figure to hold against
        raw `_bulk` (the burst's one profile a call is bound by the per-call write path)."""
        from watercooler.profiles.v1 import profiles_pb2

        people = self.take(self.cfg.batched_profiles)
        self.written_in_batches = people
        if not people:
            return {"profiles": 0}
        size = self.cfg.batch_size
        calls = [profiles_pb2.BatchCreateProfilesRequest(requests=[self.request(p) for p in people[i:i + size]]) for i in range(0, len(people), size)]
        queue = list(reversed(calls))
        cpu_before = self.cpu_by_process()
        began = time.perf_counter()
        _, h, written = await _closed_loop(lambda call: stub.BatchCreateProfiles(call, metadata=metadata, timeout=120), lambda _w, _n: queue.pop(),
                                           float("inf"), self.cfg.batch_concurrency, total=len(calls))
        cpu_written = self.cpu_by_process()
        indexed_at = await self._wait_indexed(es, people, began)
        cpu_indexed = self.cpu_by_process()
        return {"profiles": len(people), "batch_size": size, "concurrency": self.cfg.batch_concurrency, "calls": len(calls),
                "call_latency": summary(h), "acknowledged_events_per_s": round(len(people) / written, 1),
                "all_indexed_after_s": indexed_at and round(indexed_at, 2), "e2e_events_per_s": indexed_at and round(len(people) / indexed_at, 1),
                "cpu_ms_per_write": per_item_ms(cpu_before, cpu_written, len(people)),
                "cpu_ms_per_indexed_write": per_item_ms(cpu_before, cpu_indexed, len(people))}

    async def commands(self) -> dict[str, Any]:
        """The other main write commands, each `command_calls` times in a closed loop with
        `concurrency` workers, measured like the CreateProfile burst (rpc/s, latency, CPU per
        call by process). Worker k always acts as the k-th author, so no two calls in flight
        change one aggregate (a person's rating of the post, their follow edges)."""
        import grpc

        from watercooler.auth import issue_token
        from watercooler.client import bearer_metadata
        from watercooler.guidelines import AcceptForPeople
        from watercooler.posts.v1 import posts_pb2 as pb
        from watercooler.posts.v1 import posts_pb2_grpc as pg
        from watercooler.profiles.v1 import graph_pb2 as gp
        from watercooler.profiles.v1 import graph_pb2_grpc as gg

        workers = max(1, min(self.cfg.concurrency, 64))
        authors = [p.employee_id for p in self.people[:workers]]  # created first by writes()
        followed = [p.employee_id for p in self.written_in_batches[: self.cfg.command_calls]]  # created by writes(), none an author
        as_author = [bearer_metadata(issue_token(self.settings, a, "employee", ttl_seconds=24 * 3600)) for a in authors]
        # They write what others read: each accepts the participation guidelines first.
        guidelines = AcceptForPeople(self.settings, bearer_metadata(issue_token(self.settings, "watercooler-bench", "service", ttl_seconds=3600)))
        for author in authors:
            guidelines.accept(author)
        out: dict[str, Any] = {"workers": workers, "calls_each": self.cfg.command_calls}
        async with grpc.aio.insecure_channel(self.settings.grpc_address("posts")) as posts_ch, grpc.aio.insecure_channel(self.settings.grpc_address("profiles")) as profiles_ch:
            posts, graph = pg.PostServiceStub(posts_ch), gg.GraphServiceStub(profiles_ch)
            blogs = []
            for author, md in zip(authors, as_author, strict=True):
                handle = f"bench-{self.cfg.seed}-{author}".lower()
                await posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=handle, title=f"Bench {author}", visibility=pb.Audience.INTERNAL),
                                                            request_id=f"bench-blog-{handle}"), metadata=md, timeout=60)
                blogs.append(f"blogs/{handle}")
            target = await posts.CreatePost(pb.CreatePostRequest(parent=blogs[0], post=pb.Post(title="The post everyone comments on", body="Bench.", visibility=pb.Audience.INTERNAL)),
                                            metadata=as_author[0], timeout=60)
            await posts.PublishPost(pb.PublishPostRequest(name=target.name), metadata=as_author[0], timeout=60)
            run = self.cfg.seed, time.time_ns()

            def create_post(w: int, n: int):
                return posts.CreatePost(pb.CreatePostRequest(parent=blogs[w], post=pb.Post(title=f"Bench post {n}", body="A paragraph about kafka and search. " * 8,
                                                                                         tags=["bench"], visibility=pb.Audience.INTERNAL), request_id=f"bench-{run}-post-{w}-{n}"), metadata=as_author[w], timeout=60)

            def create_comment(w: int, n: int):
                return posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=target.name, body=f"Comment {n} from worker {w}."), request_id=f"bench-{run}-comment-{w}-{n}"),
                                           metadata=as_author[w], timeout=60)

            def rate_post(w: int, n: int):
                return posts.RatePost(pb.RatePostRequest(post=target.name, value=1 + n % 5, request_id=f"bench-{run}-rate-{w}-{n}"), metadata=as_author[w], timeout=60)

            def follow(w: int, n: int):
                return graph.Follow(gp.FollowRequest(parent=f"profiles/{authors[w]}", target=f"profiles/{followed[n % len(followed)]}", request_id=f"bench-{run}-follow-{w}-{n}"),
                                    metadata=as_author[w], timeout=60)

            def create_status_update(w: int, n: int):
                return graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{authors[w]}", status_update=gp.StatusUpdate(text=f"Update {n} #bench", visibility=gp.StatusUpdate.INTERNAL),
                                                                            request_id=f"bench-{run}-status-{w}-{n}"), metadata=as_author[w], timeout=60)

            for name, call in (("CreatePost", create_post), ("CreateComment", create_comment), ("RatePost", rate_post), ("Follow", follow), ("CreateStatusUpdate", create_status_update)):
                if name != "Follow" or followed:
                    out[name] = await self._closed_loop_calls(call, workers)
        return out

    async def _closed_loop_calls(self, call, workers: int) -> dict[str, Any]:
        """`command_calls` calls of call(w, n) over `workers` workers (worker w's n-th call)."""
        total = self.cfg.command_calls
        cpu_before = self.cpu_by_process()
        _, h, elapsed = await _closed_loop(lambda pending: pending, call, float("inf"), workers, total=total)
        cpu = per_item_ms(cpu_before, self.cpu_by_process(), total)
        return {"calls": total, "rpc_per_s": round(total / elapsed, 1), "latency": summary(h),
                "cpu_ms_per_call": {name: v for name, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.01}}

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of every platform process, Kafka, Elasticsearch and this load
        generator (the two cores they share: where a write's time goes)."""
        pids = {name: proc.pid for name, proc in self.procs.items()}
        pids.update({"kafka": listening_pid(self.settings.kafka_port), "elasticsearch": listening_pid(self.settings.es_port), "load generator": os.getpid()})
        return cpu_of(pids)

    def jit_by_process(self) -> dict[str, float]:
        """CPU seconds so far of Kafka's and Elasticsearch's JIT compiler threads."""
        pids = {"kafka": listening_pid(self.settings.kafka_port), "elasticsearch": listening_pid(self.settings.es_port)}
        used = {name: jit_cpu_seconds(pid) for name, pid in pids.items() if pid}
        return {name: v for name, v in used.items() if v is not None}

    async def _burst(self, create, queue: list, seconds: float = float("inf")) -> tuple[int, HdrHistogram, float]:
        """CreateProfile for the people popped from `queue` (last first), `concurrency` in flight,
        until it is empty or `seconds` have passed."""
        h = hist()
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while queue and time.perf_counter() < deadline:
                person = queue.pop()
                began = time.perf_counter()
                await create(self.request(person))
                record(h, time.perf_counter() - began)
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.cfg.concurrency)))
        return done, h, time.perf_counter() - began

    async def _warm_up(self, create, window_seconds: float = 10.0) -> dict[str, Any]:
        """CreateProfile closed loop, in windows, until Kafka's and Elasticsearch's CPU per write has
        settled (see until_settled). Why: `make bench` starts both JVMs fresh, and until their JITs
        have compiled the write path (produce, transactions, fetch, indexing) each write costs them
        more. Measured on two cores over seven bursts of 3,000 writes from a fresh broker: Kafka
        0.84, 0.54 ... 0.41 ms a write, its compiler threads 0.39 ms of it in the first burst and
        still 0.2 ms after 12,000 writes; Elasticsearch 0.83 ms falling to 0.42-0.68. A long-running
        cluster is warm: measured cold, the platform's figure was the JIT's."""
        queue = list(reversed(self.take(self.cfg.write_warmup_profiles)))
        jvms = ("kafka", "elasticsearch")

        async def window(seconds_left: float) -> dict[str, Any] | None:
            if not queue:
                return None
            cpu0, jit0 = self.cpu_by_process(), self.jit_by_process()
            done, _, elapsed = await self._burst(create, queue, min(window_seconds, seconds_left))
            cpu1, jit1 = self.cpu_by_process(), self.jit_by_process()
            per, jit = per_item_ms(cpu0, cpu1, done), per_item_ms(jit0, jit1, done)
            return {"seconds": round(elapsed, 1), "writes": done, "rpc_per_s": round(done / elapsed, 1),
                    "jvm_cpu_ms_per_write": round(sum(per.get(name, 0.0) for name in jvms), 3) if done else None,
                    "cpu_ms_per_write": {name: per[name] for name in jvms if name in per}, "jit_cpu_ms_per_write": jit,
                    "all_cpu_ms_per_write": round(sum(per.values()), 3)}

        result = await until_settled(window, lambda w: w["jvm_cpu_ms_per_write"], self.cfg.write_warmup_min_seconds, self.cfg.write_warmup_seconds)
        result["writes"] = sum(w["writes"] for w in result["windows"])
        return result

    async def _count_range(self, es, first: str, last: str) -> int:
        response = await es.count(index=self.alias, query={"range": {"employee_id": {"gte": first, "lte": last}}})
        return response["count"]

    async def _wait_indexed(self, es, people, began: float, timeout: float = 600) -> float | None:
        if not people:
            return None
        while time.perf_counter() - began < timeout:
            if await self._count_range(es, people[0].employee_id, people[-1].employee_id) >= len(people):
                return time.perf_counter() - began
            await asyncio.sleep(0.1)
        return None

    async def _rate_run(self, es, create, rate: float) -> dict[str, Any]:
        people = self.take(int(rate * self.cfg.rate_seconds))
        acked: dict[str, float] = {}
        fresh = hist()
        seen_at: dict[str, float] = {}
        stop = asyncio.Event()

        def on_ack(k: int, result, at: float) -> None:
            acked[people[k].employee_id] = at

        async def poll() -> None:
            # Ask the alias (what SearchPeople reads) for acknowledged, not yet seen ids.
            while True:
                pending = [e for e in acked if e not in seen_at]
                for start in range(0, len(pending), 2000):
                    chunk = pending[start:start + 2000]
                    response = await es.search(index=self.alias, query={"terms": {"employee_id": chunk}}, size=len(chunk), _source=["employee_id"])
                    now = time.monotonic()
                    for hit in response["hits"]["hits"]:
                        eid = hit["_source"]["employee_id"]
                        if eid not in seen_at and eid in acked:
                            seen_at[eid] = now
                            record(fresh, now - acked[eid])
                if stop.is_set() and (len(seen_at) >= len(acked) or time.monotonic() > stop_deadline):
                    return
                await asyncio.sleep(0.05)

        stop_deadline = float("inf")
        poller = asyncio.create_task(poll())
        profiler = None
        if rate == max(self.cfg.rates) and self.cfg.profile_seconds > 0:
            profiler = start_profilers(self.procs, ("profiles", "relay-profiles", "projections"), self.cfg.profile_seconds)
        began = time.monotonic()
        result = await _open_loop(create, lambda k: self.request(people[k]), rate, self.cfg.rate_seconds, on_ack)
        stop_deadline = time.monotonic() + 60
        stop.set()
        await poller
        if acked and seen_at:
            result["indexed_events_per_s"] = round(len(seen_at) / (max(seen_at.values()) - began), 1)
        result["freshness"] = {**summary(fresh), "not_seen": len(acked) - len(seen_at)}
        if profiler:
            result["profiles_of_processes"] = finish_profilers(profiler)
        return result

    def prefill(self) -> dict[str, Any]:
        """ProfileCreated events produced straight to the profiles topic (as the relay would), to
        give the index its size; the live processor catches up on them."""
        from kafka import KafkaProducer

        from watercooler.projection import es_client

        people = self.take(self.cfg.people_events)
        if not people:
            return {"events": 0}
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
        began = time.perf_counter()
        for person in people:
            envelope = profile_envelope(person)
            from services.profiles.domainmodel import profile_id

            producer.send(self.settings.topic("profiles"), key=str(profile_id(person.employee_id)).encode(), value=envelope)
        producer.flush()
        produced = time.perf_counter() - began
        producer.close()

        async def wait() -> float | None:
            es = es_client(self.settings)
            try:
                return await self._wait_indexed(es, people, began, timeout=1800)
            finally:
                await es.close()

        indexed = asyncio.run(wait())
        return {"events": len(people), "produced_in_s": round(produced, 2), "all_indexed_after_s": indexed and round(indexed, 2),
                "processor_events_per_s": indexed and round(len(people) / indexed, 1)}

    def rebuild(self) -> dict[str, Any]:
        from services.search.readmodels.projections.people import PeopleProjection
        from watercooler.projection import es_client

        async def run() -> dict[str, Any]:
            es = es_client(self.settings)
            try:
                began = time.perf_counter()
                result = await PeopleProjection(self.settings).rebuild(es)
                elapsed = time.perf_counter() - began
                docs = (await es.count(index=self.alias))["count"]
            finally:
                await es.close()
            return {"events_replayed": result["events_replayed"], "seconds": round(elapsed, 2), "events_per_s": round(result["events_replayed"] / elapsed, 1), "documents": docs}

        return asyncio.run(run())

    def search(self) -> dict[str, Any]:
        import grpc

        from watercooler.search.v1 import search_pb2 as sp
        from watercooler.search.v1 import search_pb2_grpc

        callers = self.callers()
        sample = self.people[:: max(1, len(self.people) // 500)]

        async def run() -> dict[str, Any]:
            from watercooler.projection import es_client

            es = es_client(self.settings)
            docs = (await es.count(index=self.alias))["count"]
            await es.close()
            out: dict[str, Any] = {"documents": docs}
            async with grpc.aio.insecure_channel(self.settings.grpc_address("search")) as ch:
                stub = search_pb2_grpc.SearchServiceStub(ch)
                spread = itertools.count()
                search = lambda req: stub.SearchPeople(req, metadata=callers[next(spread) % len(callers)], timeout=30)  # noqa: E731
                listing = lambda req: stub.ListPeople(req, metadata=callers[next(spread) % len(callers)], timeout=30)  # noqa: E731

                def search_request(k: int):
                    person = sample[k % len(sample)]
                    name = person.display_name.split()[-1] if " " in person.display_name else person.display_name
                    return sp.SearchPeopleRequest(query=name, department=person.department if k % 2 else "", page_size=20)

                def list_request(k: int):
                    person = sample[k % len(sample)]
                    return sp.ListPeopleRequest(department=person.department, country=person.country if k % 2 else "", page_size=20)

                await search(search_request(0))
                out["warm_up"] = await self._warm_up_directory(search, search_request, listing, list_request)
                out["search_people"] = await _open_loop(search, search_request, self.cfg.search_rate, self.cfg.search_seconds)
                out["list_people"] = await _open_loop(listing, list_request, self.cfg.search_rate, self.cfg.search_seconds)
            out["callers"] = len(callers)
            return out

        return asyncio.run(run())

    async def _warm_up_directory(self, search, search_request, listing, list_request, window_seconds: float = 10.0) -> dict[str, Any]:
        """SearchPeople and ListPeople in turn, four in flight, in windows until Elasticsearch's CPU
        per request has settled (until_settled). Why: these query shapes first run in this step
        and a fresh JVM interprets them until its JIT has compiled them, as for Search (its
        warm-up: search_latency.warm_up); without this, SearchPeople's p99 was that of a cold JVM."""
        turn = itertools.count()

        def request(_worker: int, _n: int):
            k = next(turn)
            return (search, search_request(k)) if k % 2 else (listing, list_request(k))

        async def call(pair) -> Any:
            return await pair[0](pair[1])

        async def window(seconds_left: float) -> dict[str, Any]:
            es0 = self.cpu_by_process().get("elasticsearch")
            done, _, elapsed = await _closed_loop(call, request, min(window_seconds, seconds_left), 4)
            es1 = self.cpu_by_process().get("elasticsearch")
            per = round(1000 * (es1 - es0) / done, 2) if done and es0 is not None and es1 is not None else None
            return {"requests": done, "seconds": round(elapsed, 1), "elasticsearch_cpu_ms_per_request": per}

        result = await until_settled(window, lambda w: w["elasticsearch_cpu_ms_per_request"], self.cfg.people_warmup_min_seconds, self.cfg.people_warmup_seconds)
        result["requests"] = sum(w["requests"] for w in result["windows"])
        return result

    def callers(self) -> list:
        """Bearer metadata of several distinct employees (people this run created): a real search
        load comes from many people; one principal would meet the per-principal rate limit (off in
        `make bench`, generous in the test platform) and any per-caller cache."""
        from benchmarks.search_latency import callers_for

        return callers_for(self.settings, [p.employee_id for p in self.people[: max(1, self.cfg.search_callers)]])

    def content_search(self, docs: int | None = None, rpcs: tuple[str, ...] = ("Search", "SearchFacets", "Suggest")) -> dict[str, Any]:
        """Search (without and with facets) and Suggest at a constant rate over `docs` (default
        `search_docs`) content documents bulk-loaded into the platform's own projection indices
        (this run's namespace), deleted afterwards."""
        from benchmarks import search_latency

        profiler = None
        if self.cfg.profile_seconds > 0:
            seconds = min(self.cfg.profile_seconds, self.cfg.search_seconds)
            profiler = (lambda: start_profilers(self.procs, ("search",), seconds), finish_profilers)
        # Where the two cores go during each run: the search service, Elasticsearch, and the
        # rest of the machine (the load generator in this process, the idle platform, others).
        pids = {"search": self.procs["search"].pid if "search" in self.procs else None, "elasticsearch": listening_pid(self.settings.es_port), "load generator": os.getpid()}

        def cpu() -> dict[str, float]:
            out = cpu_of(pids)
            # Elasticsearch's own account: garbage collection (seconds, inside its CPU) and how
            # many shard-level query phases ran (a count, not seconds: see run_step).
            try:
                with urllib.request.urlopen(f"{self.settings.es_url}/_nodes/_local/stats/jvm,indices?filter_path=nodes.*.jvm.gc,nodes.*.indices.search.query_total", timeout=10) as r:
                    node = next(iter(json.load(r)["nodes"].values()))
                out["elasticsearch gc"] = sum(c["collection_time_in_millis"] for c in node["jvm"]["gc"]["collectors"].values()) / 1000
                out["elasticsearch shard queries (count)"] = node["indices"]["search"]["query_total"]
            except (OSError, ValueError, KeyError, StopIteration):
                pass
            return out

        def hot_threads() -> str:
            try:
                with urllib.request.urlopen(f"{self.settings.es_url}/_nodes/_local/hot_threads?threads=4&interval=1s", timeout=30) as r:
                    return r.read().decode()
            except OSError as exc:
                return f"hot threads unavailable: {exc!r}"

        return asyncio.run(search_latency.run_step(self.settings, docs or self.cfg.search_docs, self.cfg.search_rate, self.cfg.search_seconds, self.callers(),
                                                   seed=self.cfg.seed, profiler=profiler, cpu=cpu, hot_threads=hot_threads,
                                                   warmup_seconds=self.cfg.search_warmup_seconds, rpcs=rpcs,
                                                   subjects=[p.employee_id for p in self.people[: max(1, self.cfg.search_callers)]]))


def idle_memory(settings, procs: dict[str, subprocess.Popen], settle: float = 5.0) -> dict[str, Any]:
    from tools import infra

    time.sleep(settle)
    rows: dict[str, int] = {}
    for name, proc in procs.items():
        if proc.poll() is None:
            total = sum(filter(None, (rss_bytes(p) for p in [proc.pid, *children(proc.pid)])))
            rows[name] = total
    servers = {s.name: s.pid for s in infra.status(settings) if s.pid} if settings.infra_mode == "local" else {}
    for name, port in (("kafka", settings.kafka_port), ("elasticsearch", settings.es_port)):
        pid = servers.get(name) or listening_pid(port)
        if pid:
            rows[name] = sum(filter(None, (rss_bytes(p) for p in [pid, *children(pid)])))
    return {"rss_bytes": rows, "total_gib": round(sum(rows.values()) / GIB, 3), "python_gib": round(sum(v for k, v in rows.items() if k not in ("kafka", "elasticsearch")) / GIB, 3)}


# --- where the time goes: py-spy -----------------------------------------------------------------------
def start_profilers(procs: dict[str, subprocess.Popen], names: tuple[str, ...], seconds: float) -> list[tuple[str, subprocess.Popen, Path]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return []
    running = []
    for name in names:
        proc = procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        out = Path(tempfile.mkstemp(prefix=f"wc-pyspy-{name}-", suffix=".txt")[1])
        running.append((name, subprocess.Popen([spy, "record", "--format", "raw", "--nonblocking", "-r", "50", "-d", str(int(seconds)), "-p", str(proc.pid), "-o", str(out)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    return running


def finish_profilers(running) -> dict[str, Any]:
    result = {}
    for name, spy, out in running:
        try:
            spy.wait(120)
        except subprocess.TimeoutExpired:
            spy.kill()
        result[name] = summarise_collapsed(out.read_text() if out.exists() else "")
        out.unlink(missing_ok=True)
    return result


def summarise_collapsed(text: str, top: int = 12) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \(.*?/(site-packages|libs|services)/", r" (\1/", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return {"samples": 0}
    share = lambda c: [(f, round(n / total, 3)) for f, n in c.most_common(top)]  # noqa: E731
    interesting = collections.Counter({f: n for f, n in inclusive.items() if any(k in f for k in ("services/", "libs/", "eventsourcing", "grpc", "sqlite", "elasticsearch", "aiokafka", "kafka/", "faust", "protobuf", "json"))})
    return {"samples": total, "self": share(own), "inclusive": share(interesting)}


def jam_tally(cfg: BenchConfig) -> dict[str, Any]:
    """The jam tally (benchmarks/jams_votes.py): participants x votes-each VoteCast envelopes, as
    the relay publishes them, decoded and tallied by the code the results and the leaderboard use;
    events/s and the memory the tally holds (and this process's resident memory after)."""
    from benchmarks import jams_votes

    result = jams_votes.bench_replay_memory(cfg.jam_participants, cfg.jam_votes_each)
    result["participants_offered"], result["votes_each"] = cfg.jam_participants, cfg.jam_votes_each
    result["process_rss_mb"] = round(jams_votes.rss_mb(), 1)
    return result


# --- orchestration ----------------------------------------------------------------------------------
def run(cfg: BenchConfig, settings, procs: dict[str, subprocess.Popen], log=print) -> dict[str, Any]:
    from tools.synthetic import Company

    company = Company(employees=cfg.employees, seed=cfg.seed)
    settings = measured_settings(settings)
    report: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}, "machine": machine(settings)}
    timings: dict[str, float] = {}

    def step(name: str, fn):
        log(f"[bench] {name} …")
        began = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - began, 1)
        log(f"[bench] {name}: {json.dumps(value, default=str)[:600]}")
        return value

    sample = next(iter(company.people(limit=1)))
    envelope_size = len(profile_envelope(sample))
    bench = PlatformBench(settings, cfg, company, procs)
    raw = report["raw"] = {}
    raw["es_bulk"] = step("raw: Elasticsearch _bulk", lambda: raw_es_bulk(settings, cfg, company))
    raw["kafka_producer"] = step("raw: Kafka ProducerPerformance", lambda: raw_kafka(settings, cfg, envelope_size))
    request_size = len(bench.request(sample).SerializeToString())
    raw["grpc_echo"] = step("raw: gRPC echo", lambda: raw_grpc_echo(cfg, request_size))
    plat = report["platform"] = {}
    plat["idle_memory"] = step("platform: idle memory", lambda: idle_memory(settings, procs, cfg.idle_settle_seconds))
    plat["writes"] = step("platform: CreateProfile", lambda: asyncio.run(bench.writes()))
    plat["commands"] = step("platform: other write commands", lambda: asyncio.run(bench.commands()))
    plat["catch_up"] = step("platform: processor catch-up", bench.prefill)
    plat["rebuild"] = step("platform: rebuild", bench.rebuild)
    plat["search"] = step("platform: search", bench.search)
    plat["content_search"] = step("platform: Search and Suggest", bench.content_search)
    if cfg.search_docs_large:
        plat["content_search_large"] = step("platform: Search and Suggest, larger corpus", lambda: bench.content_search(cfg.search_docs_large, rpcs=("Search", "Suggest")))
    plat["jam_tally"] = step("platform: jam tally", lambda: jam_tally(cfg))
    if cfg.relevance:
        from benchmarks import relevance

        # The judged set through the write APIs and Search, in a window of its own (after the
        # synthetic content documents are deleted): nDCG@10 and recall@10.
        report["relevance"] = step("relevance: judged set", lambda: relevance.run(settings, log=log))
    from benchmarks import partitions

    report["partitions"] = step("partitions", lambda: partitions.run(settings, cfg.partition_events, cfg.partition_workers, company))
    report["machine"]["loadavg_end"] = loadavg()
    report["timings_s"] = timings
    report["comparison"] = compare(report)
    return report


def compare(report: dict[str, Any]) -> list[dict[str, Any]]:
    raw, plat = report["raw"], report["platform"]
    bulk = raw["es_bulk"]["docs_per_s"]
    echo = raw["grpc_echo"]["closed_loop_rpc_per_s"]
    writes = plat["writes"]
    sustained = [r for r in writes["rates"] if r["sustained"]]
    best_rate = max(sustained, key=lambda r: r["achieved_per_s"]) if sustained else max(writes["rates"], key=lambda r: r["achieved_per_s"])
    at_top = max(writes["rates"], key=lambda r: r["offered_per_s"])
    rows = [
        {"figure": "write RPCs/s (CreateProfile, closed loop)", "platform": writes["burst"]["rpc_per_s"], "raw": echo, "raw_name": "gRPC echo rpc/s", "target_ratio": TARGETS["write_rpc_vs_grpc_echo"]},
        *({"figure": f"write RPCs/s ({name}, closed loop)", "platform": plat["commands"][name]["rpc_per_s"], "raw": echo, "raw_name": "gRPC echo rpc/s", "target_ratio": TARGETS["write_rpc_vs_grpc_echo"]}
          for name in COMMANDS if name in plat.get("commands", {})),
        {"figure": "end-to-end indexing events/s (burst: ack→indexed)", "platform": writes["burst"]["e2e_events_per_s"], "raw": bulk, "raw_name": "ES _bulk docs/s", "target_ratio": TARGETS["e2e_indexing_vs_es_bulk"]},
        {"figure": f"end-to-end indexing events/s (BatchCreateProfiles of {writes['batched'].get('batch_size', 0)}: send→indexed)", "platform": writes["batched"].get("e2e_events_per_s"), "raw": bulk, "raw_name": "ES _bulk docs/s", "target_ratio": TARGETS["e2e_indexing_vs_es_bulk"]},
        {"figure": f"end-to-end indexing events/s at {best_rate['offered_per_s']:.0f}/s offered", "platform": best_rate.get("indexed_events_per_s"), "raw": bulk, "raw_name": "ES _bulk docs/s", "target_ratio": TARGETS["e2e_indexing_vs_es_bulk"]},
        {"figure": "processor catch-up events/s (Kafka→ES)", "platform": plat["catch_up"].get("processor_events_per_s"), "raw": bulk, "raw_name": "ES _bulk docs/s", "target_ratio": TARGETS["e2e_indexing_vs_es_bulk"]},
        {"figure": "projection rebuild events/s", "platform": plat["rebuild"]["events_per_s"], "raw": bulk, "raw_name": "ES _bulk docs/s", "target_ratio": TARGETS["rebuild_vs_es_bulk"]},
        {"figure": f"jam tally events/s ({plat['jam_tally']['events']:,} vote events replayed, in memory)", "platform": plat["jam_tally"]["events_per_second"], "raw": None, "raw_name": "", "target_ratio": None},
        {"figure": "events into Kafka/s (writes at best sustained rate)", "platform": best_rate["achieved_per_s"], "raw": raw["kafka_producer"]["records_per_s"], "raw_name": "ProducerPerformance records/s", "target_ratio": None},
    ]
    for row in rows:
        row["ratio"] = round(row["platform"] / row["raw"], 4) if row["platform"] and row["raw"] else None
        row["met"] = None if row["target_ratio"] is None or row["ratio"] is None else row["ratio"] >= row["target_ratio"]
    fresh = at_top["freshness"].get("p99_ms")
    rows.append({"figure": f"freshness p99 at {at_top['offered_per_s']:.0f}/s offered (s)", "platform": fresh and fresh / 1000, "raw": None, "raw_name": "", "target_max": TARGETS["freshness_p99_at_1000_s"],
                 "met": bool(fresh) and fresh / 1000 < TARGETS["freshness_p99_at_1000_s"] and at_top["sustained"]})
    p99 = plat["search"]["search_people"]["latency_from_scheduled"].get("p99_ms")
    rows.append({"figure": f"SearchPeople p99 at {plat['search']['search_people']['offered_per_s']:.0f}/s over {plat['search']['documents']} docs (s)", "platform": p99 and p99 / 1000, "raw": None, "raw_name": "", "target_max": TARGETS["search_p99_s"],
                 "met": bool(p99) and p99 / 1000 < TARGETS["search_p99_s"]})
    for content in filter(None, (plat.get("content_search"), plat.get("content_search_large"))):
        for rpc in ("search", "suggest"):
            p99 = content[rpc]["latency_from_scheduled"].get("p99_ms")
            target = TARGETS[f"{rpc}_p99_s"]
            rows.append({"figure": f"{rpc.title()} p99 at {content[rpc]['offered_per_s']:.0f}/s over {content['documents']:,} docs (s)", "platform": p99 and p99 / 1000, "raw": None, "raw_name": "",
                         "target_max": target, "met": bool(p99) and p99 / 1000 <= target and not content[rpc]["errors"]})
        faceted = content.get("searchfacets")
        if faceted:  # a Search asking for its facets ("*"): shown beside the target, which is the default Search's
            p99 = faceted["latency_from_scheduled"].get("p99_ms")
            rows.append({"figure": f"Search with facets (read_mask *) p99 at {faceted['offered_per_s']:.0f}/s over {content['documents']:,} docs (s)", "platform": p99 and p99 / 1000,
                         "raw": None, "raw_name": "", "target_ratio": None, "ratio": None, "met": None})
            es_ms = (faceted.get("cpu_ms_per_request") or {}).get("elasticsearch")
            if es_ms is not None:
                rows.append({"figure": f"elasticsearch CPU per Search with facets over {content['documents']:,} docs (ms)", "platform": es_ms, "raw": None, "raw_name": "",
                             "target_ratio": None, "ratio": None, "met": None})
        cpu = content["search"].get("cpu_ms_per_request") or {}
        for process, key in (("elasticsearch", "search_es_cpu_ms"), ("search", "search_service_cpu_ms")):
            if process in cpu:
                rows.append({"figure": f"{process} CPU per Search over {content['documents']:,} docs (ms)", "platform": cpu[process], "raw": None, "raw_name": "",
                             "target_max": TARGETS[key], "met": cpu[process] <= TARGETS[key]})
    rel = report.get("relevance")
    for metric, label in (("ndcg_at_10", "nDCG@10"), ("recall_at_10", "recall@10")) if rel else ():
        rows.append({"figure": f"relevance {label} ({rel['overall']['queries']} judged queries, tests/relevance)", "platform": rel["overall"][metric], "raw": None, "raw_name": "",
                     "target_ratio": None, "ratio": None, "met": None})
    from benchmarks.write_path import TARGET_BATCHED_EVENT_MS, TARGET_SINGLE_WRITE_MS, pipeline_ms

    # What a write costs in CPU, every process of the pipeline (service, relay, processors, Kafka,
    # Elasticsearch) from the first send until searchable; the load generator is not counted.
    rows.append({"figure": "CPU per single write, whole pipeline (ms, CreateProfile burst)", "platform": pipeline_ms(writes["burst"]["cpu_ms_per_indexed_write"]),
                 "raw": None, "raw_name": "", "target_max": TARGET_SINGLE_WRITE_MS,
                 "met": pipeline_ms(writes["burst"]["cpu_ms_per_indexed_write"]) <= TARGET_SINGLE_WRITE_MS})
    if writes["batched"].get("cpu_ms_per_indexed_write"):
        per_event = pipeline_ms(writes["batched"]["cpu_ms_per_indexed_write"])
        rows.append({"figure": f"CPU per batched event, whole pipeline (ms, BatchCreateProfiles of {writes['batched']['batch_size']})", "platform": per_event,
                     "raw": None, "raw_name": "", "target_max": TARGET_BATCHED_EVENT_MS, "met": per_event <= TARGET_BATCHED_EVENT_MS})
    rows.append({"figure": "idle resident memory, whole platform (GiB)", "platform": plat["idle_memory"]["total_gib"], "raw": None, "raw_name": "", "target_max": TARGETS["idle_rss_gib"],
                 "met": plat["idle_memory"]["total_gib"] < TARGETS["idle_rss_gib"]})
    return rows

"""Where freshness goes: each stage from an acknowledged CreateProfile to its first search hit.

    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 \\
        .venv/bin/python -m benchmarks.freshness --rates 200,1000 --seconds 10 --variants 'before;after'

For every profile written at a constant offered rate (latency from the scheduled send, no
coordinated omission) it records, all on this machine's wall clock:

- ``occurred``: the event's ``occurred_at`` (taken in the service before the store commit);
- ``ack``: the client has the CreateProfile response (the event is in the store);
- ``sent``: the Kafka record timestamp (CreateTime: the relay's producer ``send()``);
- ``on_kafka``: a read_uncommitted consumer of our own has the record (what the faust
  processor reads: it consumes read_uncommitted, see faust's aiokafka driver);
- ``committed``: a read_committed consumer has it (the relay's transaction is committed);
- ``indexed``: a realtime ``mget`` on the alias finds the document (the processor's ``_bulk``
  is done; realtime GETs do not wait for a refresh);
- ``searchable``: a search on the alias finds it (after the index refresh).

The two Kafka observers run in processes of their own (so the load generator's event loop
does not delay them); Elasticsearch is polled every ``--poll`` seconds, which adds up to
that much to ``indexed`` and ``searchable``.  Each variant is a set of ``WC_*`` variables
for a fresh platform in a namespace of its own, run one after the other in one invocation,
so "before" and "after" are measured on the same machine in the same minutes.  Results go
to test-artifacts/bench/freshness-<stamp>.json and .md.  Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "test-artifacts" / "bench"

# What the event path was configured as before the freshness work (the relay's and processor's wait times): the
# relay polled its store with a back-off growing to 250 ms, the processor waited up to
# 100 ms to fill a batch, the indices refreshed every second.
VARIANTS: dict[str, dict[str, str]] = {
    "before": {"WC_RELAY_IDLE_MAX": "0.25", "WC_PROCESSOR_BATCH_WITHIN": "0.1", "WC_ES_REFRESH": "1s"},
    "after": {},  # the defaults in the code
}

STAGES = [
    ("service: occurred → ack", "occurred", "ack"),
    ("relay pickup: ack → sent", "ack", "sent"),
    ("produce: sent → on Kafka", "sent", "on_kafka"),
    ("transaction: sent → committed", "sent", "committed"),
    ("processor: on Kafka → indexed", "on_kafka", "indexed"),
    ("refresh: indexed → searchable", "indexed", "searchable"),
    ("freshness: ack → searchable", "ack", "searchable"),
]


# --- the Kafka observers (run as subprocesses) -------------------------------------------------
def observe(bootstrap: str, topic: str, isolation: str, out: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from watercooler.events.v1.envelope_pb2 import EventEnvelope

    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False, group_id=None,
                             fetch_max_wait_ms=100, client_id=f"freshness-{isolation}")
    partitions = None
    while not partitions:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            time.sleep(0.2)
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)
    print("ready", flush=True)
    with out.open("w") as f:
        while not stop:
            batches = consumer.poll(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for r in records:
                    envelope = EventEnvelope.FromString(r.value)
                    occurred = envelope.occurred_at.ToMicroseconds() / 1e6
                    f.write(f"{envelope.aggregate_id} {r.timestamp / 1000:.6f} {occurred:.6f} {now:.6f}\n")
            f.flush()
    consumer.close()


def start_observer(settings, isolation: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.freshness", "observe", settings.kafka_bootstrap, settings.topic("profiles"), isolation, str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {isolation} observer did not start")
    return proc


def read_observed(path: Path) -> dict[str, dict[str, float]]:
    seen: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        aggregate_id, sent, occurred, arrived = line.split()
        seen.setdefault(aggregate_id, {"sent": float(sent), "occurred": float(occurred), "arrived": float(arrived)})
    return seen


# --- one measured rate ---------------------------------------------------------------------------
async def measure_rate(bench, rate: float, seconds: float, poll: float, workdir: Path) -> dict[str, Any]:
    import grpc

    from benchmarks.harness import _open_loop, hist, record, summary
    from services.profiles.domainmodel import profile_id
    from watercooler.auth import issue_token
    from watercooler.client import bearer_metadata
    from watercooler.profiles.v1 import profiles_pb2_grpc
    from watercooler.projection import es_client

    settings = bench.settings
    people = bench.take(int(rate * seconds))
    ids = [str(profile_id(p.employee_id)) for p in people]
    observers = {iso: (workdir / f"{settings.namespace}-{int(rate)}-{iso}.txt") for iso in ("read_uncommitted", "read_committed")}
    procs = {iso: start_observer(settings, iso, path) for iso, path in observers.items()}
    times: dict[str, dict[str, float]] = {}
    es = es_client(settings)
    stop = asyncio.Event()

    def on_ack(k: int, _result, _at: float) -> None:
        times[ids[k]] = {"ack": time.time()}

    async def poller() -> None:
        while True:
            pending = [i for i, t in times.items() if "indexed" not in t]
            for start in range(0, len(pending), 1000):
                chunk = pending[start:start + 1000]
                found = await es.mget(index=bench.alias, ids=chunk, realtime=True, _source=False)
                now = time.time()
                for doc in found["docs"]:
                    if doc.get("found"):
                        times[doc["_id"]]["indexed"] = now
            pending = [i for i, t in times.items() if "searchable" not in t]
            for start in range(0, len(pending), 1000):
                chunk = pending[start:start + 1000]
                found = await es.search(index=bench.alias, query={"ids": {"values": chunk}}, size=len(chunk), _source=False)
                now = time.time()
                for hit in found["hits"]["hits"]:
                    times[hit["_id"]].setdefault("indexed", now)
                    times[hit["_id"]]["searchable"] = now
            if stop.is_set() and (all("searchable" in t for t in times.values()) or time.monotonic() > deadline):
                return
            await asyncio.sleep(poll)

    metadata = bearer_metadata(issue_token(settings, "watercooler-bench", "service", ttl_seconds=3600))
    deadline = float("inf")
    task = asyncio.create_task(poller())
    try:
        async with grpc.aio.insecure_channel(settings.grpc_address("profiles")) as ch:
            stub = profiles_pb2_grpc.ProfileServiceStub(ch)
            writes = await _open_loop(lambda req: stub.CreateProfile(req, metadata=metadata, timeout=60),
                                      lambda k: bench.request(people[k]), rate, seconds, on_ack)
        deadline = time.monotonic() + 60
        stop.set()
        await task
        await asyncio.sleep(0.5)  # the observers' last poll
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        await es.close()
    uncommitted, committed = read_observed(observers["read_uncommitted"]), read_observed(observers["read_committed"])
    for aggregate_id, t in times.items():
        if aggregate_id in uncommitted:
            seen = uncommitted[aggregate_id]
            t.update(occurred=seen["occurred"], sent=seen["sent"], on_kafka=seen["arrived"])
        if aggregate_id in committed:
            t["committed"] = committed[aggregate_id]["arrived"]
    stages: dict[str, Any] = {}
    for label, a, b in STAGES:
        h, negative = hist(), 0
        for t in times.values():
            if a in t and b in t:
                delta = t[b] - t[a]
                negative += delta < 0
                record(h, max(delta, 0.0))
        stages[label] = {**summary(h), "negative": negative}
        if h.get_total_count():
            stages[label]["mean_ms"] = round(h.get_mean_value() / 1000, 3)
    for path in observers.values():
        path.unlink(missing_ok=True)
    return {"offered_per_s": rate, "seconds": seconds, "writes": {k: writes[k] for k in ("achieved_per_s", "completed", "errors", "sustained", "latency_from_scheduled", "stopped_offering_after_s")},
            "acked": len(times), "searchable": sum("searchable" in t for t in times.values()), "stages": stages}


# --- a variant: its own platform --------------------------------------------------------------------
def run_variant(name: str, variant_env: dict[str, str], rates: list[float], seconds: float, poll: float, warmup: int, company) -> dict[str, Any]:
    from benchmarks.harness import BenchConfig, PlatformBench, free_port, loadavg
    from tools.runner import Platform
    from watercooler import auth, config

    os.environ["WC_NAMESPACE"] = f"fresh{secrets.token_hex(3)}{name}"
    metrics_port = free_port()
    env = {"WC_PROJECTIONS_METRICS_PORT": str(metrics_port), "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_SEARCH_HTTP_PORT": str(free_port()), "WC_RATE_LIMIT": "0"}
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    os.environ.update(env)
    previous = {k: os.environ.get(k) for k in variant_env}
    os.environ.update(variant_env)
    settings = config.load()
    auth.ensure_dev_keys(settings)
    cfg = BenchConfig(burst_profiles=warmup, rates=tuple(rates), rate_seconds=seconds, search_docs=0, concurrency=8)
    bench = PlatformBench(settings, cfg, company, {})
    running = Platform(settings, log_dir=OUT_DIR / "logs" / settings.namespace)
    result: dict[str, Any] = {"variant": name, "env": variant_env, "namespace": settings.namespace, "loadavg_start": loadavg(), "rates": []}
    try:
        running.start()
        bench.procs = running.procs

        async def warm() -> None:
            import grpc

            from watercooler.auth import issue_token
            from watercooler.client import bearer_metadata
            from watercooler.profiles.v1 import profiles_pb2_grpc

            metadata = bearer_metadata(issue_token(settings, "watercooler-bench", "service", ttl_seconds=3600))
            async with grpc.aio.insecure_channel(settings.grpc_address("profiles")) as ch:
                stub = profiles_pb2_grpc.ProfileServiceStub(ch)
                for person in bench.take(64):  # the top of the manager tree, in order
                    await stub.CreateProfile(bench.request(person), metadata=metadata, timeout=60)
                create = lambda req: stub.CreateProfile(req, metadata=metadata, timeout=60)  # noqa: E731
                await bench._burst(create, list(reversed(bench.take(warmup))))

        asyncio.run(warm())
        time.sleep(3)  # let the warm-up drain through
        # What the shorter timers cost: CPU of the idle platform (relays polling, agents waking).
        result["idle_cpu_percent"] = idle_cpu(running.procs, 5.0)
        for rate in rates:
            before, sched, began = scrape(metrics_port), schedstat(running.procs), time.monotonic()
            result["rates"].append(asyncio.run(measure_rate(bench, rate, seconds, poll, OUT_DIR)))
            result["rates"][-1]["processor_batches"] = batch_metrics(before, scrape(metrics_port))
            result["rates"][-1]["cpu"] = cpu_shares(sched, schedstat(running.procs), time.monotonic() - began)
            print(f"[freshness] {name} @ {rate:g}/s: " + "; ".join(f"{k} p50 {v.get('p50_ms')} p99 {v.get('p99_ms')}" for k, v in result["rates"][-1]["stages"].items()), flush=True)
    finally:
        running.stop()
        clean(settings)
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result["loadavg_end"] = loadavg()
    return result


def scrape(port: int) -> dict[tuple[str, str, str], float]:
    """The processor's batch histograms from its /metrics: (metric, processor, le) -> value."""
    import re
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r'(wc_processor_batch_\w+?)(_bucket|_sum|_count)\{(.*?)\} ([0-9.e+-]+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="(.*?)"', m.group(3)))
            out[(m.group(1) + m.group(2), labels.get("processor", ""), labels.get("le", ""))] = float(m.group(4))
    return out


def batch_metrics(before: dict, after: dict) -> dict[str, Any]:
    """Per processor and histogram over one measured rate: count, mean and bucket bounds of p50/p99."""
    result: dict[str, Any] = {}
    for (metric, processor, le), value in after.items():
        if not metric.endswith("_count"):
            continue
        base = metric[: -len("_count")]
        n = value - before.get((metric, processor, le), 0.0)
        if n <= 0:
            continue
        total = after.get((base + "_sum", processor, "")) - before.get((base + "_sum", processor, ""), 0.0)
        buckets = sorted(((float(b_le), v - before.get((m, p, b_le), 0.0)) for (m, p, b_le), v in after.items() if m == base + "_bucket" and p == processor),
                         key=lambda x: x[0])
        p50, p99 = (next((b for b, c in buckets if c >= q * n), None) for q in (0.5, 0.99))
        result.setdefault(processor, {})[base.replace("wc_processor_batch_", "")] = {"count": int(n), "mean": round(total / n, 4), "p50_le": p50, "p99_le": p99}
    return result


def schedstat(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, int]]:
    """Per process (all its threads): nanoseconds on a CPU and waiting in the run queue."""
    out = {}
    for name, proc in procs.items():
        ran = waited = 0
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                fields = (task / "schedstat").read_text().split()
            except OSError:
                continue
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
        out[name] = (ran, waited)
    return out


def cpu_shares(before: dict, after: dict, seconds: float) -> dict[str, dict[str, float]]:
    """% of one core each process ran, and % of the time its threads were runnable but waiting
    for a CPU (the machine's other work): high waiting = starved of CPU, not slow code."""
    return {name: {"ran_pct": round((after[name][0] - before[name][0]) / 1e7 / seconds, 1), "runqueue_wait_pct": round((after[name][1] - before[name][1]) / 1e7 / seconds, 1)}
            for name in after if name in before}


def idle_cpu(procs: dict[str, subprocess.Popen], seconds: float) -> dict[str, float]:
    """Per process, the share of one core used over `seconds` of an idle platform."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    before = {name: cpu(proc.pid) for name, proc in procs.items()}
    time.sleep(seconds)
    return {name: round(100 * (cpu(proc.pid) - before[name]) / seconds, 1) for name, proc in procs.items()}


def clean(settings) -> None:
    from benchmarks.__main__ import _clean

    _clean(settings)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [f"# Freshness by stage ({report['started_at']})", "",
           f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB; load average {m['loadavg_start']} at start — **shared machine**: other engineers' tests "
           "ran at the same time. Variants ran one after the other in this one invocation; ES polled every "
           f"{report['poll_s'] * 1000:.0f} ms (adds up to that to `indexed` and `searchable`).", ""]
    for variant in report["variants"]:
        out += [f"## {variant['variant']} — {variant['env'] or 'the defaults in the code'}", "", f"load average {variant['loadavg_start']} → {variant['loadavg_end']}; "
                f"idle CPU (% of one core, 5 s): {variant.get('idle_cpu_percent')}", ""]
        for run in variant["rates"]:
            w = run["writes"]
            out += [f"### {run['offered_per_s']:g} writes/s offered for {run['seconds']:g} s: achieved {w['achieved_per_s']}/s ({'sustained' if w['sustained'] else 'not sustained'}), "
                    f"errors {w['errors'] or 'none'}, searchable {run['searchable']}/{run['acked']}", "",
                    "| stage | p50 ms | p90 ms | p99 ms | max ms | mean ms | n |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for label, s in run["stages"].items():
                out.append(f"| {label} | {s.get('p50_ms', '–')} | {s.get('p90_ms', '–')} | {s.get('p99_ms', '–')} | {s.get('max_ms', '–')} | {s.get('mean_ms', '–')} | {s.get('count', 0)} |")
            if run.get("cpu"):
                out += ["", "CPU during this rate (% of one core: ran / runnable but waiting for a CPU): "
                        + ", ".join(f"{k} {v['ran_pct']}/{v['runqueue_wait_pct']}" for k, v in sorted(run["cpu"].items()))]
            batches = run.get("processor_batches") or {}
            if batches:
                out += ["", "Processor batches (its /metrics, this rate only; p50/p99 as histogram bucket bounds):", "",
                        "| projection | batches | records/batch mean (p50 ≤, p99 ≤) | oldest record's age at start s mean (p50 ≤, p99 ≤) | write s mean (p50 ≤, p99 ≤) |",
                        "| --- | ---: | --- | --- | --- |"]
                for name, h in sorted(batches.items()):
                    cells = [f"{h[k]['mean']} ({h[k]['p50_le']}, {h[k]['p99_le']})" if k in h else "–" for k in ("records", "age_seconds", "write_seconds")]
                    out.append(f"| {name} | {h.get('records', {}).get('count', '–')} | {' | '.join(cells)} |")
            out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    if argv and argv[0] == "observe":
        observe(argv[1], argv[2], argv[3], Path(argv[4]))
        return 0
    from benchmarks.__main__ import _DEFAULTS

    p = argparse.ArgumentParser(prog="python -m benchmarks.freshness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="200,1000")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--poll", type=float, default=0.025, help="seconds between Elasticsearch polls")
    p.add_argument("--warmup", type=int, default=500, help="profiles written (closed loop) before measuring")
    p.add_argument("--variants", default="before;after", help=f"separated by ';': {', '.join(VARIANTS)}, or NAME=JSON of WC_* variables")
    p.add_argument("--employees", type=int, default=400_000)
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    from benchmarks.harness import machine
    from tools import infra
    from tools.synthetic import Company
    from watercooler import config

    settings = config.load()
    up = infra.ensure_up(settings, progress=lambda message: print(f"[infra] {message}"))
    company = Company(employees=args.employees, seed=42)
    variants = []
    for spec in args.variants.split(";"):
        name, _, raw = spec.partition("=")
        variants.append((name, json.loads(raw) if raw else VARIANTS[name]))
    report: dict[str, Any] = {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(settings), "poll_s": args.poll, "variants": []}
    try:
        for name, env in variants:
            report["variants"].append(run_variant(name, env, [float(r) for r in args.rates.split(",")], args.seconds, args.poll, args.warmup, company))
    finally:
        if up and settings.infra_mode == "local":
            infra.ensure_down(settings)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = OUT_DIR / f"freshness-{args.name or dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"[freshness] wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Partition scaling: the people projection processor on 1, 2, then 3 worker
processes over a 6-partition topic pre-filled with events, each added worker making the
consumer group rebalance; throughput per worker count, and proof that no event was lost
(every document present, at the version of its last event) across the rebalances.

    WC_INFRA=external WC_KAFKA_PORT=19092 WC_ES_PORT=19200 .venv/bin/python -m benchmarks.partitions --people 20000

Runs `python -m services.search.readmodels.projections` (the real processor) in a namespace of its own
(topics, index, consumer group) and deletes them at the end.  Each person has two events,
ProfileCreated (version 1) and ProfileUpdated (version 2), so a lost event shows as a
missing document or a document at version 1; redeliveries after a rebalance (at least
once) are counted from the workers' own metrics and absorbed by the version check.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _updated_envelope(person, version: int) -> bytes:
    from google.protobuf import any_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.profiles.domainmodel import profile_id
    from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
    from watercooler.profiles.v1 import events_pb2

    payload = any_pb2.Any()
    payload.Pack(events_pb2.ProfileUpdated(changed_fields=["title"], title="Partition tester"))
    stamp = Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    return EventEnvelope(event_id=str(uuid.uuid4()), event_type="watercooler.profiles.v1.ProfileUpdated", aggregate_type="Profile",
                         aggregate_id=str(profile_id(person.employee_id)), aggregate_version=version, occurred_at=stamp,
                         actor=Actor(subject="watercooler-bench", kind="service"), schema_version=1, payload=payload, source="profiles").SerializeToString()


def _scrape(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    found = {}
    for match in re.finditer(r'wc_processor_events_total\{([^}]*)\} ([\d.e+]+)', text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("processor") == "people":
            found[labels.get("outcome", "")] = float(match.group(2))
    return found


def run(settings, people_per_step: int, workers: tuple[int, ...] = (1, 2, 3), company=None, log=print) -> dict[str, Any]:
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient, KafkaProducer

    from benchmarks.harness import profile_envelope
    from services.profiles.domainmodel import profile_id
    from tools.synthetic import Company
    from watercooler.kafka import ensure_topics

    namespace = f"{settings.namespace or 'bench'}-parts{secrets.token_hex(2)}"
    mine = dataclasses.replace(settings, namespace=namespace, topic_partitions=6)
    company = company or Company(employees=max(people_per_step * max(workers), 1000))
    total_people = people_per_step * max(workers)
    people = list(company.people(limit=total_people))
    ensure_topics(mine, ("profiles",))
    topic = mine.topic("profiles")
    producer = KafkaProducer(bootstrap_servers=mine.kafka_bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
    for person in people:
        key = str(profile_id(person.employee_id)).encode()
        producer.send(topic, key=key, value=profile_envelope(person))
        producer.send(topic, key=key, value=_updated_envelope(person, 2))
    producer.flush()
    producer.close()
    events = 2 * len(people)
    partitions = len(KafkaAdminClient(bootstrap_servers=mine.kafka_bootstrap).describe_topics([topic])[0]["partitions"])

    es = Elasticsearch(mine.es_url, request_timeout=60)
    alias = mine.index_alias("people")
    env = {**os.environ, "WC_NAMESPACE": namespace, "WC_TOPIC_PARTITIONS": "6", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT)])}
    procs: list[tuple[subprocess.Popen, int]] = []
    samples: list[tuple[float, int]] = []
    phases: list[dict[str, Any]] = []
    log_dir = Path(os.environ.get("WC_BENCH_LOG_DIR", "/tmp")) / f"wc-{namespace}"
    log_dir.mkdir(parents=True, exist_ok=True)

    def count() -> int:
        try:
            es.indices.refresh(index=alias)
            return es.count(index=alias)["count"]
        except Exception:  # the index does not exist until the first worker made it
            return 0

    def start_worker() -> None:
        port = _free_port()
        out = open(log_dir / f"worker-{len(procs) + 1}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "services.search.readmodels.projections"], cwd=ROOT, env={**env, "WC_PROJECTIONS_METRICS_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, port))

    began = time.monotonic()
    deadline = began + max(300.0, events / 50)
    try:
        for step, n_workers in enumerate(workers):
            while len(procs) < n_workers:
                start_worker()
            started = time.monotonic()
            start_count = count()
            goal = people_per_step * (step + 1) if step < len(workers) - 1 else len(people)
            last_idle = started  # the last sample before this step's first new document
            while time.monotonic() < deadline:
                now_count = count()
                now = time.monotonic()
                samples.append((round(now - began, 2), now_count))
                if now_count <= start_count:
                    last_idle = now
                if now_count >= goal:
                    break
                time.sleep(0.25)
            ended = time.monotonic()
            end_count = count()
            # From the first document this step wrote: excludes a worker's boot (and, for
            # later steps, includes the rebalance pause, reported apart).
            active_from = last_idle
            docs = end_count - start_count
            phases.append({"workers": n_workers, "documents": docs, "seconds": round(ended - started, 2),
                           "pause_before_progress_s": round(active_from - started, 2),
                           "docs_per_s": round(docs / max(0.001, ended - active_from), 1),
                           "events_per_s": round(2 * docs / max(0.001, ended - active_from), 1)})
            log(f"[partitions] {phases[-1]}")
        # Let the last events (updates) land, then check every document.
        settle = time.monotonic() + 60
        while time.monotonic() < settle:
            es.indices.refresh(index=alias)
            at_v2 = es.count(index=alias, query={"match_phrase": {"title": "Partition tester"}})["count"] if count() else 0
            if at_v2 >= len(people):
                break
            time.sleep(0.5)
        metrics = [_scrape(port) for _, port in procs]
        versions: dict[int, int] = {}
        missing = len(people) - count()
        # Versions: scan every document's _version (cheap at these sizes).
        from elasticsearch.helpers import scan

        for hit in scan(es, index=alias, query={"query": {"match_all": {}}, "version": True, "_source": ["employee_id"]}, size=2000):
            versions[hit["_version"]] = versions.get(hit["_version"], 0) + 1
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            for index in es.indices.get(index=f"{namespace}-*", allow_no_indices=True):
                es.indices.delete(index=index, ignore_unavailable=True)
            admin = KafkaAdminClient(bootstrap_servers=mine.kafka_bootstrap)
            admin.delete_topics([t for t in admin.list_topics() if t.startswith(f"{namespace}.")])
            admin.close()
        except Exception as exc:  # cleanup must not hide the result
            log(f"[partitions] cleanup failed: {exc}")
        es.close()
    written = sum(m.get("written", 0) for m in metrics)
    duplicates = sum(m.get("duplicate", 0) for m in metrics)
    return {
        "topic_partitions": partitions, "people": len(people), "events": events, "phases": phases,
        "documents_by_version": {str(k): v for k, v in sorted(versions.items())},
        "missing_documents": missing,
        "lost_events": missing * 2 + versions.get(1, 0),
        "documents_written_by_workers": written, "redelivered_skipped_by_version": duplicates,
        "no_loss": missing == 0 and set(versions) == {2},
        "samples": samples[:: max(1, len(samples) // 200)],
        "logs": str(log_dir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000, help="people per worker step (2 events each)")
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    import json

    from watercooler import config

    result = run(config.load(), args.people, tuple(int(w) for w in args.workers.split(",")))
    print(json.dumps(result, indent=2))
    return 0 if result["no_loss"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Jam voting at scale: votes accepted per second through gRPC, and the time and memory
to tally vote events exactly by replay.

    WC_INFRA=external WC_KAFKA_PORT=19092 .venv/bin/python -m benchmarks.jams_votes \\
        --grpc-votes 5000 --concurrency 32 --participants 500000 --votes-each 10 --kafka-events 500000

1. gRPC: starts the jams service alone (its own SQLite store in a temporary data dir; the
   relay is not needed to accept a vote), creates a jam with 50 ideas in VOTING, then
   `--concurrency` asyncio callers cast `--grpc-votes` votes, each participant 10 of them,
   request ids on.  votes/s = accepted votes / wall time from the first call to the last answer.
2. Replay, in memory: `--participants` x `--votes-each` VoteCast envelopes (plus one
   withdrawal and re-cast per 100 participants and 5 merges) are built as the relay would
   (EventEnvelope bytes), then decoded and tallied with `services.jams.domainmodel.Tally`,
   the code the results and the leaderboard use.  Reports events/s and the resident memory
   the tally holds (RSS after minus before, the envelopes being generated on the fly).
3. Replay through Kafka: `--kafka-events` of those envelopes are produced to a topic of
   their own, then read back from the beginning (read_committed, every partition) and
   tallied; reports events/s end to end.  The topic is deleted at the end.

Never part of `make test`: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 1. gRPC ----------------------------------------------------------------------------------
def bench_grpc(total: int, concurrency: int) -> dict[str, float]:
    from google.protobuf.timestamp_pb2 import Timestamp

    data_dir = tempfile.mkdtemp(prefix="wc-bench-jams-")
    port = free_port()
    env = {**os.environ, "WC_DATA_DIR": data_dir, "WC_JAMS_PORT": str(port), "WC_JAMS_METRICS_PORT": "0", "WC_LOG_LEVEL": "WARNING",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT)])}
    os.environ.update({"WC_DATA_DIR": data_dir, "WC_JAMS_PORT": str(port)})
    from watercooler import auth, config
    from watercooler.client import wait_serving

    settings = config.load()
    auth.ensure_dev_keys(settings)
    proc = subprocess.Popen([sys.executable, "-m", "services.jams"], cwd=ROOT, env=env)
    try:
        wait_serving(f"127.0.0.1:{port}", 60)
        return asyncio.run(_grpc_votes(settings, port, total, concurrency, Timestamp))
    finally:
        proc.terminate()
        proc.wait(20)


async def _grpc_votes(settings, port: int, total: int, concurrency: int, Timestamp) -> dict[str, float]:
    import grpc

    from watercooler import auth
    from watercooler.client import bearer_metadata
    from watercooler.jams.v1 import jams_pb2 as jp
    from watercooler.jams.v1 import jams_pb2_grpc as jg

    def at(seconds: int) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).replace(tzinfo=None))
        return stamp

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = jg.JamServiceStub(channel)
        # A service hosts: it seeds ideas without a profile service (not run here) to ask
        # whether an employee host accepted the participation guidelines.
        host = bearer_metadata(auth.issue_token(settings, "bench-host", "service"))
        jam = await stub.CreateJam(jp.CreateJamRequest(jam_id="bench-jam", jam=jp.Jam(title="Bench", open_time=at(3600), voting_time=at(7200), close_time=at(9000))), metadata=host)
        ideas = [(await stub.CreateIdea(jp.CreateIdeaRequest(parent=jam.name, idea=jp.Idea(title=f"idea {i}")), metadata=host)).name for i in range(50)]
        for phase in (jp.SCHEDULED, jp.OPEN):
            await stub.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=jam.name, phase=phase), metadata=host)
        participants = max(1, total // 10)
        tokens = [bearer_metadata(auth.issue_token(settings, f"p{n:07d}", "employee")) for n in range(participants)]
        queue: asyncio.Queue = asyncio.Queue()
        # Round by round, so one participant's votes are not sent at once (they would race on
        # their ballot and get ABORTED, as a client double-clicking would).
        for round_ in range(10):
            for participant in range(participants):
                if participant * 10 + round_ < total:
                    queue.put_nowait((participant, ideas[(participant + round_ * 7) % 50]))
        accepted = failed = 0
        codes: dict[str, int] = {}
        latencies: list[float] = []

        async def caller() -> None:
            nonlocal accepted, failed
            while True:
                try:
                    participant, idea = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    await stub.CastVote(jp.CastVoteRequest(jam=jam.name, idea=idea, request_id=str(uuid.uuid4())), metadata=tokens[participant], timeout=30)
                    accepted += 1
                except grpc.RpcError as error:
                    failed += 1
                    codes[error.code().name] = codes.get(error.code().name, 0) + 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"accepted": accepted, "failed": failed, "failures": codes, "seconds": elapsed, "votes_per_second": accepted / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


# --- 2./3. replay -------------------------------------------------------------------------------
def envelopes(participants: int, votes_each: int, ideas: int = 60, keyed: bool = False):
    """Envelope bytes of a jam's vote history, as the relay publishes them (with ``keyed``:
    (aggregate id, bytes), the aggregate id being the relay's Kafka key)."""
    from google.protobuf import any_pb2

    from watercooler.events.v1.envelope_pb2 import Actor, EventEnvelope
    from watercooler.jams.v1 import events_pb2 as ev

    idea_ids = [str(uuid.UUID(int=(0x017F << 112) | i)) for i in range(ideas)]
    sequence = 0

    def wrap(payload, aggregate: str, version: int) -> bytes:
        nonlocal sequence
        sequence += 1
        packed = any_pb2.Any()
        packed.Pack(payload)
        value = EventEnvelope(event_id=str(sequence), event_type=payload.DESCRIPTOR.full_name, aggregate_type="Ballot", aggregate_id=aggregate,
                              aggregate_version=version, actor=Actor(subject="p", kind="employee"), payload=packed, source="jams", sequence=sequence).SerializeToString()
        return (aggregate, value) if keyed else value

    for p in range(participants):
        participant = f"e{p:07d}"
        aggregate = f"ballot-{p}"
        version = 1
        for v in range(votes_each):
            version += 1
            yield wrap(ev.VoteCast(jam_id="bench", participant=participant, idea_id=idea_ids[(p + v * 7) % ideas], cast_at="2030-01-01T00:00:00Z"), aggregate, version)
        if p % 100 == 0:  # a change of mind
            version += 1
            yield wrap(ev.VoteWithdrawn(jam_id="bench", participant=participant, idea_id=idea_ids[p % ideas], withdrawn_at="2030-01-01T00:00:01Z"), aggregate, version)
        if p and p % (participants // 5 or 1) == 0:  # a host merges two duplicates
            yield wrap(ev.IdeasMerged(merged_idea_id=idea_ids[ideas - p // (participants // 5 or 1)], into_idea_id=idea_ids[0]), "jam", p)


def tally_stream(values) -> tuple[object, int]:
    from services.search.readmodels.counters.jams import decode_event as decode
    from watercooler.tally import Tally

    tally = Tally()
    count = 0
    for value in values:
        event = decode(value)
        tally.apply(event.type_name, event.payload)
        count += 1
    return tally, count


def bench_replay_memory(participants: int, votes_each: int) -> dict[str, float]:
    """Envelopes are written to a scratch file first (length-prefixed), so the timed pass is
    reading, decoding and tallying only, and the memory measured is the tally's."""
    import struct

    with tempfile.NamedTemporaryFile(prefix="wc-bench-votes-", delete=True) as scratch:
        started = time.perf_counter()
        for value in envelopes(participants, votes_each):
            scratch.write(struct.pack(">I", len(value)))
            scratch.write(value)
        scratch.flush()
        generate_seconds = time.perf_counter() - started
        size_mb = scratch.tell() / 1e6

        def values():
            with open(scratch.name, "rb", buffering=1 << 20) as source:
                while header := source.read(4):
                    yield source.read(struct.unpack(">I", header)[0])

        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        tally, count = tally_stream(values())
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_mb()
    top = tally.ranking(10)  # type: ignore[attr-defined]
    return {"events": count, "bytes_mb": round(size_mb, 1), "generate_seconds": round(generate_seconds, 1), "tally_seconds": round(elapsed, 1),
            "events_per_second": round(count / elapsed), "tally_rss_mb": round(after - before, 1),
            "votes_counted": tally.votes_counted(), "participants": tally.participants_counted(), "top10": top}  # type: ignore[attr-defined]


def bench_replay_kafka(events: int, votes_each: int) -> dict[str, float]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    from watercooler import config

    settings = config.load()
    topic = f"bench-jams-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024, compression_type="gzip")
        started = time.perf_counter()
        for key, value in envelopes(max(1, events // votes_each), votes_each, keyed=True):
            producer.send(topic, key=key.encode(), value=value)  # keyed by aggregate, like the relay
        producer.flush()
        produce_seconds = time.perf_counter() - started
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, isolation_level="read_committed", max_partition_fetch_bytes=8 * 1024 * 1024)
        partitions = [TopicPartition(topic, p) for p in range(6)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)

        def values():
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=1000, max_records=10000).values():
                    for record in records:
                        yield record.value

        started = time.perf_counter()
        tally, count = tally_stream(values())
        replay_seconds = time.perf_counter() - started
        consumer.close()
        return {"events": count, "produce_seconds": round(produce_seconds, 1), "replay_seconds": round(replay_seconds, 1), "events_per_second": round(count / replay_seconds),
                "votes_counted": tally.votes_counted(), "top10": tally.ranking(10)}  # type: ignore[attr-defined]
    finally:
        admin.delete_topics([topic])
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grpc-votes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--votes-each", type=int, default=10)
    parser.add_argument("--kafka-events", type=int, default=500_000)
    parser.add_argument("--skip", default="", help="comma list of grpc,memory,kafka to skip")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "memory" not in skip:
        print("replay in memory:", bench_replay_memory(args.participants, args.votes_each), flush=True)
    if "kafka" not in skip:
        print("replay through Kafka:", bench_replay_kafka(args.kafka_events, args.votes_each), flush=True)
    if "grpc" not in skip:
        print("gRPC CastVote:", bench_grpc(args.grpc_votes, args.concurrency), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

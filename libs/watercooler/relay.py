"""The relay: publishes a service's stored events to Kafka, in store order, exactly once.

It reads the store's notification log (written in the same transaction as the
events, see eventstore.py) and sends each event to ``<service>.events.v1``,
keyed by aggregate id, inside a Kafka transaction per batch.  Every envelope
carries its store position (``sequence``), so the relay's position *is* the
highest sequence committed to the topic: on start it reads that back
(read_committed) instead of keeping a second bookkeeping copy that could
disagree.  The fixed ``transactional_id`` fences a previous relay instance and
aborts whatever batch it left half-sent, so a crash at any point neither loses
nor duplicates a committed event.  Nothing acknowledged to a client is lost:
it is in the store before the client hears back, and the relay resumes from
the topic.

Run exactly one relay per service (a Deployment with one replica and the
``Recreate`` strategy); a second one would be fenced by the transactional id
and keep failing rather than double publish.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from eventsourcing.utils import resolve_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from . import config, gc_tuning, logs, metrics
from .config import Settings
from .envelope import BadEvent, decode, to_envelope
from .eventstore import EventSourcedAggregate, EventSourcedApplication
from .kafka import ensure_topics

log = logging.getLogger(__name__)

# How long a batch may take to be acknowledged and committed, or a producer to initialise,
# before the relay gives up on that producer, fences it with a new one and sends the batch
# again.  Short, because kafka-python's producer does not recover by itself when a broker
# holding its transaction coordinator dies: in the three-broker fault test it waited out the
# whole of init_transactions' 60 s (or a batch's 25 s delivery timeout) although the
# coordinator had moved within ~15 s, and a fresh producer found it at once. With 30-60 s
# per stuck producer, one run in five took over 180 s to publish everything.
SEND_TIMEOUT_SECONDS = 15.0


def committed_position(settings: Settings, topic: str) -> int:
    """The highest store sequence committed to ``topic`` (0 if none)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        client_id="relay-position",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return 0
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        best = 0
        for tp in partitions:
            best = max(best, _last_sequence(consumer, tp, begins[tp], ends[tp]))
        return best
    finally:
        consumer.close()


def _last_sequence(consumer: KafkaConsumer, tp: TopicPartition, begin: int, end: int) -> int:
    """Read back from the end of one partition until a committed record shows up."""
    window = 64
    while end > begin:
        start = max(begin, end - window)
        consumer.seek(tp, start)
        best = 0
        deadline = time.monotonic() + 60
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {tp} back to offset {end}")
            records = consumer.poll(timeout_ms=1000, max_records=window).get(tp, [])
            for record in records:
                if record.offset < end:
                    try:
                        best = max(best, decode(record.value).envelope.sequence)
                    except BadEvent:
                        continue
            if not records and consumer.position(tp) < end:
                continue
        if best:
            return best
        if start == begin:
            return 0
        end, window = start, window * 4  # only control markers or aborted records here: look further back
    return 0


class Relay:
    def __init__(self, app: EventSourcedApplication, settings: Settings, batch_size: int = 500):
        self.app = app
        self.settings = settings
        self.service = app.service_name
        self.topic = settings.topic(self.service)
        self.batch_size = batch_size
        self.send_timeout = SEND_TIMEOUT_SECONDS
        self.linger = settings.relay_linger
        self._published_topics: dict[str, bool] = {}
        self.stopping = threading.Event()
        self.producer: KafkaProducer | None = None
        self.position = 0

    def connect(self) -> None:
        """(Re)start the transactional producer and read the committed position."""
        self._reset_producer()
        producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=f"relay-{self.service}",
            transactional_id=f"{self.settings.consumer_group('relay')}.{self.service}",
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=int(self.send_timeout * 1000 / 3),
            delivery_timeout_ms=int(self.send_timeout * 1000) - 1000,
            max_block_ms=int(self.send_timeout * 1000),  # bounds init_transactions() too
            linger_ms=5,
            batch_size=256 * 1024,
            compression_type="gzip",
            # kafka-python's own sensors (a few per record sent, about 6 % of a relay's CPU,
            # py-spy) feed no reporter here: the relay's Prometheus metrics say what it did.
            metrics_enabled=False,
        )
        producer.init_transactions()  # fences an older instance, aborts its open batch
        self.producer = producer
        self.position = committed_position(self.settings, self.topic)

    def publish_once(self) -> int:
        """Publish the next batch in one transaction; returns how many store entries it moved past."""
        if self.producer is None:
            self.connect()
        assert self.producer is not None
        notifications = self.app.recorder.select_notifications(start=self.position, limit=self.batch_size, inclusive_of_start=False)
        if not notifications:
            metrics.RELAY_LAG.labels(self.service).set(0)
            return 0
        envelopes = []
        for notification in notifications:
            if not self._published(notification.topic):  # bookkeeping (an older store's request records) stays home
                continue
            # Still sealed: personal fields travel to Kafka as the store holds them.
            domain_event = self.app.mapper.to_domain_event(notification, open_sealed=False)
            envelopes.append(to_envelope(self.service, domain_event, sequence=notification.id))
        last = notifications[-1].id
        if envelopes and envelopes[-1].sequence != last:
            # The position is read back from the topic, so the batch must end on a published event.
            while envelopes and notifications[-1].id != envelopes[-1].sequence:
                notifications = notifications[:-1]
            last = notifications[-1].id
        if not envelopes:
            # Only bookkeeping in this stretch: nothing to publish, nothing to remember either,
            # except in memory (a restart re-reads these few entries and skips them again).
            self.position = last
            return len(notifications)
        self.producer.begin_transaction()
        try:
            futures = [
                self.producer.send(
                    self.topic,
                    key=envelope.aggregate_id.encode(),
                    value=envelope.SerializeToString(),
                    headers=[("event_type", envelope.event_type.encode()), ("event_id", envelope.event_id.encode())],
                )
                for envelope in envelopes
            ]
            # Every record acknowledged (or its error raised) before the commit is asked for:
            # kafka-python's commit_transaction() waits without a deadline, and a batch that
            # failed while a broker was away would leave it waiting for ever.
            self.producer.flush(timeout=self.send_timeout)
            for future in futures:
                future.get(timeout=self.send_timeout)
            self._commit_within(self.send_timeout)
        except Exception:
            self._reset_producer()  # the next connect() aborts the open transaction by fencing
            raise
        self.position = last
        metrics.EVENTS_PUBLISHED.labels(self.service).inc(len(envelopes))
        metrics.RELAY_LAG.labels(self.service).set(max(0, (self.app.recorder.max_notification_id() or 0) - last))
        return len(notifications)

    def _published(self, topic: str) -> bool:
        """Whether events of this stored topic are published, from the class it names, known
        before decoding: a store written before 2026-12 holds request records in its log (now
        they are rows beside it, ``request_records``), and decoding one only to drop it was
        about a tenth of the relay's work per write."""
        published = self._published_topics.get(topic)
        if published is None:
            published = self._published_topics[topic] = issubclass(resolve_topic(topic), EventSourcedAggregate.Event)
        return published

    def _commit_within(self, seconds: float) -> None:
        """commit_transaction() with a deadline: on timeout the producer is abandoned and the
        next one fences it, which aborts the transaction; the batch is sent again."""
        errors: list[BaseException] = []

        def commit() -> None:
            try:
                self.producer.commit_transaction()
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        committer = threading.Thread(target=commit, name=f"relay-commit-{self.service}", daemon=True)
        committer.start()
        committer.join(seconds)
        if committer.is_alive():
            self.producer = None  # stuck: do not wait for it to close
            raise TimeoutError(f"commit of a batch to {self.topic} took over {seconds:.0f}s")
        if errors:
            raise errors[0]

    def run(self, idle_sleep: float = 0.02, max_idle_sleep: float | None = None) -> None:
        log.info("relay starting", extra={"service": self.service, "topic": self.topic})
        # Inside the retry like everything else: a broker dying while the topic was checked
        # once ended this thread, and the relay published nothing more (a fault test caught it).
        topics_ready = False
        # The back-off's ceiling is how late an event written into an idle store can be picked up.
        max_idle_sleep = self.settings.relay_idle_max if max_idle_sleep is None else max_idle_sleep
        idle_sleep = min(idle_sleep, max_idle_sleep)
        sleep = idle_sleep
        while not self.stopping.is_set():
            try:
                if not topics_ready:
                    ensure_topics(self.settings, (self.service,), timeout_seconds=self.send_timeout)
                    topics_ready = True
                moved = self.publish_once()
            except Exception:  # Kafka or store unavailable: reconnect, re-read the position, retry
                log.exception("relay batch failed; retrying", extra={"service": self.service})
                self._reset_producer()
                self.stopping.wait(2.0)
                continue
            if moved:
                sleep = idle_sleep
                if moved < self.batch_size and self.linger > 0:
                    self.stopping.wait(self.linger)
            else:
                self.stopping.wait(sleep)
                sleep = min(max_idle_sleep, sleep * 1.5)
        self._reset_producer()
        log.info("relay stopped", extra={"service": self.service, "position": self.position})

    def _reset_producer(self) -> None:
        if self.producer is not None:
            try:
                self.producer.close(timeout=5)
            except Exception:  # closing a broken producer may itself fail
                log.warning("producer close failed", exc_info=True)
            self.producer = None

    def stop(self, *_: object) -> None:
        self.stopping.set()


def run_relays(apps: list[EventSourcedApplication], settings: Settings) -> None:
    """Run one relay per application, each in its own thread, until SIGTERM/SIGINT."""
    relays = [Relay(app, settings) for app in apps]
    threads = [threading.Thread(target=r.run, name=f"relay-{r.service}", daemon=True) for r in relays]

    def stop(*_: object) -> None:
        for relay in relays:
            relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gc_tuning.tune_for_service()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if not all(t.is_alive() for t in threads) and not any(r.stopping.is_set() for r in relays):
            # A relay that died would leave its service unpublished while the process looks
            # healthy: stop them all and exit, so that the supervisor (Kubernetes) restarts us.
            log.error("a relay thread died; stopping the process", extra={"dead": [t.name for t in threads if not t.is_alive()]})
            stop()
            for thread in threads:
                thread.join(30)
            raise SystemExit(1)
        time.sleep(0.2)


def main(application: type[EventSourcedApplication]) -> None:
    """A service's relay process (``python -m services.<service>.relay``): its settings from the
    environment, its metrics on ``WC_RELAY_METRICS_PORT``, then publish until SIGTERM/SIGINT."""
    settings = config.load()
    logs.setup("relay", settings.log_level, settings.log_format)
    # Off by default: locally one relay process runs per service on one machine.
    metrics.serve(int(os.environ.get("WC_RELAY_METRICS_PORT", "0")))
    run_relays([application(settings)], settings)

"""The media library's part of an erasure: the files a person uploaded leave the object store.

``ErasePerson`` (profiles) destroys the person's keys, which makes their titles and texts
unreadable everywhere, and records ``ProfileErased``. Files are not sealed (they are bytes in the
object store, read through presigned links), so they must be deleted: this follower reads
``ProfileErased`` from the profiles topic and has the application remove the person's items and
delete their objects (``LibraryApplication.erase_owner_media``).

A follower of the topic rather than a call from ``ErasePerson``: the erasure is acknowledged
once its event is stored, and the event is then read here until it has been handled — a posts
service that is down, or dies half-way, handles it when it is back (offsets are committed only
after the records' effects; a redone removal records nothing new, its request id is fixed by the
erasure and the item). ErasePerson does not wait for the posts service, nor fail with it.

Runs in every posts replica as one consumer group (like the sweeper, a thread of the service:
it needs the service's store and object-store credentials, and nothing else). A plain
kafka-python consumer, as the thumbnail maker's: each step is blocking I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kafka.errors import KafkaError
from tenacity import Retrying, retry_if_exception_type

from watercooler import personaldata, retries
from watercooler.config import Settings
from watercooler.envelope import BadEvent, decode_kept
from watercooler.kafka import committing_follower

log = logging.getLogger("watercooler.media_erasure")

GROUP = "posts-media-erasure"
# Offsets are committed after the records' effects, at most this often: a commit per poll was a
# round trip to Kafka for every few profile writes (the follower reads the whole profiles topic),
# and the records read again after a crash are skipped at the cost of reading them.
COMMIT_EVERY_SECONDS = 2.0
_ERASURE_TYPE = personaldata.ERASURE_EVENT.encode()


def may_be_erasure(headers: Any) -> bool:
    """Whether a record may hold an erasure, from the ``event_type`` header the relay gives every
    record: nearly all profile records are not one, and are passed over without decoding. A
    record without the header is decoded (``handle``)."""
    for key, value in headers or ():
        if key == "event_type":
            return value == _ERASURE_TYPE
    return True


def handle(app: Any, value: bytes) -> list[str]:
    """One profiles record: the items removed for it (none unless it is an erasure)."""
    try:
        event = decode_kept(value, {"Profile"})
    except BadEvent:
        return []  # the projections dead-letter it
    if event is None or event.envelope.event_type != personaldata.ERASURE_EVENT or not event.payload.employee_id:
        return []
    removed = app.erase_owner_media(event.payload.employee_id, event.envelope.event_id)
    if removed:
        log.info("removed an erased person's media", extra={"person": f"profiles/{event.payload.employee_id}", "items": len(removed)})
    return removed


def follow(app: Any, settings: Settings, stopping: threading.Event, consumer: Any = None) -> None:
    # Patient: an erasure's files may go a second later, and nearly every record is another profile event.
    consumer = consumer or committing_follower(settings, "profiles", GROUP, max_poll_records=500, patient_seconds=1.0)
    uncommitted = False
    committed_at = time.monotonic()
    try:
        while not stopping.is_set():
            batches = consumer.poll(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if may_be_erasure(record.headers):
                        _until_handled(app, record.value, stopping)
            uncommitted |= bool(batches)
            # Never once stopping: an erasure being retried is then left unhandled, and must be read again.
            if uncommitted and time.monotonic() - committed_at >= COMMIT_EVERY_SECONDS and not stopping.is_set():
                consumer.commit()  # after the records' effects: a crash before it redoes them
                uncommitted, committed_at = False, time.monotonic()
    finally:
        consumer.close()


def _until_handled(app: Any, value: bytes, stopping: threading.Event) -> None:
    """An erasure is never skipped: a failure (the store or the key service away) is retried
    with back-off (``retries``) for as long as it takes; the records after it wait. Stopping
    leaves it unhandled, to be read again (its offset is not committed)."""
    try:
        for attempt in Retrying(retry=retry_if_exception_type(Exception), stop=lambda _: stopping.is_set(), wait=retries.wait_for_failure,
                                sleep=stopping.wait, reraise=True,
                                before_sleep=retries.logged(log, "removing an erased person's media failed; retrying", logging.WARNING)):
            with attempt:
                handle(app, value)
    except Exception:  # noqa: BLE001 - only once stopping: left for the next run
        log.info("stopping with an erasure not handled yet; it is read again at the next start")


def start_erasure_follower(app: Any, settings: Settings) -> threading.Event:
    """Follow the erasures until the returned event is set; Kafka away: join again."""
    stopping = threading.Event()

    def run() -> None:
        while not stopping.is_set():
            try:
                follow(app, settings, stopping)
            except KafkaError:
                log.exception("media erasure: Kafka unavailable; joining again")
                time.sleep(2.0)
            except Exception:  # noqa: BLE001 - a thread that died would stop erasures silently
                log.exception("media erasure follower failed; starting again")
                time.sleep(2.0)

    threading.Thread(target=run, name="media-erasure", daemon=True).start()
    return stopping

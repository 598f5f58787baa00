"""`python -m services.posts.thumbnails`: the thumbnail maker.

Follows `posts.events.v1` for ``MediaContentAttached`` of images, reads the version's object
from the store, writes its thumbnails (services/posts/library/thumbnails.py) and tells the
posts service with ``RecordThumbnails``, which records ``MediaThumbnailsMade`` on the item.

Why a command back to posts rather than a field this process writes somewhere: the item's
read API (GetMediaItem, CreateDownloadLink) answers from the item's own events, so
thumbnails are part of the item's history like its versions, are checked by the same
visibility rule, and reach the search projection like every other change; the cost is one
small RPC per image.

Exactly once, whatever the crashes: offsets are committed only after a record is handled,
so a killed process sees its last records again; the thumbnails' keys are fixed by the
version and the size (a second run overwrites the same objects), and ``RecordThumbnails``
carries a request id derived from the version (a second call records nothing).

A plain kafka-python group consumer rather than a faust agent: every step is blocking I/O or
CPU work (boto3, Pillow, a gRPC call), one record at a time; faust would only hand it to a
thread. An image that cannot be read or is too large is refused with a log line and skipped;
an unreachable store or service is retried with back-off, never a crash loop.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid

import grpc
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from watercooler import auth, config, logs, metrics, retries
from watercooler.client import ServiceCredentials, channel
from watercooler.config import Settings
from watercooler.envelope import BadEvent, decode_kept
from watercooler.kafka import committing_follower
from watercooler.posts.v1 import media_pb2, media_pb2_grpc

from .library import thumbnails
from .library.contentstore import ContentStore

log = logging.getLogger("watercooler.thumbnails")

GROUP = "posts-thumbnails"
# Request ids of RecordThumbnails: one per media item and version.
REQUEST_NAMESPACE = uuid.UUID("4f5b8a8e-5d1e-4c71-9a39-7a1f2f3c0b6d")
# gRPC answers that say "try again later", not "this will never work".
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ABORTED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
MAX_ATTEMPTS = 5  # for errors that are not known to be transient


def request_id(media_id: str, version: int) -> str:
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"media/{media_id}/versions/{version}/thumbnails"))


class ThumbnailMaker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = ContentStore(settings)
        self.credentials = ServiceCredentials(settings, "thumbnails")
        self.media = media_pb2_grpc.MediaServiceStub(channel(settings, "posts"))

    def handle(self, value: bytes) -> None:
        try:
            event = decode_kept(value, {"MediaItem"})
        except BadEvent:
            return  # the projections dead-letter it; nothing here to make
        if event is None or event.type_name != "MediaContentAttached":
            return
        attached = event.payload
        if attached.content_type not in thumbnails.IMAGE_TYPES:
            return
        media_id = event.aggregate_id
        if attached.size_bytes > thumbnails.max_source_bytes():
            log.warning("no thumbnails: image refused", extra={"media_item": f"media/{media_id}", "version": attached.version,
                                                               "reason": f"{attached.size_bytes} bytes is more than the {thumbnails.max_source_bytes()} read"})
            return
        with_retries(lambda: self.make(media_id, attached.version, attached.object_key), f"media/{media_id} version {attached.version}")

    def make(self, media_id: str, version: int, object_key: str) -> None:
        where = {"media_item": f"media/{media_id}", "version": version}
        data = self.store.get_bytes(object_key)
        if data is None:
            log.info("no thumbnails: the content is gone (the item was removed)", extra=where)
            return
        try:
            made = thumbnails.make(data)
        except thumbnails.Refused as refusal:
            log.warning("no thumbnails: image refused", extra={**where, "reason": str(refusal)})
            return
        keys = [self.store.thumbnail_key(media_id, version, thumb.size) for thumb in made]
        for key, thumb in zip(keys, made, strict=True):
            self.store.put_bytes(key, thumb.data, thumbnails.THUMBNAIL_CONTENT_TYPE)
        request = media_pb2.RecordThumbnailsRequest(name=f"media/{media_id}", version=version, sizes=[t.size for t in made],
                                                    request_id=request_id(media_id, version))
        try:
            self.media.RecordThumbnails(request, metadata=self.credentials.metadata(), timeout=30)
        except grpc.RpcError as error:
            if error.code() in _TRANSIENT:
                raise
            # Removed meanwhile: the posts service's sweeper deletes what no version records.
            log.info("thumbnails not recorded", extra={**where, "code": error.code().name, "reason": error.details()})
            return
        log.info("thumbnails made", extra={**where, "sizes": [t.size for t in made]})


def with_retries(run, what: str) -> None:
    """Transient failures (store or service unreachable) are retried until they pass, with
    back-off (``retries``); anything else a few times, then the record is skipped with an error
    logged."""

    def given_up(state: RetryCallState) -> bool:
        return state.attempt_number >= MAX_ATTEMPTS and not _transient(retries.last_error(state))

    try:
        for attempt in Retrying(retry=retry_if_exception_type(Exception), stop=given_up, wait=retries.wait_for_failure, reraise=True,
                                before_sleep=retries.logged(log, "making thumbnails failed; retrying", logging.WARNING, **{"for": what})):
            with attempt:
                run()
    except Exception:  # noqa: BLE001 - one bad record must not stop the stream
        log.exception("thumbnails skipped after %d attempts", MAX_ATTEMPTS, extra={"for": what})


def _transient(error: Exception) -> bool:
    if isinstance(error, grpc.RpcError):
        return error.code() in _TRANSIENT
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(error, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError))


def follow(settings: Settings) -> bool:
    """Makes thumbnails until SIGTERM (True); raises KafkaError when Kafka goes away."""
    maker = ThumbnailMaker(settings)
    consumer = committing_follower(settings, "posts", GROUP, max_poll_records=50)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    log.info("making thumbnails", extra={"topic": settings.topic("posts"), "sizes": list(thumbnails.THUMBNAIL_SIZES)})
    try:
        while not stopping:
            batches = consumer.poll(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    maker.handle(record.value)
            if batches:
                consumer.commit()  # after the records' effects: a crash before it redoes them
            _report_lag(consumer)
    finally:
        consumer.close()
    return True


def _report_lag(consumer: KafkaConsumer) -> None:
    """wc_consumer_lag, as every worker reports it: what the autoscaler watches."""
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None:
            metrics.CONSUMER_LAG.labels(GROUP, tp.topic, str(tp.partition)).set(max(0, end - consumer.position(tp)))


def main() -> None:
    settings = config.load()
    logs.setup("thumbnails", settings.log_level, settings.log_format)
    auth.require_signing_key(settings)  # it signs the service token of its RecordThumbnails calls
    metrics.serve(int(os.environ.get("WC_THUMBNAILS_METRICS_PORT", "9473")))
    # Kafka away (a broker restart, a lost connection): join the group again, as the other
    # workers do, rather than exit; an uncommitted batch is redone, and making it is idempotent.
    while True:
        try:
            if follow(settings):
                return
        except KafkaError:
            log.exception("thumbnails: Kafka unavailable; joining again")
            time.sleep(2.0)


if __name__ == "__main__":
    main()

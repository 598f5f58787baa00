"""Media content through the API next to the object store's own speed, and downloads counted
per second while links are issued at a steady rate.

Starts its own platform in a namespace of its own against running Kafka, Elasticsearch and
an object store (WC_S3_ENDPOINT), and removes its topics, indices and objects at the end:

    WC_INFRA=external WC_KAFKA_BOOTSTRAP=… WC_ES_URL=… WC_S3_ENDPOINT=http://127.0.0.1:28333 \\
        .venv/bin/python -m benchmarks.media --sizes-mb 1,50 --files 8 --concurrency 4 \\
        --link-rate 1000 --link-seconds 20

1. Throughput per file size, in the same run: the store's raw PUT/GET (boto3 put_object and
   get_object with the platform's keys) against the API's path: upload = CreateUpload +
   presigned PUT + ConfirmUpload (the service reads the object back: size, SHA-256, type);
   download = CreateDownloadLink (visibility check, counted fact) + presigned GET.
   MB/s = bytes moved / wall time for `--files` files with `--concurrency` callers.
2. Downloads counted: CreateDownloadLink offered at `--link-rate`/s for `--link-seconds` (no
   GET: what is measured is issuing and counting); counted/s = links / time from the first
   call until the count index sums to them.

Never part of `make test`: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.posts import _prepare_env, percentile

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def payload(size: int, seed: int) -> bytes:
    """A PNG header and incompressible bytes: passes the type sniffing, defeats any compression."""
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    body = hashlib.shake_256(seed.to_bytes(8, "big")).digest(size - len(head))
    return head + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", default="1,50", help="file sizes in MiB, comma separated")
    parser.add_argument("--files", type=int, default=8, help="files per size and path")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--link-rate", type=float, default=1000.0, help="CreateDownloadLink calls offered per second")
    parser.add_argument("--link-seconds", type=float, default=20.0)
    parser.add_argument("--link-callers", type=int, default=16, help="threads issuing links")
    parser.add_argument("--no-sha256", action="store_true", help="upload without announcing the SHA-256 (the service then reads every byte back)")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes_mb.split(",")]
    os.environ.setdefault("WC_ES_REFRESH", "200ms")
    os.environ["WC_MEDIA_MAX_BYTES"] = str(max(sizes))
    os.environ["WC_MEDIA_QUOTA_BYTES"] = str(1 << 50)
    os.environ["WC_RATE_LIMIT"] = "100000"
    _prepare_env()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]

    import grpc
    import urllib3
    from elasticsearch import Elasticsearch

    from services.search.readmodels.counters.views import index_alias
    from tests.conftest import _clean_namespace
    from tools.runner import Platform
    from watercooler import auth, config, objectstore
    from watercooler.client import bearer_metadata
    from watercooler.posts.v1 import media_pb2 as mp
    from watercooler.posts.v1 import media_pb2_grpc as mg
    from watercooler.posts.v1 import wiki_pb2 as wp

    settings = config.load()
    auth.ensure_dev_keys(settings)
    objectstore.ensure_bucket(settings)
    platform = Platform(settings, log_dir=Path(os.environ["WC_DATA_DIR"]) / "logs")
    platform.start()
    # The files are PNG headers over filler bytes: the thumbnail maker would read each one back
    # only to refuse it, load on the store that is neither the API's nor the raw baseline's.
    platform.kill("thumbnails")
    es = Elasticsearch(settings.es_url, request_timeout=30)
    http = urllib3.PoolManager(maxsize=args.concurrency + args.link_callers, retries=False)
    s3 = objectstore.client(settings, timeout=300)
    try:
        media = mg.MediaServiceStub(grpc.insecure_channel(settings.grpc_address("posts")))
        owner = bearer_metadata(auth.issue_token(settings, "bench-owner", "employee"))
        reader = bearer_metadata(auth.issue_token(settings, "bench-reader", "employee"))
        load = os.getloadavg()
        print(f"platform up in namespace {settings.namespace}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores", flush=True)

        def timed_all(fn, items) -> float:
            began = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(fn, items))
            return time.perf_counter() - began

        def throughput(size: int) -> None:
            files = [payload(size, size + i) for i in range(args.files)]
            digests = [hashlib.sha256(f).hexdigest() for f in files]
            moved = size * len(files) / MB
            raw_keys = [f"{settings.object_prefix()}raw/{size}/{i}" for i in range(len(files))]
            raw_put = timed_all(lambda i: s3.put_object(Bucket=settings.s3_bucket, Key=raw_keys[i], Body=files[i], ContentType="image/png"), range(len(files)))
            raw_get = timed_all(lambda i: s3.get_object(Bucket=settings.s3_bucket, Key=raw_keys[i])["Body"].read(), range(len(files)))

            items = [media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title=f"Bench {size} {i}", kind=mp.MediaItem.IMAGE, visibility=wp.INTERNAL)), metadata=owner).name for i in range(len(files))]

            def api_upload(i: int) -> None:
                # With its SHA-256 (unless --no-sha256), as a client that can hash first does: the store verifies it at PUT.
                announced = "" if args.no_sha256 else digests[i]
                upload = media.CreateUpload(mp.CreateUploadRequest(parent=items[i], upload=mp.Upload(size_bytes=size, content_type="image/png", sha256=announced)), metadata=owner, timeout=60)
                response = http.request("PUT", upload.upload_uri, body=files[i], headers=dict(upload.upload_headers), timeout=300)
                assert response.status == 200, response.status
                media.ConfirmUpload(mp.ConfirmUploadRequest(name=upload.name), metadata=owner, timeout=300)

            def api_download(i: int) -> None:
                link = media.CreateDownloadLink(mp.CreateDownloadLinkRequest(name=items[i], client="bench"), metadata=reader, timeout=60)
                response = http.request("GET", link.uri, timeout=300)
                assert response.status == 200 and len(response.data) == size, response.status

            api_put = timed_all(api_upload, range(len(files)))
            api_get = timed_all(api_download, range(len(files)))
            print(
                f"{size / MB:g} MiB x {len(files)} (concurrency {args.concurrency}): "
                f"upload raw {moved / raw_put:.1f} MB/s, API {moved / api_put:.1f} MB/s ({100 * raw_put / api_put:.0f}% of raw); "
                f"download raw {moved / raw_get:.1f} MB/s, API {moved / api_get:.1f} MB/s ({100 * raw_get / api_get:.0f}% of raw)",
                flush=True,
            )


        for size in sizes:
            throughput(size)

        # --- downloads counted while links are issued at a steady rate ------------------------
        targets = [media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title=f"Hot {i}", kind=mp.MediaItem.IMAGE, visibility=wp.INTERNAL)), metadata=owner).name for i in range(10)]
        small = payload(4096, 7)
        for name in targets:
            upload = media.CreateUpload(mp.CreateUploadRequest(parent=name, upload=mp.Upload(size_bytes=len(small), content_type="image/png")), metadata=owner)
            assert http.request("PUT", upload.upload_uri, body=small, headers=dict(upload.upload_headers)).status == 200
            media.ConfirmUpload(mp.ConfirmUploadRequest(name=upload.name), metadata=owner)
        alias = index_alias(settings)

        def counted() -> int:
            result = es.search(index=alias, size=0, query={"terms": {"target": targets}}, aggs={"n": {"sum": {"field": "count"}}})
            return int(result["aggregations"]["n"]["value"])

        issued = [0]
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + args.link_seconds
        interval = args.link_callers / args.link_rate

        def caller(k: int) -> None:
            next_at = time.perf_counter() + k * interval / args.link_callers
            i = k
            while next_at < stop_at:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                began = time.perf_counter()
                media.CreateDownloadLink(mp.CreateDownloadLinkRequest(name=targets[i % len(targets)], client="bench"), metadata=reader, timeout=60)
                with lock:
                    issued[0] += 1
                    latencies.append(time.perf_counter() - began)
                next_at += interval
                i += args.link_callers

        began = time.perf_counter()
        threads = [threading.Thread(target=caller, args=(k,)) for k in range(args.link_callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        issuing = time.perf_counter() - began
        while counted() < issued[0]:
            if time.perf_counter() - began > 600:
                raise SystemExit("not all downloads counted after 10 minutes")
            time.sleep(0.05)
        counting = time.perf_counter() - began
        load = os.getloadavg()
        print(
            f"links offered at {args.link_rate:.0f}/s for {args.link_seconds:g}s: issued {issued[0]} ({issued[0] / issuing:.0f}/s achieved, "
            f"p50={percentile(latencies, 50) * 1000:.0f}ms p99={percentile(latencies, 99) * 1000:.0f}ms); "
            f"counted {issued[0] / counting:.0f}/s ({counting:.1f}s to the last count, exact={counted() == issued[0]}); "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )
    finally:
        platform.stop()
        es.close()
        _clean_namespace(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

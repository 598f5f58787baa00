"""The object store (any S3 API) as every process sees it: boto3 clients made from Settings.

boto3 rather than a hand-written SigV4 signer: presigned URLs are computed locally by
botocore (no round trip), and the same client speaks to SeaweedFS here and to AWS S3,
GCS's XML API, Ceph RGW or R2 in production. Path-style addressing, because a local or
in-cluster endpoint has no per-bucket DNS names.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from watercooler.config import Settings

log = logging.getLogger(__name__)


def client(settings: Settings, public: bool = False, timeout: float = 30.0, retries: int = 3) -> Any:
    """An S3 client; ``public`` signs URLs for the address clients reach (WC_S3_PUBLIC_ENDPOINT)."""
    import boto3
    from botocore.config import Config

    endpoint = (settings.s3_public_endpoint or settings.s3_endpoint) if public else settings.s3_endpoint
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            retries={"max_attempts": retries, "mode": "standard"},
            # Checksums only when an operation requires one: S3-compatible stores lag behind
            # AWS's newest default (CRC32 trailers on every PUT).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=32,
        ),
    )


def ensure_bucket(settings: Settings, s3: Any | None = None) -> None:
    """Create the bucket when missing (idempotent; fine on a bucket we may only write to)."""
    from botocore.exceptions import ClientError

    s3 = s3 or client(settings)
    try:
        s3.head_bucket(Bucket=settings.s3_bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=settings.s3_bucket)


def works(settings: Settings, timeout: float = 5.0) -> bool:
    """True when the store answers with these credentials and the bucket exists (created if not)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ensure_bucket(settings, client(settings, timeout=timeout, retries=1))
        return True
    except (BotoCoreError, ClientError, OSError) as exc:
        log.debug("object store probe on %s: %r", settings.s3_endpoint, exc)
        return False

"""Objects in an S3 bucket for exports: large files up (multipart), down, listed, hashed.

The S3 catalog's client, endpoint (KASTEN_BP_S3_ENDPOINT), retries and one-line error
mapping are reused by subclassing it: an export location is a catalog whose documents are
its index and progress, plus opaque data files.
"""

from __future__ import annotations

import hashlib
from typing import IO, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from kasten_bp.catalog.s3 import S3Catalog, _is_missing_key
from kasten_bp.errors import UsageError

MiB = 1024 * 1024
# Parts of 8 MiB, four uploading at once, and no more read ahead than that (s3transfer's
# max_in_memory_upload_chunks, 10 by default, is not a boto3 constructor argument): an
# upload holds ~32 MiB of parts in memory.
TRANSFER = TransferConfig(
    multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4
)
TRANSFER.max_in_memory_upload_chunks = 4


class S3Objects(S3Catalog):
    """`s3://bucket/prefix`: keys are relative to the prefix, as in the catalog."""

    def check_bucket(self) -> None:
        """A bucket that does not exist or refuses us: UsageError, before any write."""
        full = f"{self.prefix}/" if self.prefix else ""

        def probe() -> Any:
            return self._s3.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)

        self._call("list", full or None, probe)

    def upload(self, key: str, body: IO[bytes]) -> None:
        """Upload a file object from its start; multipart above 8 MiB."""
        obj = self._object_key(key)

        def put() -> None:
            body.seek(0)  # a retried upload starts over
            self._s3.upload_fileobj(body, self.bucket, obj, Config=TRANSFER)

        self._call("upload", obj, put)

    def download(self, key: str, into: IO[bytes]) -> None:
        """Stream an object into a file object (truncated first, so a retry starts over)."""
        obj = self._object_key(key)

        def get() -> None:
            into.seek(0)
            into.truncate()
            try:
                self._s3.download_fileobj(self.bucket, obj, into, Config=TRANSFER)
            except ClientError as exc:
                if _is_missing_key(exc):
                    raise UsageError(f"{self._where(obj)}: no such object") from None
                raise

        self._call("download", obj, get)

    def sha256(self, key: str) -> tuple[str, int]:
        """The sha256 and size of an object, streamed (never held whole)."""
        obj = self._object_key(key)

        def get() -> tuple[str, int]:
            h = hashlib.sha256()
            size = 0
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=obj)
            except ClientError as exc:
                if _is_missing_key(exc):
                    raise UsageError(f"{self._where(obj)}: no such object") from None
                raise
            with response["Body"] as stream:
                for chunk in iter(lambda: stream.read(MiB), b""):
                    h.update(chunk)
                    size += len(chunk)
            return h.hexdigest(), size

        return self._call("read", obj, get)

    def delete(self, key: str) -> None:
        obj = self._object_key(key)
        self._call("delete", obj, lambda: self._s3.delete_object(Bucket=self.bucket, Key=obj))

    def child(self, name: str) -> S3Objects:
        """The same bucket one level down (`prefix/name`)."""
        return S3Objects(f"{self.url}/{name}", retry_seconds=self._retry_seconds)

"""A catalog in an S3 bucket (or an S3-compatible server such as MinIO).

`s3://bucket/prefix`: keys live at `prefix/<key>` in `bucket`. Endpoint, credentials and
region come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, AWS_PROFILE, ...). `KASTEN_BP_S3_ENDPOINT`
(e.g. http://127.0.0.1:9000; it wins over AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) points at an
S3-compatible server; path-style addressing is used with any custom endpoint.

A JSON document is one PutObject, which S3 applies atomically: readers see the old or the
new document. Throttling, 5xx answers and connection errors are retried for a bounded
time; configuration problems (missing bucket, refused credentials, unreachable endpoint)
raise `UsageError` with one line naming the bucket/key and the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
)
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.transience import is_temporary

T = TypeVar("T")

ENDPOINT_ENV = "KASTEN_BP_S3_ENDPOINT"
DEFAULT_RETRY_SECONDS = 30.0
_DELETE_BATCH = 1000  # the DeleteObjects maximum

# Error codes that mean the configuration is wrong: retrying will not help.
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "403",
}
_BAD_CONFIG = {"InvalidBucketName", "PermanentRedirect", "IllegalLocationConstraintException"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    try:
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    except (TypeError, ValueError):
        return 0


def _one_line(text: object, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _is_missing_key(exc: ClientError) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound") or (
        _status(exc) == 404 and _code(exc) not in _NO_BUCKET
    )


class S3Catalog:
    def __init__(
        self,
        url: str,
        *,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        if not url.startswith("s3://"):
            raise UsageError(f"not an S3 catalog URL (want s3://bucket/prefix): {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        if not bucket:
            raise UsageError(f"S3 catalog URL {url!r} names no bucket (want s3://bucket/prefix)")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise UsageError(f"S3 catalog URL {url!r} has an empty or relative path segment")
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.endpoint = os.environ.get(ENDPOINT_ENV) or None
        # S3-compatible servers (MinIO, ...) want path-style addressing; botocore itself
        # honours the standard AWS_ENDPOINT_URL(_S3) when KASTEN_BP_S3_ENDPOINT is unset.
        custom_endpoint = (
            self.endpoint
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self._retry_seconds = retry_seconds
        config = BotoConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # tenacity does the retrying (bounded in time); botocore tries once.
            retries={"total_max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"} if custom_endpoint else None,
        )
        try:
            self._s3: Any = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, config=config
            )
        except (BotoCoreError, ValueError) as exc:
            where = f" (endpoint {self.endpoint} from {ENDPOINT_ENV})" if self.endpoint else ""
            raise UsageError(
                f"{self.url}: cannot set up the S3 client{where}: {_one_line(exc)}"
            ) from None

    # ------------------------------------------------------------------ helpers
    def _object_key(self, key: str) -> str:
        if key.startswith("/") or any(part in (".", "..") for part in key.split("/")):
            raise UsageError(f"catalog key {key!r} escapes {self.url}")
        return self._full_key(key)

    def _full_key(self, key: str) -> str:
        """The object key of a catalog key that came from list_keys (no validation)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self, key: str | None) -> str:
        if key is None:
            return f"s3://{self.bucket}"
        return f"s3://{self.bucket}/{key}"

    def _call(self, what: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run fn, retrying transient errors; translate the rest (one-line messages)."""
        retrying = Retrying(
            retry=retry_if_exception(is_temporary),
            wait=wait_exponential_jitter(multiplier=0.2, max=5),
            stop=stop_after_delay(self._retry_seconds),
            reraise=True,
        )
        where = self._where(key)
        try:
            return retrying(fn)
        except ClientError as exc:
            raise self._translate(exc, what, where) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise UsageError(
                f"{where}: {what}: no usable AWS credentials ({_one_line(exc)}); "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            ) from None
        except ParamValidationError as exc:
            raise UsageError(f"{where}: {what}: invalid S3 request: {_one_line(exc)}") from None
        except SSLError as exc:
            raise UsageError(
                f"{where}: {what}: TLS error talking to {self._endpoint_name()}: {_one_line(exc)}"
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise UsageError(
                f"{where}: {what}: S3 endpoint {self._endpoint_name()} unreachable "
                f"(gave up after {self._retry_seconds:g}s): {_one_line(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise KastenBpError(
                f"{where}: {what} failed against {self._endpoint_name()}: {_one_line(exc)}"
            ) from None

    def _endpoint_name(self) -> str:
        if self.endpoint:
            return f"{self.endpoint} ({ENDPOINT_ENV})"
        return str(getattr(self._s3.meta, "endpoint_url", "AWS S3"))

    def _translate(self, exc: ClientError, what: str, where: str) -> KastenBpError:
        code, status = _code(exc), _status(exc)
        message = _one_line(exc.response.get("Error", {}).get("Message", "") or exc)
        detail = f"{code or status}: {message}" if message else (code or str(status))
        if code in _NO_BUCKET:
            return UsageError(
                f"{where}: {what}: bucket {self.bucket!r} does not exist "
                f"at {self._endpoint_name()} ({detail})"
            )
        if code in _DENIED or status == 403:
            return UsageError(
                f"{where}: {what}: access to bucket {self.bucket!r} denied "
                f"(check the AWS credentials and the bucket policy; {detail})"
            )
        if code in _BAD_CONFIG or status == 301:
            return UsageError(f"{where}: {what}: bad S3 configuration for bucket ({detail})")
        if is_temporary(exc):
            return KastenBpError(
                f"{where}: {what}: S3 still failing after {self._retry_seconds:g}s ({detail})"
            )
        return KastenBpError(f"{where}: {what} failed (HTTP {status}, {detail})")

    # ------------------------------------------------------------------ Catalog
    def write_json(self, key: str, data: dict[str, Any]) -> None:
        obj = self._object_key(key)
        body = json.dumps(data, indent=2, default=str).encode()
        self._call(
            "write",
            obj,
            lambda: self._s3.put_object(
                Bucket=self.bucket, Key=obj, Body=body, ContentType="application/json"
            ),
        )

    def read_json(self, key: str) -> dict[str, Any] | None:
        obj = self._object_key(key)

        def get() -> bytes | None:
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=obj)
            except ClientError as exc:
                if _is_missing_key(exc):
                    return None
                raise
            # Read inside the retried function: a dropped stream is retried as a whole.
            with response["Body"] as stream:
                return bytes(stream.read())

        raw = self._call("read", obj, get)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise KastenBpError(
                f"{self._where(obj)}: not a JSON document: {_one_line(exc)}"
            ) from None
        return data if isinstance(data, dict) else None

    def list_keys(self, prefix: str) -> list[str]:
        full = self._object_key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(f"{self.prefix}/") if self.prefix else 0
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token

            def page(kwargs: dict[str, Any] = kwargs) -> dict[str, Any]:
                result: dict[str, Any] = self._s3.list_objects_v2(**kwargs)
                return result

            response = self._call("list", full or None, page)
            keys.extend(str(item["Key"])[strip:] for item in response.get("Contents", []))
            if not response.get("IsTruncated"):
                break
            token = response.get("NextContinuationToken")
            if not token:
                raise KastenBpError(
                    f"{self._where(full)}: list: truncated answer without a continuation token"
                )
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        deleted = 0
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [self._full_key(k) for k in keys[start : start + _DELETE_BATCH]]

            def delete(batch: list[str] = batch) -> dict[str, Any]:
                result: dict[str, Any] = self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                return result

            response = self._call("delete", batch[0], delete)
            errors = response.get("Errors", [])
            deleted += len(batch) - len(errors)
            if errors:
                first = errors[0]
                code = str(first.get("Code", ""))
                where = self._where(str(first.get("Key", batch[0])))
                detail = f"{code}: {_one_line(first.get('Message', ''))}"
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                if code in _DENIED or code in _NO_BUCKET:
                    raise UsageError(f"{where}: delete refused{more} ({detail})")
                raise KastenBpError(
                    f"{where}: delete failed{more} after {deleted} deleted ({detail})"
                )
        return deleted

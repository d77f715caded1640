"""S3Catalog against a real MinIO server (scripts/minio-test-env, fixture in s3_fixture.py)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from kasten_bp.catalog.base import open_catalog
from kasten_bp.catalog.s3 import S3Catalog
from kasten_bp.errors import KastenBpError, UsageError

from .s3_fixture import MinioServer

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(minio: MinioServer) -> Any:
    """A plain boto3 client on the test server, to set up and inspect buckets."""
    return minio.client()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh, empty bucket for one test (emptied and removed afterwards)."""
    name = f"kbp-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def catalog(bucket: str) -> S3Catalog:
    return S3Catalog(f"s3://{bucket}/catalog")


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_open_catalog_returns_s3_catalog(bucket: str) -> None:
    cat = open_catalog(f"s3://{bucket}/some/prefix/")
    assert isinstance(cat, S3Catalog)
    assert cat.url == f"s3://{bucket}/some/prefix"
    assert cat.list_keys("") == []


def test_round_trip_nested_keys(catalog: S3Catalog, bucket: str, s3: Any) -> None:
    docs: dict[str, dict[str, Any]] = {
        "backups/b1/manifest.json": {"id": "b1", "topics": ["a", "b"], "n": 1},
        "backups/b1/runs/r1/journal.json": {"steps": [{"name": "stop", "ok": True}]},
        "backups/b2/manifest.json": {"id": "b2", "nested": {"deep": {"deeper": [1, 2, 3]}}},
        "backups/other/manifest.json": {"id": "other"},
        "reports/latest.json": {"ok": True, "when": "2026-01-01T00:00:00Z"},
    }
    for key, doc in docs.items():
        catalog.write_json(key, doc)
    # Objects next to the catalog's prefix, but outside it, are never seen.
    s3.put_object(Bucket=bucket, Key="catalog2/backups/b1/manifest.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="elsewhere.json", Body=b"{}")

    for key, doc in docs.items():
        assert catalog.read_json(key) == doc
    assert catalog.list_keys("") == sorted(docs)
    assert catalog.list_keys("backups/") == sorted(k for k in docs if k.startswith("backups/"))
    # A prefix is a string prefix, not a directory: "backups/b" matches b1 and b2.
    assert catalog.list_keys("backups/b") == [
        "backups/b1/manifest.json",
        "backups/b1/runs/r1/journal.json",
        "backups/b2/manifest.json",
    ]
    assert catalog.list_keys("backups/b1/") == [
        "backups/b1/manifest.json",
        "backups/b1/runs/r1/journal.json",
    ]
    assert catalog.list_keys("nothing/") == []

    # Overwrite: a reader sees the new document.
    catalog.write_json("backups/b1/manifest.json", {"id": "b1", "n": 2})
    assert catalog.read_json("backups/b1/manifest.json") == {"id": "b1", "n": 2}

    assert catalog.delete_prefix("backups/b1/") == 2
    assert catalog.read_json("backups/b1/manifest.json") is None
    assert catalog.list_keys("backups/") == [
        "backups/b2/manifest.json",
        "backups/other/manifest.json",
    ]
    assert catalog.delete_prefix("backups/b1/") == 0
    assert catalog.delete_prefix("") == 3
    assert catalog.list_keys("") == []
    # The neighbours outside the catalog prefix survive.
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert left == ["catalog2/backups/b1/manifest.json", "elsewhere.json"]


def test_object_layout(catalog: S3Catalog, bucket: str, s3: Any) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    catalog.write_json("backups/x/manifest.json", {"when": when, "n": 1})
    obj = s3.get_object(Bucket=bucket, Key="catalog/backups/x/manifest.json")
    assert obj["ContentType"] == "application/json"
    assert json.loads(obj["Body"].read()) == {"when": str(when), "n": 1}


def test_bucket_root_catalog(bucket: str, s3: Any) -> None:
    cat = S3Catalog(f"s3://{bucket}")
    assert cat.url == f"s3://{bucket}"
    cat.write_json("a/b.json", {"x": 1})
    assert s3.get_object(Bucket=bucket, Key="a/b.json")["Body"].read()
    assert cat.list_keys("") == ["a/b.json"]
    assert cat.delete_prefix("a/") == 1


def test_pagination_over_1000_keys(catalog: S3Catalog) -> None:
    count = 1100  # more than one ListObjectsV2 page and one DeleteObjects batch (1000 each)
    keys = [f"backups/many/part-{i:05d}.json" for i in range(count)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: catalog.write_json(k, {"k": k}), keys))
    catalog.write_json("backups/one/manifest.json", {"k": "one"})

    assert catalog.list_keys("backups/many/") == keys
    assert len(catalog.list_keys("")) == count + 1
    assert catalog.read_json(keys[1050]) == {"k": keys[1050]}
    assert catalog.delete_prefix("backups/many/") == count
    assert catalog.list_keys("backups/many/") == []
    assert catalog.list_keys("") == ["backups/one/manifest.json"]


def test_missing_key_reads_none(catalog: S3Catalog) -> None:
    assert catalog.read_json("backups/nope/manifest.json") is None
    catalog.write_json("backups/yes/manifest.json", {"a": 1})
    assert catalog.read_json("backups/yes/other.json") is None
    assert catalog.read_json("backups/yes") is None  # a "directory" is not a document


def test_non_object_json_reads_none(catalog: S3Catalog, bucket: str, s3: Any) -> None:
    s3.put_object(Bucket=bucket, Key="catalog/list.json", Body=b"[1, 2]")
    assert catalog.read_json("list.json") is None
    s3.put_object(Bucket=bucket, Key="catalog/broken.json", Body=b"{not json")
    with pytest.raises(KastenBpError, match="broken.json"):
        catalog.read_json("broken.json")


def test_key_escaping_the_prefix_is_refused(catalog: S3Catalog) -> None:
    for key in ("../outside.json", "backups/../../x.json", "/abs.json", "a/./b.json"):
        with pytest.raises(UsageError, match="escapes"):
            catalog.write_json(key, {})


def test_missing_bucket_is_a_usage_error(minio: MinioServer) -> None:
    name = f"kbp-missing-{uuid.uuid4().hex[:12]}"
    cat = S3Catalog(f"s3://{name}/catalog")
    calls = [
        lambda: cat.read_json("backups/b/manifest.json"),
        lambda: cat.write_json("backups/b/manifest.json", {"a": 1}),
        lambda: cat.list_keys("backups/"),
        lambda: cat.delete_prefix("backups/"),
    ]
    for call in calls:
        with pytest.raises(UsageError) as info:
            call()
        message = str(info.value)
        assert name in message and "does not exist" in message
        assert "\n" not in message


@pytest.mark.parametrize("which", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_wrong_credentials_are_a_usage_error(
    which: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(which, "wrong-" + uuid.uuid4().hex)
    cat = S3Catalog(f"s3://{bucket}/catalog")
    for call in (lambda: cat.read_json("x.json"), lambda: cat.write_json("x.json", {})):
        start = time.monotonic()
        with pytest.raises(UsageError) as info:
            call()
        assert time.monotonic() - start < 10, "a refusal must not be retried"
        message = str(info.value)
        assert bucket in message and "denied" in message
        assert "\n" not in message


def test_unreachable_endpoint_is_a_usage_error(
    minio: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_unused_port()}"
    monkeypatch.setenv("KASTEN_BP_S3_ENDPOINT", endpoint)
    cat = S3Catalog("s3://some-bucket/catalog", retry_seconds=1.5, connect_timeout=1)
    start = time.monotonic()
    with pytest.raises(UsageError) as info:
        cat.read_json("x.json")
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert endpoint in message and "some-bucket" in message and "unreachable" in message
    assert "\n" not in message
    assert 1.0 <= elapsed < 15, "retried for a bounded time"


def test_throttling_and_5xx_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient errors are retried (no server needed: botocore's Stubber answers)."""
    monkeypatch.setenv("KASTEN_BP_S3_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    cat = S3Catalog("s3://b/p", retry_seconds=20)
    with Stubber(cat._s3) as stub:
        stub.add_client_error("put_object", "SlowDown", "slow down", 503)
        stub.add_client_error("put_object", "InternalError", "oops", 500)
        stub.add_response("put_object", {})
        cat.write_json("k.json", {"a": 1})
        stub.assert_no_pending_responses()
    cat = S3Catalog("s3://b/p", retry_seconds=0.5)
    with Stubber(cat._s3) as stub:
        for _ in range(50):
            stub.add_client_error("list_objects_v2", "ServiceUnavailable", "busy", 503)
        with pytest.raises(KastenBpError) as info:
            cat.list_keys("")
        assert not isinstance(info.value, UsageError)
        assert "s3://b/p/" in str(info.value) and "ServiceUnavailable" in str(info.value)


def test_invalid_bucket_name_is_a_usage_error(minio: MinioServer) -> None:
    with pytest.raises(UsageError, match="Bad_Bucket!"):
        S3Catalog("s3://Bad_Bucket!/catalog").read_json("x.json")

"""`kasten-bp export`, `verify --export` and signed `report` on the real lab and a real MinIO:
one backup (300 records, 3 partitions) shared by the module."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import open_catalog
from kasten_bp.catalog.s3_objects import S3Objects
from kasten_bp.cli.restore_verify import _completed_manifest
from kasten_bp.export.service import Exports
from kasten_bp.kafka import admin, producing
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.replay.source import KafkaSource

from .helpers import LabHandle, cli, cli_json, partition_records, wait_mirrored
from .s3_fixture import MinioServer
from .test_replay import target  # noqa: F401 - the lab's target cluster, a fixture used below

pytestmark = pytest.mark.integration
RECORDS = 300


@dataclass(frozen=True)
class Backup:
    id: str
    topic: str
    restored: str  # bootstrap of its restored cluster


@pytest.fixture(scope="module")
def s3(minio: MinioServer) -> Any:
    return minio.client()


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = f"kbp-export-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def backup(lab: LabHandle) -> Iterator[Backup]:
    """A consistent backup of a fresh topic, restored with `kasten-bp restore` (which
    records the restore's duration for the report); the cluster is stopped after."""
    name = f"export-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, name, 3)
    base = int(time.time() * 1000) - 3_600_000
    producing.produce(
        lab.primary,
        [
            Record(
                name,
                i % 3,
                -1,
                base + i * 1000,
                None if i % 10 == 0 else f"k{i}".encode(),
                bytes([i % 256]) * (i % 50) + b"\xff\x00",
                (("n", str(i).encode()), ("empty", None)) if i % 2 else (),
            )
            for i in range(RECORDS)
        ],
    )
    wait_mirrored(lab.primary, lab.mirror, name)
    result = cli_json(lab, "backup")
    assert result["status"] == "COMPLETED"
    backup_id = result["backup_id"]
    restored = cli_json(lab, "restore", backup_id)
    yield Backup(backup_id, name, restored["bootstrap"])
    LocalPlatform(lab.config).stop_restored(backup_id)


def export(lab: LabHandle, backup: Backup, to: str, *args: str, expect: int = 0) -> Any:
    return cli_json(
        lab, "export", backup.id, "--to", to, "--topic", backup.topic, *args, expect=expect
    )


def restored_rows(backup: Backup, partition: int) -> list[tuple]:
    return [
        (r.offset, r.key, r.value, list(r.headers), r.timestamp)
        for r in partition_records(backup.restored, backup.topic, partition)
    ]


def test_parquet_and_avro_read_back_by_their_own_libraries_and_verified(
    lab: LabHandle, backup: Backup, bucket: str, s3: Any
) -> None:
    for fmt, compression in (("parquet", "snappy"), ("avro", "zstd")):
        result = export(
            lab,
            backup,
            f"s3://{bucket}/{fmt}",
            "--format",
            fmt,
            "--compression",
            compression,
            "--roll-size",
            "2k",
        )
        assert result["status"] == "completed" and result["records"] == RECORDS
        prefix = f"{fmt}/{result['export_id']}"
        index = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/index.json")["Body"].read())
        assert {h["topic"] for h in index["heads"]} == {backup.topic}
        assert index["backup_id"] == backup.id and index["format"] == fmt
        for p in range(3):
            files = [f for f in result["files"] if f["partition"] == p]
            assert len(files) > 1, "a 2 KiB roll size makes several files per partition"
            assert all(f["key"] == f"{backup.topic}/{p}/{f['first_offset']}.{fmt}" for f in files)
            rows: list[tuple] = []
            for f in files:
                body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{f['key']}")["Body"].read()
                if fmt == "parquet":
                    got = pq.read_table(io.BytesIO(body)).to_pylist()
                else:
                    got = list(fastavro.reader(io.BytesIO(body)))
                rows += [
                    (
                        r["offset"],
                        r["key"],
                        r["value"],
                        [(h["key"], h["value"]) for h in r["headers"]],
                        r["timestamp"],
                    )
                    for r in got
                ]
                assert all(r["timestamp_type"] == "CreateTime" for r in got)
            assert rows == restored_rows(backup, p)
        checked = cli_json(lab, "verify", backup.id, "--export", f"s3://{bucket}/{prefix}")
        assert checked["verdict"] == "consistent"
        assert checked["records_compared"] == RECORDS


def test_a_flipped_byte_fails_verify_naming_the_file(
    lab: LabHandle, backup: Backup, bucket: str, s3: Any
) -> None:
    result = export(
        lab, backup, f"s3://{bucket}/flip", "--format", "jsonl", "--compression", "none"
    )
    victim = result["files"][1]
    key = f"flip/{result['export_id']}/{victim['key']}"
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    checked = cli(lab, "verify", backup.id, "--export", f"s3://{bucket}/flip/{result['export_id']}")
    assert checked.returncode == 1, checked.stderr[-2000:]
    lines = checked.stdout.strip().splitlines()
    assert (
        lines[0].startswith(f"verify export {result['export_id']}") and "INCONSISTENT" in lines[0]
    )
    (problem,) = lines[1:]
    assert problem.startswith(f"s3://{bucket}/{key}: sha256")


class _StopAfter:
    """The restored-cluster source, interrupted (as Ctrl-C would) after `after` records."""

    def __init__(self, inner: KafkaSource, after: int) -> None:
        self.inner = inner
        self.description = inner.description
        self.after = after

    def topics(self) -> Any:
        return self.inner.topics()

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        return self.inner.topic_configs(topics)

    def stream(self, ranges: dict[tuple[str, int], tuple[int, int]]) -> Iterator[Record]:
        records = self.inner.stream(ranges)
        try:
            for record in records:
                if self.after == 0:
                    raise KeyboardInterrupt
                self.after -= 1
                yield record
        finally:
            records.close()  # type: ignore[attr-defined]


def test_an_interrupted_export_resumes_skipping_the_files_it_finished(
    lab: LabHandle, backup: Backup, bucket: str, s3: Any
) -> None:
    b = Backups(lab.config)
    manifest = _completed_manifest(b, backup.id)
    source = KafkaSource.for_backup(backup.restored, manifest)
    exports = Exports(b.catalog, S3Objects(f"s3://{bucket}/resume"))
    first = exports.run(_StopAfter(source, 150), manifest, "jsonl", "zstd", backup.topic, 1024)
    assert first["status"] == "interrupted"
    done = first["files"]
    assert done and sum(f["records"] for f in done) <= 150
    prefix = f"resume/{first['export_id']}"
    progress = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/_progress.json")["Body"].read()
    )
    assert [f["key"] for f in progress["files"]] == [f["key"] for f in done]
    assert "index.json" not in _keys(s3, bucket, prefix)  # incomplete: no index
    refused = cli(lab, "verify", backup.id, "--export", f"s3://{bucket}/{prefix}")
    assert refused.returncode == 2 and "is incomplete" in refused.stderr
    # Mark the finished files: a resume that wrote them again would drop the mark.
    for f in done:
        key = f"{prefix}/{f['key']}"
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            Metadata={"first-run": "yes"},
            MetadataDirective="REPLACE",
        )
    resumed = export(lab, backup, f"s3://{bucket}/resume", "--resume", first["export_id"])
    assert resumed["status"] == "completed" and resumed["records"] == RECORDS
    assert resumed["files"][: len(done)] == done
    for f in done:
        head = s3.head_object(Bucket=bucket, Key=f"{prefix}/{f['key']}")
        assert head["Metadata"] == {"first-run": "yes"}
    checked = cli_json(lab, "verify", backup.id, "--export", f"s3://{bucket}/{prefix}")
    assert checked["verdict"] == "consistent" and checked["records_compared"] == RECORDS


def _keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {o["Key"][len(prefix) + 1 :] for o in listed}


def test_bad_destinations_are_refused_before_any_write(
    lab: LabHandle, backup: Backup, bucket: str, s3: Any
) -> None:
    missing = cli(
        lab,
        "export",
        backup.id,
        "--to",
        f"s3://no-such-{uuid.uuid4().hex[:8]}/x",
        "--topic",
        backup.topic,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    existing = export(lab, backup, f"s3://{bucket}/twice", "--compression", "none")
    before = _keys(s3, bucket, "twice")
    inside = cli(
        lab,
        "export",
        backup.id,
        "--to",
        f"s3://{bucket}/twice/{existing['export_id']}",
        "--topic",
        backup.topic,
    )
    assert inside.returncode == 2
    assert f"already holds export {existing['export_id']}" in inside.stderr
    assert _keys(s3, bucket, "twice") == before


def test_signed_report_names_the_export_and_catches_a_changed_file(
    lab: LabHandle, backup: Backup, bucket: str, s3: Any, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "key.pem", tmp_path / "pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert cli_json(lab, "verify", backup.id)["verdict"] == "consistent"
    exported = export(lab, backup, f"s3://{bucket}/report", "--format", "parquet")
    doc = cli_json(lab, "report", backup.id, "--sign", str(private))
    assert doc["restore"]["seconds"] > 0
    assert doc["verify"]["verdict"] == "consistent"
    assert doc["export"]["export_id"] == exported["export_id"]
    assert [f["sha256"] for f in doc["export"]["files"]] == [f["sha256"] for f in exported["files"]]
    assert doc["not_measured"] == []
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc))
    ok = cli(lab, "report", "verify", str(report), "--public-key", str(public))
    assert ok.returncode == 0, ok.stderr
    victim = f"report/{exported['export_id']}/{exported['files'][0]['key']}"
    body = bytearray(s3.get_object(Bucket=bucket, Key=victim)["Body"].read())
    body[-10] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=victim, Body=bytes(body))
    bad = cli(lab, "report", "verify", str(report), "--public-key", str(public))
    assert bad.returncode == 1
    (line,) = bad.stderr.strip().splitlines()
    assert f"s3://{bucket}/{victim}: sha256" in line


# --- replay --from: the export as a replay source ---------------------------------------

OFFSET_HEADER = "x-source-offset"


def replay_spec(tmp_path: Path, topic: str, into: str, partition: dict[str, int]) -> Path:
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.yaml"
    spec = {
        "topics": [{"source": topic, "target": into, "partitions": [partition]}],
        "create_topics": True,
        "original_offset_header": OFFSET_HEADER,
    }
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def replayed(records: list[Record]) -> list[tuple]:
    """What the target must hold: each record's content plus its source offset header."""
    return [
        (r.key, r.value, (*r.headers, (OFFSET_HEADER, str(r.offset).encode())), r.timestamp)
        for r in records
    ]


def export_for_replay(
    lab: LabHandle, backup: Backup, bucket: str, prefix: str, *args: str
) -> tuple[Any, str]:
    """An export in files of ~2 KiB (several per partition), and its URL."""
    exported = export(lab, backup, f"s3://{bucket}/{prefix}", "--roll-size", "2k", *args)
    return exported, f"s3://{bucket}/{prefix}/{exported['export_id']}"


def on_target(bootstrap: str, topic: str, partition: int) -> list[tuple]:
    return [r.content() for r in partition_records(bootstrap, topic, partition)]


def test_replay_from_an_export_an_offset_range_with_original_offsets(
    lab: LabHandle,
    backup: Backup,
    bucket: str,
    target: str,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    _, url = export_for_replay(lab, backup, bucket, "replay", "--format", "parquet")
    into = f"from-export-{uuid.uuid4().hex[:8]}"
    spec = replay_spec(
        tmp_path, backup.topic, into, {"number": 1, "from_offset": 20, "until_offset": 70}
    )
    missing = cli(lab, "replay", "--from", f"{url}-x", "--to", target, "--spec", str(spec))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"error: no export at {url}-x (no index.json)"
    plan = cli_json(lab, "replay", "--from", url, "--to", target, "--spec", str(spec), "--dry-run")
    assert plan["status"] == "dry_run" and plan["backup_id"] == backup.id
    assert [(p["partition"], p["records"]) for p in plan["partitions"]] == [(1, 50)]
    assert into not in admin.topics(target)
    result = cli_json(lab, "replay", "--from", url, "--to", target, "--spec", str(spec))
    assert result["status"] == "completed" and result["proof"] == "ok"
    (row,) = result["partitions"]
    assert {k: row[k] for k in ("source_topic", "target_topic", "partition", "records")} == {
        "source_topic": backup.topic,
        "target_topic": into,
        "partition": 1,
        "records": 50,
    }
    assert (row["first_source_offset"], row["last_source_offset"]) == (20, 69)
    # Key, value, headers (null values kept), timestamp and partition, as the backup holds them.
    expected = [
        r for r in partition_records(backup.restored, backup.topic, 1) if 20 <= r.offset < 70
    ]
    assert on_target(target, into, 1) == replayed(expected)
    assert on_target(target, into, 0) == [] and on_target(target, into, 2) == []
    assert admin.topics(target)[into] == 3  # created with the partition count of the index
    report = open_catalog(lab.config.catalog).read_json(
        f"replays/{result['replay_id']}/report.json"
    )
    assert report is not None and report["source_url"] == url


def test_replay_from_a_changed_export_file_fails_naming_it_and_resumes_once_repaired(
    lab: LabHandle,
    backup: Backup,
    bucket: str,
    s3: Any,
    target: str,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    exported, url = export_for_replay(lab, backup, bucket, "replay-flip", "--compression", "none")
    first, second, *_ = [f for f in exported["files"] if f["partition"] == 1]
    key = f"replay-flip/{exported['export_id']}/{second['key']}"
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    body = bytearray(original)
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    into = f"from-export-{uuid.uuid4().hex[:8]}"
    spec = replay_spec(tmp_path, backup.topic, into, {"number": 1})
    catalog = open_catalog(lab.config.catalog)
    before = set(catalog.list_keys("replays/"))
    failed = cli(lab, "replay", "--from", url, "--to", target, "--spec", str(spec))
    assert failed.returncode == 1, failed.stderr[-2000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: s3://{bucket}/{key}: sha256 "), last
    # What was written before the failure: the created topic and the records of the files
    # read before the changed one (here the partition's first file), none of the changed one.
    source = partition_records(backup.restored, backup.topic, 1)
    done = [r for r in source if r.offset <= first["last_offset"]]
    assert on_target(target, into, 1) == replayed(done)
    (report_key,) = set(catalog.list_keys("replays/")) - before
    report = catalog.read_json(report_key)
    assert report is not None and report["status"] == "failed"
    assert report["partitions"][0]["last_source_offset"] == first["last_offset"]
    # Repaired, the replay continues from its report (and its export) with no duplicate.
    s3.put_object(Bucket=bucket, Key=key, Body=original)
    resumed = cli_json(lab, "replay", "--resume", report["replay_id"], "--to", target)
    assert resumed["status"] == "completed" and resumed["proof"] == "ok"
    assert on_target(target, into, 1) == replayed(source)

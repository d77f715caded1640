"""`verify` on harder topics (transactions, compaction, the default replication policy)
and on damaged snapshots (a torn tail, a changed value, a record lost mid-window)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.kafka import admin, producing
from kasten_bp.lab.lab import Lab
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record

from . import kafka_tools
from .helpers import LabHandle, cli, cli_json, partition_records, wait_mirrored
from .snapshot_surgery import RemoveRecord, doctor, replace_bytes, truncate_tail

pytestmark = pytest.mark.integration


def test_transactional_and_compacted_topics_verify_consistent(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    txn = f"txn-{uuid.uuid4().hex[:8]}"
    compacted = f"cmp-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, txn, 2)
    admin.create_topic(
        lab.primary,
        compacted,
        1,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "500",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    batches = [
        [Record(txn, i % 2, -1, 0, f"k{j}".encode(), f"t{i}-{j}".encode(), ()) for j in range(10)]
        for i in range(6)
    ]
    kafka_tools.produce_transactional(lab.primary, batches, f"tx-{txn}", abort={1, 4})
    producing.produce(
        lab.primary,
        [
            Record(compacted, 0, -1, 0, f"key{i % 5}".encode(), f"v{i}".encode(), ())
            for i in range(200)
        ],
    )
    wait_mirrored(lab.primary, lab.mirror, txn)
    wait_mirrored(lab.primary, lab.mirror, compacted)
    result = cli_json(lab, "backup")
    backup_id = result["backup_id"]
    heads = {(p["topic"], p["partition"]): p for p in result["manifest"]["partitions"]}
    assert heads[(compacted, 0)]["compacted"] is True
    # Committed records only: the aborted batches never reach the mirror.
    mirrored_values = sum(len(heads[(txn, p)]["head"]) for p in range(2))
    assert mirrored_values == 40
    cli_json(lab, "restore", backup_id)
    restored_ids.append(backup_id)
    # The backup holds every topic of the session lab: --topic limits the verify to ours.
    report = cli_json(lab, "verify", backup_id, "--deep", "--topic", f"{txn}|{compacted}")
    assert report["topic_filter"] == f"{txn}|{compacted}"
    ours = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert sorted(ours) == [(compacted, 0), (txn, 0), (txn, 1)]
    assert all(p["status"] in ("consistent", "behind") for p in ours.values()), ours
    assert all(p["records_compared"] > 0 for p in ours.values()), ours
    assert report["verdict"] == "consistent"


def _backup_with_known_values(lab: LabHandle, count: int = 200) -> tuple[str, str]:
    """Record i goes to partition i % 2 with value VALUE-{i:05d}-ORIGINAL."""
    topic = f"dmg-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, topic, 2)
    producing.produce(
        lab.primary,
        [
            Record(topic, i % 2, -1, 0, f"k{i}".encode(), f"VALUE-{i:05d}-ORIGINAL".encode(), ())
            for i in range(count)
        ],
    )
    wait_mirrored(lab.primary, lab.mirror, topic)
    return topic, cli_json(lab, "backup")["backup_id"]


def test_verify_catches_a_partition_truncated_in_the_snapshot(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    topic, backup_id = _backup_with_known_values(lab)
    torn = f"{backup_id}-torn"
    doctor(Backups(lab.config), backup_id, torn, truncate_tail(topic, 1, drop_bytes=30))
    cli_json(lab, "restore", torn)
    restored_ids.append(torn)
    report = cli_json(lab, "verify", torn, expect=1)
    statuses = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert statuses[(topic, 1)]["status"] == "divergent"
    assert statuses[(topic, 1)]["restored_end_offset"] < statuses[(topic, 1)]["manifest_end_offset"]
    assert statuses[(topic, 0)]["status"] in ("consistent", "behind")


def _restored_with_a_changed_value(
    lab: LabHandle, restored_ids: list[str], count: int, record: int
) -> tuple[str, str]:
    """A backup of `_backup_with_known_values`, restored as a copy whose snapshot has
    record `record`'s value changed (an even record: partition 0); (topic, its id)."""
    topic, backup_id = _backup_with_known_values(lab, count)
    rotten = f"{backup_id}-rot{record}"
    old = f"VALUE-{record:05d}-ORIGINAL".encode()
    doctor(
        Backups(lab.config), backup_id, rotten, replace_bytes(topic, 0, old, old[:-8] + b"CHANGED!")
    )
    cli_json(lab, "restore", rotten)
    restored_ids.append(rotten)
    return topic, rotten


def test_verify_catches_a_changed_value(lab: LabHandle, restored_ids: list[str]) -> None:
    # Record 198 is in partition 0 and within the head window.
    topic, rotten = _restored_with_a_changed_value(lab, restored_ids, count=200, record=198)
    report = cli_json(lab, "verify", rotten, expect=1)
    bad = [
        p for p in report["partitions"] if p["status"] != "consistent" and p["status"] != "behind"
    ]
    assert [(p["topic"], p["partition"]) for p in bad] == [(topic, 0)]
    assert bad[0]["status"] == "divergent" and "differ" in bad[0]["detail"]


def test_deep_verify_catches_a_value_changed_before_the_head_window_in_workers_or_not(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    # 200 records a partition: record 10 (partition 0's 6th) is far before the head window
    # of 64, so only --deep reads it.
    topic, rotten = _restored_with_a_changed_value(lab, restored_ids, count=400, record=10)
    heads = cli_json(lab, "verify", rotten)
    assert heads["verdict"] == "consistent"  # the surgery is outside every head window
    # The same judgement whether partitions are compared in one process or in workers
    # (of this topic only: the session lab's other topics would cost minutes each time).
    reports = {
        workers: cli_json(
            lab, "verify", rotten, "--deep", "--workers", workers, "--topic", topic, expect=1
        )
        for workers in ("1", "2")
    }
    for report in reports.values():
        assert {p["topic"] for p in report["partitions"]} == {topic}
        bad = [p for p in report["partitions"] if p["status"] not in ("consistent", "behind")]
        assert [(p["topic"], p["partition"]) for p in bad] == [(topic, 0)], bad
        assert "restored offset 5 differs" in bad[0]["detail"], bad[0]
        ours = {p["partition"]: p for p in report["partitions"]}
        assert ours[1]["records_compared"] == 200
    assert reports["1"]["partitions"] == reports["2"]["partitions"]
    # A --topic that names nothing in the backup: one line, exit 2, nothing read or written.
    catalog = Backups(lab.config).catalog
    verifies = catalog.list_keys(f"backups/{rotten}/")
    refused = cli(lab, "verify", rotten, "--topic", "no-such-topic-.*", "--output", "json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout) == {
        "error": f"backup {rotten}: no topic matches --topic 'no-such-topic-.*'",
        "exit_code": 2,
    }
    assert catalog.list_keys(f"backups/{rotten}/") == verifies


def test_verify_catches_a_record_missing_inside_the_head_window(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    # 40 records a partition, all inside the default head window of 64.
    topic, backup_id = _backup_with_known_values(lab, count=80)
    holed = f"{backup_id}-hole"
    # Record 41 is partition 1's 21st of 40. The mirror lost it before the heads were
    # captured, so the manifest agrees with the snapshot: the restored head equals the
    # manifest, its 39 records all appear in order on the primary, yet not as a run.
    lost = RemoveRecord(topic, 1, b"VALUE-00041-ORIGINAL")
    doctor(Backups(lab.config), backup_id, holed, lost, lost.record_in_manifest)
    cli_json(lab, "restore", holed)
    restored_ids.append(holed)
    result = cli(lab, "verify", holed, "--output", "json")
    report = json.loads(result.stdout)
    statuses = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert statuses[(topic, 1)]["heads_match_manifest"] is True  # the surgery is as meant
    assert statuses[(topic, 1)]["status"] == "divergent", statuses[(topic, 1)]
    assert statuses[(topic, 0)]["status"] == "consistent", statuses[(topic, 0)]
    assert result.returncode == 1 and report["verdict"] == "inconsistent"


@pytest.fixture(scope="module")
def prefixed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """A small second lab with MM2's DefaultReplicationPolicy (`primary.` topic names)."""
    lab = Lab(Path(tmp_path_factory.mktemp("prefixed")))
    lab.up(primary_brokers=1, mirror_brokers=1, policy="default")
    try:
        yield LabHandle(lab, lab.config_path)
    finally:
        lab.down()


def test_default_replication_policy_backup_verifies(prefixed_lab: LabHandle) -> None:
    lab = prefixed_lab
    topic = f"pfx-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, topic, 2)
    producing.produce(
        lab.primary, [Record(topic, i % 2, -1, 0, b"k", f"v{i}".encode(), ()) for i in range(100)]
    )
    wait_mirrored(lab.primary, lab.mirror, topic, mirror_topic=f"primary.{topic}")
    result = cli_json(lab, "backup")
    names = {p["topic"] for p in result["manifest"]["partitions"]}
    assert f"primary.{topic}" in names
    assert all(
        p["primary_topic"] == topic
        for p in result["manifest"]["partitions"]
        if p["topic"] == f"primary.{topic}"
    )
    cli_json(lab, "restore", result["backup_id"])
    report = cli_json(lab, "verify", result["backup_id"], "--deep")
    assert report["verdict"] == "consistent"
    ours = [p for p in report["partitions"] if p["topic"] == f"primary.{topic}"]
    assert len(ours) == 2 and sum(p["records_compared"] for p in ours) == 100


def consume(workdir: Path, group: str, topic: str, records: int) -> None:
    """`lab consume`: a real consumer group on the primary that commits as it goes."""
    result = subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", "lab", "consume", "--workdir", str(workdir)]
        + ["--group", group, "--topic", topic, "--records", str(records), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["records"] == records


def test_groups_on_renamed_topics_are_restored_exactly_and_verified(
    prefixed_lab: LabHandle,
) -> None:
    """The DefaultReplicationPolicy: the group committed on `topic`; on the restored
    cluster it resumes on `primary.topic`, at the twin of its record, by content."""
    lab = prefixed_lab
    assert lab.lab is not None
    topic = f"pfg-{uuid.uuid4().hex[:8]}"
    group = f"pfx-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 2)
    producing.produce(
        lab.primary, [Record(topic, i % 2, -1, 0, b"k", f"g{i}".encode(), ()) for i in range(60)]
    )
    consume(lab.lab.workdir, group, topic, 25)
    renamed = f"primary.{topic}"
    wait_mirrored(lab.primary, lab.mirror, topic, mirror_topic=renamed)
    backup = cli_json(lab, "backup", "--group", group)
    restored = cli_json(lab, "restore", backup["backup_id"], "--with-groups")
    try:
        (applied,) = restored["groups"]
        parts = {(p["topic"], p["partition"]): p for p in applied["partitions"]}
        assert {p["restored_topic"] for p in parts.values()} == {renamed}
        assert {(p["method"], p["reread"]) for p in parts.values()} == {("exact", 0)}
        bootstrap = restored["bootstrap"]
        for (t, partition), p in parts.items():
            unread = [
                r
                for r in partition_records(lab.primary, t, partition)
                if r.offset >= p["primary_offset"]
            ]
            ahead = [
                r
                for r in partition_records(bootstrap, renamed, partition)
                if r.offset >= p["restored_offset"]
            ]
            assert [r.content() for r in ahead] == [r.content() for r in unread]
        report = cli_json(lab, "verify", backup["backup_id"])
        assert report["verdict"] == "consistent"
        (standing,) = report["groups"]
        assert standing["status"] == "exact"
    finally:
        LocalPlatform(lab.config).stop_restored(backup["backup_id"])

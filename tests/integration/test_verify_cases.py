"""`verify` on harder topics (transactions, compaction, the default replication policy)
and on damaged snapshots (a torn tail, a changed value, a record lost mid-window)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.backup import Backups
from kasten_bp.kafka import admin, producing
from kasten_bp.lab.lab import Lab
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from . import kafka_tools
from .helpers import LabHandle, cli, cli_json, partition_records, seed, wait_mirrored
from .snapshot_surgery import RemoveRecord, doctor, replace_bytes, truncate_tail

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class DamagedCopy:
    """One backup of the session lab holding a topic for each case below, and a doctored
    copy of it, restored, in which each damage topic took its own damage. The cases share
    them because a backup and a restore cost the most CPU of the suite; each case checks
    its own topics with `verify --topic`, and one case checks that one verify of all the
    damage cases' topics names each damage and nothing else."""

    backup: dict[str, Any]  # the `backup` command's JSON
    copy_id: str
    txn: str
    compacted: str
    torn: str  # partition 1's tail torn off
    changed: str  # record 198 (partition 0, inside the head window) changed
    deep: str  # record 10 (partition 0, before the head window) changed
    holed: str  # record 41 (partition 1, inside the head window) lost before the capture
    live: str  # undamaged; changed on the restored copy by its case
    bootstrap: str  # the restored copy's

    def topics(self) -> list[str]:
        """The topics the damage left as they were or damaged (not `live`, which its case
        changes on the restored copy)."""
        return [self.txn, self.compacted, self.torn, self.changed, self.deep, self.holed]


def _produce_known_values(lab: LabHandle, topic: str, count: int) -> None:
    """Record i goes to partition i % 2 with value VALUE-{i:05d}-ORIGINAL."""
    admin.create_topic(lab.primary, topic, 2)
    producing.produce(
        lab.primary,
        [
            Record(topic, i % 2, -1, 0, f"k{i}".encode(), f"VALUE-{i:05d}-ORIGINAL".encode(), ())
            for i in range(count)
        ],
    )


def _changed(topic: str, record: int) -> Callable[[Path], None]:
    """Bit rot in an even record (partition 0): its value ends CHANGED! instead."""
    old = f"VALUE-{record:05d}-ORIGINAL".encode()
    return replace_bytes(topic, 0, old, old[:-8] + b"CHANGED!")


def _transactional_and_compacted(lab: LabHandle, txn: str, compacted: str) -> None:
    """6 transactions of 10 records on 2 partitions, 2 of them aborted; 200 writes of 5
    keys to a topic compacted as it goes."""
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


@pytest.fixture(scope="module")
def damaged(lab: LabHandle) -> Iterator[DamagedCopy]:
    tag = uuid.uuid4().hex[:8]
    txn, compacted = f"txn-{tag}", f"cmp-{tag}"
    torn, changed, deep, holed = (f"dmg-{kind}-{tag}" for kind in ("torn", "rot", "deep", "hole"))
    _transactional_and_compacted(lab, txn, compacted)
    for topic, count in ((torn, 200), (changed, 200), (deep, 400), (holed, 80)):
        _produce_known_values(lab, topic, count)
    live = f"live-{tag}"
    admin.create_topic(lab.primary, live, 3)
    seed(lab, live, 60)
    for topic in (txn, compacted, torn, changed, deep, holed):  # names of [a-z0-9-] only
        wait_mirrored(lab.primary, lab.mirror, topic)
    backup = cli_json(lab, "backup")
    copy_id = f"{backup['backup_id']}-damaged"
    # Record 41 is partition 1's 21st of 40. The mirror lost it before the heads were
    # captured, so the manifest agrees with the snapshot: the restored head equals the
    # manifest, its 39 records all appear in order on the primary, yet not as a run.
    lost = RemoveRecord(holed, 1, b"VALUE-00041-ORIGINAL")
    surgeries = [truncate_tail(torn, 1, drop_bytes=30), _changed(changed, 198)]
    surgeries += [_changed(deep, 10), lost]

    def every_surgery(log_dir: Path) -> None:
        for surgery in surgeries:
            surgery(log_dir)

    doctor(
        Backups(lab.config), backup["backup_id"], copy_id, every_surgery, lost.record_in_manifest
    )
    bootstrap = cli_json(lab, "restore", copy_id)["bootstrap"]
    try:
        yield DamagedCopy(
            backup, copy_id, txn, compacted, torn, changed, deep, holed, live, bootstrap
        )
    finally:
        LocalPlatform(lab.config).stop_restored(copy_id)


def _unhealthy(report: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (p["topic"], p["partition"]): p
        for p in report["partitions"]
        if p["status"] not in ("consistent", "behind")
    }


def test_transactional_and_compacted_topics_verify_consistent(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    txn, compacted = damaged.txn, damaged.compacted
    heads = {(p["topic"], p["partition"]): p for p in damaged.backup["manifest"]["partitions"]}
    assert heads[(compacted, 0)]["compacted"] is True
    # Committed records only: the aborted batches never reach the mirror.
    mirrored_values = sum(len(heads[(txn, p)]["head"]) for p in range(2))
    assert mirrored_values == 40
    # The copy's damage is to other topics; its brokers recovered every log (no clean
    # shutdown marker), these too. --topic limits the verify to ours.
    report = cli_json(lab, "verify", damaged.copy_id, "--deep", "--topic", f"{txn}|{compacted}")
    assert report["topic_filter"] == f"{txn}|{compacted}"
    ours = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert sorted(ours) == [(compacted, 0), (txn, 0), (txn, 1)]
    assert all(p["status"] in ("consistent", "behind") for p in ours.values()), ours
    assert all(p["records_compared"] > 0 for p in ours.values()), ours
    assert report["verdict"] == "consistent"


def test_one_verify_of_every_case_names_each_damage_and_nothing_else(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    # Every topic of the copy's cases, not the whole session lab: other modules leave
    # topics in states of their own (records deleted on the primary, compaction going on).
    cases = "|".join(damaged.topics())
    report = cli_json(lab, "verify", damaged.copy_id, "--topic", cases, expect=1)
    assert report["verdict"] == "inconsistent"
    assert {p["topic"] for p in report["partitions"]} == set(damaged.topics())
    # Head windows only: the deep topic's damage is before its window, so not named here.
    assert sorted(_unhealthy(report)) == sorted(
        [(damaged.torn, 1), (damaged.changed, 0), (damaged.holed, 1)]
    )


def test_verify_catches_a_partition_truncated_in_the_snapshot(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    topic = damaged.torn
    report = cli_json(lab, "verify", damaged.copy_id, "--topic", topic, expect=1)
    statuses = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert sorted(statuses) == [(topic, 0), (topic, 1)]
    assert statuses[(topic, 1)]["status"] == "divergent"
    assert statuses[(topic, 1)]["restored_end_offset"] < statuses[(topic, 1)]["manifest_end_offset"]
    assert statuses[(topic, 0)]["status"] in ("consistent", "behind")


def test_verify_catches_a_changed_value(lab: LabHandle, damaged: DamagedCopy) -> None:
    # Record 198 is in partition 0 and within the head window.
    topic = damaged.changed
    report = cli_json(lab, "verify", damaged.copy_id, "--topic", topic, expect=1)
    bad = list(_unhealthy(report).values())
    assert [(p["topic"], p["partition"]) for p in bad] == [(topic, 0)]
    assert bad[0]["status"] == "divergent" and "differ" in bad[0]["detail"]


def test_deep_verify_catches_a_value_changed_before_the_head_window_in_workers_or_not(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    # 200 records a partition: record 10 (partition 0's 6th) is far before the head window
    # of 64, so only --deep reads it.
    topic, copy_id = damaged.deep, damaged.copy_id
    heads = cli_json(lab, "verify", copy_id, "--topic", topic)
    assert heads["verdict"] == "consistent"  # the surgery is outside every head window
    # The same judgement whether partitions are compared in one process or in workers.
    reports = {
        workers: cli_json(
            lab, "verify", copy_id, "--deep", "--workers", workers, "--topic", topic, expect=1
        )
        for workers in ("1", "2")
    }
    for report in reports.values():
        assert {p["topic"] for p in report["partitions"]} == {topic}
        bad = list(_unhealthy(report).values())
        assert [(p["topic"], p["partition"]) for p in bad] == [(topic, 0)], bad
        assert "restored offset 5 differs" in bad[0]["detail"], bad[0]
        ours = {p["partition"]: p for p in report["partitions"]}
        assert ours[1]["records_compared"] == 200
    assert reports["1"]["partitions"] == reports["2"]["partitions"]
    # A --topic that names nothing in the backup: one line, exit 2, nothing read or written.
    catalog = Backups(lab.config).catalog
    verifies = catalog.list_keys(f"backups/{copy_id}/")
    refused = cli(lab, "verify", copy_id, "--topic", "no-such-topic-.*", "--output", "json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout) == {
        "error": f"backup {copy_id}: no topic matches --topic 'no-such-topic-.*'",
        "exit_code": 2,
    }
    assert catalog.list_keys(f"backups/{copy_id}/") == verifies


def test_verify_catches_a_record_missing_inside_the_head_window(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    # 40 records a partition, all inside the default head window of 64.
    topic = damaged.holed
    result = cli(lab, "verify", damaged.copy_id, "--topic", topic, "--output", "json")
    report = json.loads(result.stdout)
    statuses = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert statuses[(topic, 1)]["heads_match_manifest"] is True  # the surgery is as meant
    assert statuses[(topic, 1)]["status"] == "divergent", statuses[(topic, 1)]
    assert statuses[(topic, 0)]["status"] == "consistent", statuses[(topic, 0)]
    assert result.returncode == 1 and report["verdict"] == "inconsistent"


def test_verify_catches_a_duplicated_record_and_a_missing_topic(
    lab: LabHandle, damaged: DamagedCopy
) -> None:
    topic, restored = damaged.live, damaged.bootstrap
    last = partition_records(restored, topic, 0)[-1]
    producing.produce(
        restored, [Record(topic, 0, -1, last.timestamp, last.key, last.value, last.headers)]
    )
    report = cli_json(lab, "verify", damaged.copy_id, "--topic", topic, expect=1)
    statuses = {(p["topic"], p["partition"]): p["status"] for p in report["partitions"]}
    assert statuses[(topic, 0)] == "divergent"
    assert statuses[(topic, 1)] in ("consistent", "behind")

    kafka_tools.delete_topics(restored, [topic])
    wait_for(
        f"topic {topic} gone from the restored cluster",
        lambda: topic not in admin.topics(restored),
        60,
    )
    report = cli_json(lab, "verify", damaged.copy_id, "--topic", topic, expect=1)
    missing = sorted(
        p["partition"]
        for p in report["partitions"]
        if p["topic"] == topic and p["status"] == "missing"
    )
    assert missing == [0, 1, 2]


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

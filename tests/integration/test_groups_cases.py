"""Consumer groups on the harder topics of issue 8, on the real lab through the CLI: a group
that committed mid-stream while a producer keeps writing (and never committed on one
partition), a compacted topic whose record before the group's offset was compacted away,
and a group whose records aged out of the primary, so only MM2's checkpoint is left.

Each oracle is independent of the translation: content read from both clusters."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from kasten_bp.consistency.group_positions import cut_end
from kasten_bp.groups import committed
from kasten_bp.kafka import admin, clients, producing
from kasten_bp.manifest import Manifest
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from . import kafka_tools
from .helpers import (
    BackgroundProducer,
    LabHandle,
    cli_json,
    cli_with_json,
    contents,
    lab_consume,
    partition_records,
    wait_mirrored,
)

pytestmark = pytest.mark.integration


def run_json(lab: LabHandle, *args: str) -> dict[str, Any]:
    result = cli_with_json(lab, *args)
    assert result.returncode == 0, (result.stderr[-2000:], _not_consistent(result.stdout))
    return dict(json.loads(result.stdout))


def _not_consistent(stdout: str) -> object:
    """What a failed verify found (its partitions that are not consistent)."""
    try:
        report = json.loads(stdout)
    except ValueError:
        return stdout[-2000:]
    return [
        (p["topic"], p["partition"], p.get("detail"))
        for p in report.get("partitions", [])
        if p.get("status") not in ("consistent", "behind")
    ]


def commit_as_consumer(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit like an application with manually assigned partitions (no join, no rebalance)."""
    consumer = clients.consumer(bootstrap, {"group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        consumer.assign(tps)
        consumer.commit(offsets=tps, asynchronous=False)
    finally:
        consumer.close()


def the_partition(plan: dict[str, Any], group: str) -> list[dict[str, Any]]:
    (g,) = [g for g in plan["groups"] if g["group"] == group]
    return list(g["partitions"])


def test_a_group_committed_mid_stream_under_load_resumes_exactly_one_partition_unset(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    topic = f"cgl-{uuid.uuid4().hex[:8]}"
    group = f"load-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 3)
    with BackgroundProducer(lab.primary, topic, rate=150):
        wait_for(
            "the producer to write to every partition",
            lambda: all(
                high >= 20
                for _, high in admin.watermarks(
                    lab.primary, [(topic, p) for p in range(3)]
                ).values()
            ),
            60,
        )
        # Mid-stream: positions inside what has been written, on two partitions only.
        marks = admin.watermarks(lab.primary, [(topic, 0), (topic, 1)])
        wanted = {key: high // 2 for key, (_, high) in marks.items()}
        commit_as_consumer(lab.primary, group, wanted)
        # MM2 mirrors past the positions before the backup (else they are past its cut).
        wait_for(
            f"MM2 to mirror {topic} past the group's positions",
            lambda: (
                all(
                    admin.watermarks(lab.mirror, [key])[key][1] > offset
                    for key, offset in wanted.items()
                )
                if topic in admin.topics(lab.mirror)
                else False
            ),
            120,
        )
        backup = cli_json(lab, "backup", "--group", group)
    recorded = {g["group"]: g for g in backup["manifest"]["groups"]}
    assert {
        (p["topic"], p["partition"]): p["committed_offset"] for p in recorded[group]["partitions"]
    } == wanted

    restore = run_json(lab, "restore", backup["backup_id"], "--with-groups")
    restored_ids.append(backup["backup_id"])
    bootstrap = restore["bootstrap"]
    parts = the_partition(restore, group)
    assert sorted((p["topic"], p["partition"]) for p in parts) == sorted(wanted)
    assert {(p["method"], p["reread"]) for p in parts} == {("exact", 0)}

    manifest = Manifest.model_validate(backup["manifest"])
    heads = {h.partition: h for h in manifest.partitions if h.primary_topic == topic}
    positions = committed(bootstrap, group, [(topic, p) for p in range(3)])
    # The partition the group never committed on has no offset on the restored cluster
    # either (MM2's offset sync cannot have set one: there is none to translate).
    assert sorted(positions) == sorted(wanted)
    for (t, partition), p_offset in wanted.items():
        end = cut_end(heads[partition])
        assert end is not None
        unread = [
            r for r in partition_records(lab.primary, t, partition) if p_offset <= r.offset < end
        ]
        ahead = [
            r
            for r in partition_records(bootstrap, t, partition)
            if positions[(t, partition)] <= r.offset < heads[partition].end_offset
        ]
        assert unread and contents(ahead) == contents(unread), partition

    report = run_json(lab, "verify", backup["backup_id"])
    (standing,) = [g for g in report["groups"] if g["group"] == group]
    assert standing["status"] == "exact"
    assert sorted((p["topic"], p["partition"]) for p in standing["partitions"]) == sorted(wanted)


def _compacted_gap(records: list[int]) -> int | None:
    """An offset P whose record P-1 is gone while an earlier record survives."""
    for earlier, later in zip(records, records[1:], strict=False):
        if later - earlier > 1:
            return later
    return None


@dataclass(frozen=True)
class CompactedCase:
    topic: str
    group: str
    p_offset: int  # the group's offset on the primary: its record before was compacted away


@dataclass(frozen=True)
class AgedCase:
    topic: str
    group: str
    last_read: Record  # the last record the group read, gone from the primary since


@dataclass(frozen=True)
class TwoGroupsBackup:
    """One backup of both groups below, restored without groups: a backup and a restore
    are the suite's dearest steps. Each case plans (and applies) its own group only."""

    backup: dict[str, Any]
    bootstrap: str
    compacted: CompactedCase
    aged: AgedCase


def _compacted_case(lab: LabHandle) -> CompactedCase:
    """A compacted topic whose group committed at an offset P whose record P-1 the log
    cleaner removed on the primary, while an earlier record survives."""
    topic = f"cgc-{uuid.uuid4().hex[:8]}"
    group = f"cmp-{uuid.uuid4().hex[:6]}"
    admin.create_topic(
        lab.primary,
        topic,
        1,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100",
        },
    )
    # Rounds of the same five keys, each in a new segment: the cleaner keeps the newest.
    for round_ in range(8):
        producing.produce(
            lab.primary,
            [
                Record(topic, 0, -1, 0, f"k{k}".encode(), f"r{round_}-k{k}".encode(), ())
                for k in range(5)
            ],
        )
        time.sleep(0.15)

    def compacted() -> bool:
        producing.produce(lab.primary, [Record(topic, 0, -1, 0, b"roll", b"roll", ())])
        offsets = [r.offset for r in partition_records(lab.primary, topic, 0)]
        return _compacted_gap(offsets) is not None

    wait_for(f"the log cleaner to compact {topic} on the primary", compacted, 120, interval=2)
    primary_before = partition_records(lab.primary, topic, 0)
    p_offset = _compacted_gap([r.offset for r in primary_before])
    assert p_offset is not None
    commit_as_consumer(lab.primary, group, {(topic, 0): p_offset})
    wait_mirrored(lab.primary, lab.mirror, topic)
    return CompactedCase(topic, group, p_offset)


def _aged_case(lab: LabHandle) -> AgedCase:
    """A group that read 30 of 60 records, whose first 40 records then aged out of the
    primary: MM2's checkpoint is all that is left to place it."""
    topic = f"cga-{uuid.uuid4().hex[:8]}"
    group = f"aged-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 1)
    producing.produce(
        lab.primary,
        [Record(topic, 0, -1, 0, f"k{i}".encode(), f"v{i}".encode(), ()) for i in range(60)],
    )
    wait_mirrored(lab.primary, lab.mirror, topic)
    assert lab.lab is not None
    assert lab_consume(lab, group, topic, 30)["committed"] == {"0": 30}
    last_read = partition_records(lab.primary, topic, 0)[29]
    # MM2's checkpoint connector has seen the commit (it emits every second in the lab).
    wait_for(
        f"MM2's offset sync of {group} to the mirror",
        lambda: committed(lab.mirror, group, [(topic, 0)]).get((topic, 0), 0) > 0,
        120,
    )
    # The records up to the group's position age out of the primary (its log start moves
    # past them, as retention would); the mirror still holds them.
    kafka_tools.delete_records(lab.primary, {(topic, 0): 40})
    return AgedCase(topic, group, last_read)


@pytest.fixture(scope="module")
def two_groups(lab: LabHandle) -> Iterator[TwoGroupsBackup]:
    compacted, aged = _compacted_case(lab), _aged_case(lab)
    backup = cli_json(lab, "backup", "--group", compacted.group, "--group", aged.group)
    backup_id = backup["backup_id"]
    bootstrap = cli_json(lab, "restore", backup_id)["bootstrap"]
    try:
        yield TwoGroupsBackup(backup, bootstrap, compacted, aged)
    finally:
        LocalPlatform(lab.config).stop_restored(backup_id)


def test_a_compacted_away_record_falls_back_to_an_earlier_one_and_counts_the_reread(
    lab: LabHandle, two_groups: TwoGroupsBackup
) -> None:
    case, backup, bootstrap = two_groups.compacted, two_groups.backup, two_groups.bootstrap
    topic, group, p_offset = case.topic, case.group, case.p_offset
    only = ("--group", group)
    plan = run_json(lab, "groups", "plan", backup["backup_id"], "--restored", bootstrap, *only)
    (p,) = the_partition(plan, group)
    assert p["primary_offset"] == p_offset
    assert p["method"] == "earlier_record", p
    assert p["reread"] is not None and p["restored_offset"] is not None

    # The oracle, by content. Nothing the group had not read on the primary lies before its
    # restored position (no skip), and what lies between its position and the first such
    # record is exactly `reread` records, all of which it had read (or that are gone there).
    manifest = Manifest.model_validate(backup["manifest"])
    (head,) = [h for h in manifest.partitions if h.primary_topic == topic]
    end = cut_end(head)
    assert end is not None
    primary_now = {r.digest(): r.offset for r in partition_records(lab.primary, topic, 0)}
    restored = [r for r in partition_records(bootstrap, topic, 0) if r.offset < head.end_offset]
    unread = [r for r in restored if p_offset <= primary_now.get(r.digest(), -1) < end]
    assert unread, "the group has unread records in the backup"
    assert all(r.offset >= p["restored_offset"] for r in unread)
    between = [r for r in restored if p["restored_offset"] <= r.offset < unread[0].offset]
    assert len(between) == p["reread"]
    assert all(primary_now.get(r.digest(), -1) < p_offset for r in between)

    applied = run_json(lab, "groups", "apply", backup["backup_id"], "--restored", bootstrap, *only)
    assert the_partition(applied, group)[0]["restored_offset"] == p["restored_offset"]
    report = run_json(lab, "verify", backup["backup_id"], "--topic", topic)
    (standing,) = [g for g in report["groups"] if g["group"] == group]
    assert standing["status"] == "exact"


def test_a_group_whose_records_aged_out_of_the_primary_falls_back_to_mm2s_checkpoint(
    lab: LabHandle, two_groups: TwoGroupsBackup
) -> None:
    case, backup, bootstrap = two_groups.aged, two_groups.backup, two_groups.bootstrap
    topic, group = case.topic, case.group
    (captured,) = [g for g in backup["manifest"]["groups"] if g["group"] == group]
    (gp,) = captured["partitions"]
    assert gp["committed_offset"] == 30 and gp["checkpoint"] is not None
    only = ("--group", group)
    plan = run_json(lab, "groups", "plan", backup["backup_id"], "--restored", bootstrap, *only)
    (p,) = the_partition(plan, group)
    assert p["method"] == "checkpoint", p
    assert p["restored_offset"] == gp["checkpoint"]["downstream_offset"] == p["checkpoint_offset"]
    assert p["reread"] is None  # unknown: MM2's translation is approximate by design
    # Where the exact position is (the restored twin of the last record the group read):
    # MM2's answer is never ahead of it (at-least-once), so nothing is skipped.
    twin = [
        r.offset
        for r in partition_records(bootstrap, topic, 0)
        if r.digest() == case.last_read.digest()
    ]
    assert len(twin) == 1
    assert p["restored_offset"] <= twin[0] + 1

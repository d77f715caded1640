"""Consumer groups through a restore (issue 8), on the real lab through the CLI: a group
that committed mid-stream is recorded by the backup, `restore --with-groups` sets it on the
restored cluster exactly, `verify` says so, a second `apply` writes nothing, an offset moved
afterwards is caught as `ahead` (verdict fails) or `behind` with the count, and `apply`
refuses a group with a live member."""

from __future__ import annotations

import json
import uuid

import pytest

from kasten_bp.groups import committed
from kasten_bp.kafka import admin, clients, group_offsets, producing
from kasten_bp.records import Record

from .helpers import (
    LabHandle,
    cli_json,
    cli_with_json,
    contents,
    lab_consume,
    partition_records,
    wait_mirrored,
)

pytestmark = pytest.mark.integration


def test_groups_restored_exactly_verified_and_faults_caught(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    topic = f"cg-{uuid.uuid4().hex[:8]}"
    group = f"app-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 3)
    producing.produce(
        lab.primary,
        [Record(topic, i % 3, -1, 0, f"k{i}".encode(), f"v{i}".encode(), ()) for i in range(90)],
    )
    consumed = lab_consume(lab, group, topic, 40)
    assert consumed["records"] == 40
    wait_mirrored(lab.primary, lab.mirror, topic)

    backup = cli_json(lab, "backup", "--group", group)
    recorded = {g["group"]: g for g in backup["manifest"]["groups"]}
    assert set(recorded) == {group}
    primary_committed = {
        (p["topic"], p["partition"]): p["committed_offset"] for p in recorded[group]["partitions"]
    }
    assert sum(primary_committed.values()) == 40

    restore = cli_with_json(lab, "restore", backup["backup_id"], "--with-groups")
    assert restore.returncode == 0, restore.stderr[-2000:]
    restored_ids.append(backup["backup_id"])
    restored = json.loads(restore.stdout)
    bootstrap = restored["bootstrap"]
    (applied,) = restored["groups"]
    assert applied["group"] == group
    for p in applied["partitions"]:
        assert set(p) >= {
            "topic",
            "restored_topic",
            "partition",
            "primary_offset",
            "restored_offset",
            "method",
            "reread",
        }
        assert (p["method"], p["reread"]) == ("exact", 0), p
    # The oracle, by content: from the group's restored position a consumer reads exactly
    # what it had not read on the primary, up to the cut. A partition the group never
    # committed on stays without an offset.
    keys = [(topic, p) for p in range(3)]
    positions = committed(bootstrap, group, keys)
    assert sorted(positions) == sorted(primary_committed)
    for key in primary_committed:
        unread = [
            r for r in partition_records(lab.primary, *key) if r.offset >= primary_committed[key]
        ]
        ahead = [r for r in partition_records(bootstrap, *key) if r.offset >= positions[key]]
        assert contents(ahead) == contents(unread), key

    report = json.loads(cli_with_json(lab, "verify", backup["backup_id"]).stdout)
    assert report["verdict"] == "consistent", [
        (p["topic"], p["partition"], p["status"], p.get("detail"))
        for p in report["partitions"]
        if p["status"] not in ("consistent", "behind")
    ]
    (standing,) = report["groups"]
    assert standing["status"] == "exact"
    assert {p["status"] for p in standing["partitions"]} == {"exact"}

    again = cli_with_json(lab, "groups", "apply", backup["backup_id"], "--restored", bootstrap)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not any(
        p["written"] for g in json.loads(again.stdout)["groups"] for p in g["partitions"]
    )

    # Faults: a group moved forward would skip records (fails the verdict); back, re-read.
    first, second = sorted(positions)[:2]
    moved = {first: positions[first] + 3, second: positions[second] - 2}
    group_offsets.alter(bootstrap, group, moved)
    failed = cli_with_json(lab, "verify", backup["backup_id"])
    assert failed.returncode == 1, failed.stderr[-2000:]
    parts = {
        (p["topic"], p["partition"]): p
        for p in json.loads(failed.stdout)["groups"][0]["partitions"]
    }
    assert (parts[first]["status"], parts[first]["records"]) == ("ahead", 3)
    assert (parts[second]["status"], parts[second]["records"]) == ("behind", 2)
    assert all(parts[k]["status"] == "exact" for k in positions if k not in moved)

    # A live member on the restored cluster: apply refuses, one line, nothing changed.
    member = clients.consumer(bootstrap, {"group.id": group, "session.timeout.ms": 10000})
    try:
        member.subscribe([topic])
        for _ in range(60):
            member.poll(0.5)
            if member.assignment():
                break
        assert member.assignment()
        refused = cli_with_json(
            lab, "groups", "apply", backup["backup_id"], "--restored", bootstrap
        )
        assert refused.returncode == 2, refused.stderr[-2000:]
        line = refused.stderr.strip().splitlines()[-1]
        assert f"group {group} has 1 active member(s)" in line
        assert committed(bootstrap, group, sorted(moved)) == moved
    finally:
        member.close()


def test_plan_json_names_the_fields_scripts_rely_on(
    lab: LabHandle, restored_ids: list[str]
) -> None:
    topic = f"cg-{uuid.uuid4().hex[:8]}"
    group = f"plan-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 1)
    producing.produce(
        lab.primary, [Record(topic, 0, -1, 0, None, f"v{i}".encode(), ()) for i in range(12)]
    )
    lab_consume(lab, group, topic, 5)
    wait_mirrored(lab.primary, lab.mirror, topic)
    backup = cli_json(lab, "backup", "--group", group)
    bootstrap = cli_json(lab, "restore", backup["backup_id"])["bootstrap"]
    restored_ids.append(backup["backup_id"])
    # What the snapshot brought along: MM2's own offset sync (sync.group.offsets.enabled)
    # may have set the group on the mirror, at its approximate translation.
    before = committed(bootstrap, group, [(topic, 0)])
    result = cli_with_json(lab, "groups", "plan", backup["backup_id"], "--restored", bootstrap)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    assert plan["backup_id"] == backup["backup_id"]
    (g,) = plan["groups"]
    assert (g["group"], g["state"]) == (group, "EMPTY")
    (p,) = g["partitions"]
    assert (p["topic"], p["restored_topic"], p["partition"], p["primary_offset"]) == (
        topic,
        topic,
        0,
        5,
    )
    assert (p["method"], p["reread"]) == ("exact", 0)
    # plan changes nothing on the restored cluster; MM2's sync, where it set the group,
    # is never ahead of the exact position (it may be behind: at-least-once).
    assert committed(bootstrap, group, [(topic, 0)]) == before
    assert all(offset <= p["restored_offset"] for offset in before.values())


def test_apply_refuses_the_primary_and_the_live_mirror(lab: LabHandle) -> None:
    """`groups apply` commits offsets (issue 28): pointed at the primary or the live mirror
    it would move production's consumers; it refuses in one line and commits nothing."""
    topic = f"cg-{uuid.uuid4().hex[:8]}"
    group = f"live-{uuid.uuid4().hex[:6]}"
    admin.create_topic(lab.primary, topic, 1)
    producing.produce(
        lab.primary, [Record(topic, 0, -1, 0, None, f"v{i}".encode(), ()) for i in range(6)]
    )
    lab_consume(lab, group, topic, 2)
    wait_mirrored(lab.primary, lab.mirror, topic)
    backup = cli_json(lab, "backup", "--group", group)
    before = committed(lab.primary, group, [(topic, 0)])
    for name, bootstrap in (("primary", lab.primary), ("mirror", lab.mirror)):
        one = bootstrap.split(",")[-1]  # any one of its addresses is that cluster
        refused = cli_with_json(lab, "groups", "apply", backup["backup_id"], "--restored", one)
        assert refused.returncode == 2, refused.stderr[-2000:]
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: --restored {one} is the {name} cluster ({bootstrap}): groups apply "
            "commits offsets only onto a restored cluster"
        ]
    assert committed(lab.primary, group, [(topic, 0)]) == before

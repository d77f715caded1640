"""The main job on the real lab: consistent backup under writes, restore, verify."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.connect import ConnectClient
from kasten_bp.kafka import admin, producing
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.journal import DeferredRecord, Journal, StepRecord

from .helpers import (
    BackgroundProducer,
    LabHandle,
    assert_all_mirrored,
    assert_mirror_running,
    cli,
    cli_json,
    seed,
)

pytestmark = pytest.mark.integration


def test_consistent_backup_under_writes_restores_and_verifies(
    lab: LabHandle, topic: str, restored_ids: list[str]
) -> None:
    seed(lab, topic)
    with BackgroundProducer(lab.primary, topic, rate=150) as writer:
        result = cli_json(lab, "backup")
    assert result["status"] == "COMPLETED" and result["mode"] == "consistent"
    assert [s["name"] for s in result["steps"]] == [
        "preflight",
        "discover_topics",
        "pause_mirrormaker",
        "wait_caught_up",
        "advance_mm2_offsets",
        "capture_heads",
        "capture_groups",
        "stop_brokers",
        "snapshot_volumes",
        "start_brokers",  # deferred, newest first
        "resume_mirrormaker",
        "seal_snapshots",  # checks, once the mirror serves again
        "seal_content",
        "confirm_replication",
    ]
    assert [s["name"] for s in result["steps"] if s["deferred"]] == [
        "start_brokers",
        "resume_mirrormaker",
    ]
    assert all(s["status"] == "done" for s in result["steps"])
    assert result["downtime_seconds"] > 0 and result["mirror_unavailable_seconds"] > 0
    manifest = result["manifest"]
    ours = [p for p in manifest["partitions"] if p["topic"] == topic]
    assert len(ours) == 3 and all(
        p["head"] and p["head"][-1]["primary_offset"] is not None for p in ours
    )
    assert len(manifest["snapshots"]) == 3 and all(s["checksum"] for s in manifest["snapshots"])
    # MM2 replicates what was written during and after the backup.
    assert_all_mirrored(lab, topic, writer.acked)
    assert_mirror_running(lab)

    backup_id = result["backup_id"]
    restored = cli_json(lab, "restore", backup_id)
    restored_ids.append(backup_id)
    assert restored["bootstrap"].startswith("127.0.0.1:")
    report = cli_json(lab, "verify", backup_id)
    assert report["verdict"] == "consistent"
    mine = [p for p in report["partitions"] if p["topic"] == topic]
    assert {p["status"] for p in mine} <= {"consistent", "behind"}
    assert all(p["heads_match_manifest"] for p in mine)
    # The primary kept receiving records after the cut: the RPO is visible.
    assert sum(p["records_behind"] for p in mine) > 0

    # Every record of this topic (the session lab's others belong to other tests).
    deep = cli_json(lab, "verify", backup_id, "--deep", "--topic", topic)
    assert deep["verdict"] == "consistent"
    assert sum(p["records_compared"] for p in deep["partitions"] if p["topic"] == topic) == sum(
        p["end_offset"] - p["log_start_offset"] for p in ours
    )

    # One foreign record at a restored head: verify exits 1 and names that partition.
    producing.produce(restored["bootstrap"], [Record(topic, 2, -1, 0, b"intruder", b"x", ())])
    result = cli(lab, "verify", backup_id, "--output", "json")
    assert result.returncode == 1
    bad = [p for p in json.loads(result.stdout)["partitions"] if p["status"] == "divergent"]
    assert [(p["topic"], p["partition"]) for p in bad] == [(topic, 2)]
    text = cli(lab, "verify", backup_id)
    assert text.returncode == 1 and f"{topic}[2]" in text.stdout and "divergent" in text.stdout


class _WritesLandBeforeTheCopy:
    """An engine listener for a hot backup: once the heads are captured, and before the
    volumes are copied, it waits until MM2 (never stopped in hot mode) has put records on
    every partition of `topic` past the manifest's end. The copy is then certain to hold
    writes the manifest does not, rather than by luck of timing."""

    def __init__(self, lab: LabHandle, topic: str) -> None:
        self.lab = lab
        self.topic = topic
        self.mirror_ends: dict[int, int] = {}

    def step_started(self, journal: Journal, record: StepRecord | DeferredRecord) -> None:
        return None

    def run_state(self, journal: Journal) -> None:
        return None

    def step_finished(self, journal: Journal, record: StepRecord | DeferredRecord) -> None:
        if not isinstance(record, StepRecord) or record.name != "capture_heads":
            return
        if record.error is not None:
            return
        manifest = Backups(self.lab.config).catalog.read_json(
            backup_key(journal.backup_id, "manifest.json")
        )
        assert manifest is not None
        ends = {
            p["partition"]: p["end_offset"]
            for p in manifest["partitions"]
            if p["topic"] == self.topic
        }
        assert len(ends) == 3, ends

        def landed() -> bool:
            marks = admin.watermarks(self.lab.mirror, [(self.topic, p) for p in ends])
            self.mirror_ends = {p: marks[(self.topic, p)][1] for p in ends}
            return all(self.mirror_ends[p] > end for p, end in ends.items())

        wait_for(f"new records of {self.topic} on the mirror after the heads", landed, 120)


def test_hot_backup_of_a_mirror_under_writes_reports_the_torn_cut(
    lab: LabHandle, topic: str, restored_ids: list[str]
) -> None:
    """A hot copy is taken while MM2 writes: partitions written between the capture of the
    heads and the copy restore past the manifest, and verify must say so; partitions
    nobody wrote to restore exactly as captured."""
    seed(lab, topic)  # `topic` is quiet during the backup
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, busy, 3)
    seed(lab, busy)
    landing = _WritesLandBeforeTheCopy(lab, busy)
    with BackgroundProducer(lab.primary, busy, rate=200) as writer:
        result = Backups(lab.config, [landing]).backup("hot")
    assert result["status"] == "COMPLETED" and result["mode"] == "hot"
    assert result["downtime_seconds"] is None  # MM2 was never stopped
    backup_id = result["backup_id"]
    manifest_ends = {
        (p["topic"], p["partition"]): p["end_offset"]
        for p in result["manifest"]["partitions"]
        if p["topic"] in (topic, busy)
    }
    assert len(manifest_ends) == 6
    cli_json(lab, "restore", backup_id)
    restored_ids.append(backup_id)

    outcome = cli(lab, "verify", backup_id, "--output", "json")
    report = json.loads(outcome.stdout)
    assert outcome.returncode == 1 and report["verdict"] == "inconsistent"
    ours = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    for partition in range(3):
        written = ours[(busy, partition)]
        manifest_end = manifest_ends[(busy, partition)]
        # The copy holds at least what was on the mirror when the writes had landed.
        assert written["restored_end_offset"] >= landing.mirror_ends[partition] > manifest_end
        assert written["manifest_end_offset"] == manifest_end
        assert written["status"] == "divergent" and written["heads_match_manifest"] is False
        assert written["detail"] == (
            f"restored end offset {written['restored_end_offset']} != manifest {manifest_end}"
        )
        quiet = ours[(topic, partition)]
        assert quiet["status"] == "consistent", quiet
        assert quiet["heads_match_manifest"] is True and quiet["records_behind"] == 0
        assert quiet["restored_end_offset"] == manifest_ends[(topic, partition)]
    # MM2 kept replicating through the backup and lost nothing.
    assert_all_mirrored(lab, busy, writer.acked)


def test_dry_run_checks_and_changes_nothing(lab: LabHandle) -> None:
    assert lab.lab is not None
    before = Backups(lab.config).store.all()
    pids = [b.handle.pid() for b in lab.lab.require_state().mirror.brokers]
    plan = cli_json(lab, "backup", "--dry-run")
    assert (
        plan["dry_run"] is True
        and plan["plan"][0] == "preflight"
        and "snapshot_volumes" in plan["plan"]
    )
    assert Backups(lab.config).store.all() == before
    assert [b.handle.pid() for b in lab.lab.require_state().mirror.brokers] == pids
    with ConnectClient(lab.config.connect.url) as client:
        assert all(client.state(n) == "RUNNING" for n in lab.config.connect.connectors)


def test_a_second_concurrent_backup_is_refused(lab: LabHandle) -> None:
    with LocalPlatform(lab.config).lock("test holding the lock"):
        result = cli(lab, "backup")
    assert result.returncode == 2
    assert "holds the lock" in result.stderr and result.stderr.strip().count("\n") == 0


def test_bad_config_is_a_usage_error(lab: LabHandle, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("primary: {bootstrap: 127.0.0.1:1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", "backup", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "mirror" in result.stderr
    assert cli(lab, "backup", "--mode", "lukewarm").returncode == 2
    assert cli(lab, "restore", "bk-does-not-exist").returncode == 2


def test_runbook_verbs_quiesce_snapshot_resume(lab: LabHandle, topic: str) -> None:
    assert lab.lab is not None
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        held = cli_json(lab, "quiesce")
        assert held["status"] == "HELD"
        assert not any(b.handle.alive() for b in lab.lab.require_state().mirror.brokers)
        # What carries data into the backup is stopped; the heartbeat connector, which
        # writes only the out-of-scope `heartbeats` topic, is left running.
        with ConnectClient(lab.config.connect.url) as client:
            states = {n: client.state(n) for n in lab.config.connect.connectors}
        assert sorted(states.values()) == ["RUNNING", "STOPPED", "STOPPED"], states
        assert [n for n, s in states.items() if s == "RUNNING"] == [
            n for n in states if n.endswith(".MirrorHeartbeatConnector")
        ]
        assert held["manifest"]["connectors"] == dict.fromkeys(states, "RUNNING")
        status = cli_json(lab, "status")
        assert [c["backup_id"] for c in status["current"]] == [held["backup_id"]]
        snap = cli_json(lab, "snapshot")
        assert snap["status"] == "HELD" and len(snap["manifest"]["snapshots"]) == 3
        done = cli_json(lab, "resume")
        assert done["status"] == "COMPLETED"
        again = cli_json(lab, "resume")
        assert again["status"] == "nothing to resume"
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)

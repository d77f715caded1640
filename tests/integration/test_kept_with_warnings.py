"""A backup kept with warnings is restorable (issue 27, point 6), on the path the issue
walked: `quiesce --hold-timeout`, `snapshot`, then the hold expires. The run ends
COMPLETED_WITH_WARNINGS, "the backup is kept", and restore and verify take it, printing
its warnings first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from kasten_bp.backup import Backups
from kasten_bp.kafka import admin
from kasten_bp.platforms.local import LocalPlatform
from kasten_bp.workflow.states import RunState

from .helpers import LabHandle, assert_mirror_running, cli_json, cli_json_for, seed
from .test_hold import HOLD, wait_state


def test_a_backup_kept_after_its_hold_expired_restores_and_verifies(
    lab: LabHandle, topic: str
) -> None:
    seed(lab, topic)
    held = cli_json(lab, "quiesce", "--hold-timeout", HOLD)
    cli_json(lab, "snapshot")
    backup_id = held["backup_id"]
    journal = Backups(lab.config).store.load(backup_id)
    assert journal is not None and journal.hold_deadline is not None
    final = wait_state(lab, backup_id, {RunState.COMPLETED_WITH_WARNINGS}, journal.hold_deadline)
    assert final == RunState.COMPLETED_WITH_WARNINGS
    shown = cli_json(lab, "show", backup_id)
    assert shown["restorable"] is True
    assert {r["backup_id"]: r for r in cli_json(lab, "list")}[backup_id]["restorable"] is True

    done = subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", "restore", backup_id]
        + ["--config", str(lab.config_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert done.returncode == 0, done.stderr
        warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert warned and "hold expired" in warned[0] and backup_id in warned[0]
        report = cli_json(lab, "verify", backup_id, "--topic", topic)
        assert report["verdict"] == "consistent"
    finally:
        LocalPlatform(lab.config).stop_restored(backup_id)


def test_a_primary_topic_not_mirrored_in_time_is_listed_and_warned(
    lab: LabHandle, topic: str
) -> None:
    """No quiet omission (issue 27, point 10): a primary topic MM2 has not created on the
    mirror within the discovery wait is listed in the manifest as `not_in_backup`, and the
    run ends COMPLETED_WITH_WARNINGS (exit 5), kept and restorable."""
    seed(lab, topic)
    source = "primary->mirror.MirrorSourceConnector"
    assert lab.lab is not None
    with lab.lab.connect_client(lab.lab.require_state()) as client:
        client.pause(source)  # MM2 finds no new topic while paused
        try:
            late = f"late-{topic}"
            admin.create_topic(lab.primary, late, 1)
            kept = cli_json(lab, "backup", expect=5)
        finally:
            client.resume(source)
    assert kept["status"] == "COMPLETED_WITH_WARNINGS" and kept["restorable"] is True
    assert kept["manifest"]["not_in_backup"] == [late]
    assert any(late in w and "not in the backup" in w for w in kept["warnings"])
    assert_mirror_running(lab)


def test_a_broker_killed_at_the_stop_is_a_warning_and_its_backup_restores(
    lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    """No quiet omission (issue 27, point 10): a mirror broker that does not stop cleanly
    within broker_stop_timeout_seconds is killed (SIGKILL); the run says so and ends
    COMPLETED_WITH_WARNINGS (exit 5), and the kept backup restores (log recovery) and
    verifies consistent."""
    seed(lab, topic)
    raw = yaml.safe_load(lab.config_path.read_text())
    # A KRaft voter's clean stop takes seconds (the last one waits out Kafka's 5 s).
    raw.setdefault("backup", {})["broker_stop_timeout_seconds"] = 0.2
    impatient = tmp_path / "impatient.yaml"
    impatient.write_text(yaml.safe_dump(raw))
    done = cli_json_for(impatient, "backup", expect=5)
    backup_id = done["backup_id"]
    killed = [w for w in done["warnings"] if "was killed (SIGKILL)" in w]
    assert killed, done["warnings"]
    assert all("did not stop cleanly within 0.2s" in w for w in killed)
    assert done["status"] == RunState.COMPLETED_WITH_WARNINGS and done["restorable"] is True
    assert_mirror_running(lab)
    try:
        cli_json(lab, "restore", backup_id)
        report = cli_json(lab, "verify", backup_id, "--topic", topic)
        assert report["verdict"] == "consistent"
    finally:
        LocalPlatform(lab.config).stop_restored(backup_id)

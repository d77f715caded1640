"""A backup kept with warnings is restorable (issue 27, point 6): its snapshot completed,
so restore, verify, export and replay take it, each printing its warnings first; a backup
whose snapshot did not complete is still refused."""

from __future__ import annotations

from pathlib import Path

import yaml

from kasten_bp.platforms.local import LocalPlatform

from .helpers import BackgroundProducer, LabHandle, cli_json, cli_json_for, seed


def test_a_backup_kept_with_warnings_restores_and_verifies(
    lab: LabHandle, topic: str, tmp_path: Path
) -> None:
    seed(lab, topic)
    # A real warning after the snapshot: MM2 cannot confirm replication within 1 ms while
    # a producer writes during the backup, so the confirm_replication check fails.
    raw = yaml.safe_load(lab.config_path.read_text())
    raw["backup"]["replication_confirm_timeout_seconds"] = 0.001
    config = tmp_path / "impatient.yaml"
    config.write_text(yaml.safe_dump(raw))
    with BackgroundProducer(lab.primary, topic, rate=200):
        kept = cli_json_for(config, "backup", expect=5)
    assert kept["status"] == "COMPLETED_WITH_WARNINGS"
    assert kept["restorable"] is True
    assert any("confirm_replication failed" in w for w in kept["warnings"]), kept["warnings"]
    backup_id = kept["backup_id"]
    listed = {r["backup_id"]: r for r in cli_json(lab, "list")}
    assert listed[backup_id]["restorable"] is True

    done = _run(lab, "restore", backup_id)
    try:
        assert done.returncode == 0, done.stderr
        assert "warning: backup " in done.stderr and "confirm_replication failed" in done.stderr
        report = cli_json(lab, "verify", backup_id, "--topic", topic)
        assert report["verdict"] == "consistent"
    finally:
        LocalPlatform(lab.config).stop_restored(backup_id)


def _run(lab: LabHandle, *args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "kasten_bp.cli", *args, "--config", str(lab.config_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )

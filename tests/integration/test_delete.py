"""`delete` (issue 27, point 7, in part): it takes the lock and refuses an unfinished run,
whose journal is what puts the mirror back; a finished backup is deleted with its
snapshot."""

from __future__ import annotations

from kasten_bp.backup import Backups

from .helpers import LabHandle, assert_mirror_running, cli, cli_json, seed


def test_delete_refuses_a_held_run_and_deletes_a_finished_one(lab: LabHandle, topic: str) -> None:
    seed(lab, topic)
    held = cli_json(lab, "quiesce", "--hold-timeout", "10m")
    backup_id = held["backup_id"]
    try:
        refused = cli(lab, "delete", backup_id, "--confirm")
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert lines == [
            f"error: backup {backup_id} is HELD: an unfinished run is not deleted (its journal "
            "is what puts the mirror back); run `kasten-bp resume` first"
        ]
        assert Backups(lab.config).store.load(backup_id) is not None
    finally:
        # No snapshot was taken: resume rolls the run back (exit 3) and puts the mirror back.
        rolled_back = cli_json(lab, "resume", expect=3)
        assert "resumed before any snapshot was taken" in rolled_back["error"]
    assert_mirror_running(lab)
    # Resumed before its snapshot: rolled back, final, and deletable.
    done = cli_json(lab, "delete", backup_id, "--confirm")
    assert done["backup_id"] == backup_id and done["deleted_keys"] > 0
    assert Backups(lab.config).store.load(backup_id) is None

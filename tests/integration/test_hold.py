"""A quiesce that cannot outlive its hold, on the real lab: the watchdog `quiesce` starts
puts the mirror back at the deadline when no `resume` comes; `resume` cancels it; a late
`snapshot` is refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.hold import DEFAULT_HOLD_SECONDS, iso
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.journal import JOURNAL
from kasten_bp.workflow.states import RunState, StepStatus

from .helpers import (
    BackgroundProducer,
    LabHandle,
    assert_all_mirrored,
    assert_mirror_running,
    cli,
    cli_json,
    seed,
)

HOLD = "20s"


def wait_state(lab: LabHandle, backup_id: str, states: set[RunState], deadline: float) -> str:
    """The run's state once it is one of `states`; bounded by the hold's deadline plus a
    minute, the promise the watchdog makes."""
    store = Backups(lab.config).store

    def reached() -> str | None:
        journal = store.load(backup_id)
        return journal.state if journal and journal.state in states else None

    return wait_for(f"backup {backup_id} to leave its hold", reached, deadline - time.time() + 60)


def watchdog_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_an_unanswered_quiesce_puts_the_mirror_back_at_its_deadline(
    lab: LabHandle, topic: str
) -> None:
    seed(lab, topic)
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        held = cli_json(lab, "quiesce", "--hold-timeout", HOLD)
        assert held["status"] == "HELD" and held["hold_deadline"]
        status = cli_json(lab, "status")
        assert status["current"][0]["hold_deadline"] == held["hold_deadline"]
        assert any("held (quiesced) until" in t for t in status["current"][0]["left_for_a_person"])
        journal = Backups(lab.config).store.load(held["backup_id"])
        assert journal is not None and journal.hold_deadline is not None
        assert watchdog_alive(journal.hold_watchdog["pid"])
        # No snapshot, no resume: the watchdog acts alone.
        final = wait_state(
            lab, held["backup_id"], {RunState.FAILED_ROLLED_BACK}, journal.hold_deadline
        )
        assert final == RunState.FAILED_ROLLED_BACK
        assert_mirror_running(lab)
        journal = Backups(lab.config).store.load(held["backup_id"])
        assert journal is not None and journal.hold_expired
        assert all(d.status == StepStatus.DONE for d in journal.deferred)
        # K10's snapshot hook comes too late: refused, in one line, nothing changed.
        late = cli(lab, "snapshot")
        assert late.returncode == 2
        assert f"backup {held['backup_id']}: its hold expired" in late.stderr
        assert late.stderr.strip().count("\n") == 0
        # ... and the posthook that follows it tells the truth (issue 27): exit 3, one line,
        # so K10 fails that restore point instead of recording it as consistent.
        told = cli(lab, "resume")
        assert told.returncode == 3
        assert told.stderr.strip().splitlines() == [
            f"error: backup {held['backup_id']}: the hold expired at {iso(journal.hold_deadline)} "
            "before the snapshot was taken: this restore point is not consistent"
        ]
    assert_all_mirrored(lab, topic, writer.acked)


def test_a_snapshotted_hold_that_expires_keeps_its_backup(lab: LabHandle, topic: str) -> None:
    seed(lab, topic)
    held = cli_json(lab, "quiesce", "--hold-timeout", HOLD)
    snap = cli_json(lab, "snapshot")
    assert snap["status"] == "HELD" and snap["manifest"]["snapshots"]
    journal = Backups(lab.config).store.load(held["backup_id"])
    assert journal is not None and journal.hold_deadline is not None
    final = wait_state(
        lab, held["backup_id"], {RunState.COMPLETED_WITH_WARNINGS}, journal.hold_deadline
    )
    assert final == RunState.COMPLETED_WITH_WARNINGS
    shown = cli_json(lab, "show", held["backup_id"])
    assert "hold expired" in shown["warnings"][0]
    assert Backups(lab.config).platform.snapshot_dir(held["backup_id"]).exists()  # type: ignore[attr-defined]
    assert_mirror_running(lab)


def test_resume_cancels_the_watchdog(lab: LabHandle, topic: str) -> None:
    seed(lab, topic)
    held = cli_json(lab, "quiesce", "--hold-timeout", "10m")
    journal = Backups(lab.config).store.load(held["backup_id"])
    assert journal is not None
    pid = journal.hold_watchdog["pid"]
    assert watchdog_alive(pid)
    done = cli_json(lab, "resume", "--snapshot-taken")  # K10's posthook, after its snapshot
    assert done["status"] == "COMPLETED" and done["hold_expired"] is False
    steps = {s["name"]: s["status"] for s in done["steps"]}
    assert steps["snapshot_volumes"] == StepStatus.SKIPPED  # taken outside, as told
    wait_for(f"watchdog {pid} to exit", lambda: not watchdog_alive(pid), 30)
    assert_mirror_running(lab)


def test_resume_without_a_snapshot_rolls_back_and_never_claims_one(
    lab: LabHandle, topic: str
) -> None:
    """K10's onFailure hook, or a person: the run was held, no snapshot was seen, and the
    caller does not say one was taken. The mirror comes back; the backup is not kept."""
    seed(lab, topic)
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        held = cli_json(lab, "quiesce", "--hold-timeout", "10m")
        journal = Backups(lab.config).store.load(held["backup_id"])
        assert journal is not None
        pid = journal.hold_watchdog["pid"]
        told = cli(lab, "resume")
        assert told.returncode == 3
        # Progress lines as the mirror comes back, then the one error line.
        assert told.stderr.strip().splitlines()[-1] == (
            f"error: backup {held['backup_id']} failed and was rolled back: resumed before any "
            "snapshot was taken: the mirror is back, the backup is not kept (`resume "
            "--snapshot-taken` keeps it when the volumes were snapshotted outside kasten-bp)"
        )
        journal = Backups(lab.config).store.load(held["backup_id"])
        assert journal is not None and journal.state == RunState.FAILED_ROLLED_BACK
        assert journal.step("snapshot_volumes").status == StepStatus.PENDING
        assert all(d.status == StepStatus.DONE for d in journal.deferred)
        assert cli_json(lab, "resume")["status"] == "nothing to resume"
        wait_for(f"watchdog {pid} to exit", lambda: not watchdog_alive(pid), 30)
        assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


@pytest.mark.parametrize("bad", ["soon", "0s", "-5m", "15x"])
def test_a_bad_hold_timeout_is_a_usage_error(lab: LabHandle, bad: str) -> None:
    result = cli(lab, "quiesce", "--hold-timeout", bad)
    assert result.returncode == 2, result.stderr
    assert "--hold-timeout" in result.stderr
    assert cli_json(lab, "status")["current"] == []


def test_a_hold_saved_without_its_deadline_still_ends(lab: LabHandle, topic: str) -> None:
    """A journal an older kasten-bp could leave behind: HELD, no deadline. A watchdog holds
    it for the default time from that save, then puts the mirror back (it used to exit at
    once and leave the mirror held)."""
    seed(lab, topic)
    held = cli_json(lab, "quiesce", "--hold-timeout", "10m")
    backups = Backups(lab.config)
    journal = backups.store.load(held["backup_id"])
    assert journal is not None
    backups.platform.disarm_hold(journal.backup_id, journal.hold_watchdog)
    saved_long_ago = time.time() - DEFAULT_HOLD_SECONDS - 1
    journal.hold_deadline = None
    journal.updated_at = datetime.fromtimestamp(saved_long_ago, UTC).isoformat()
    # Written as the older version left it (JournalStore.save would stamp it with now).
    key = backup_key(journal.backup_id, JOURNAL)
    backups.store.catalog.write_json(key, journal.model_dump(mode="json"))
    expired = cli_json(lab, "hold-expire", journal.backup_id)
    assert expired["status"] == "FAILED_ROLLED_BACK" and expired["hold_expired"] is True
    assert expired["hold_deadline"] == iso(saved_long_ago + DEFAULT_HOLD_SECONDS)
    assert_mirror_running(lab)
    assert cli_json(lab, "status")["current"] == []

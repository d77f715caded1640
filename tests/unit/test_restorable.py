"""Which backups can be restored (issue 27, point 6): COMPLETED, or kept with warnings once
their snapshot step completed."""

from __future__ import annotations

from kasten_bp.backup import unrestorable
from kasten_bp.workflow.journal import Journal, StepRecord
from kasten_bp.workflow.states import RunState, StepStatus


def journal(state: RunState, snapshot: StepStatus | None) -> Journal:
    steps = [StepRecord(name="capture_heads", status=StepStatus.DONE)]
    if snapshot is not None:
        steps.append(StepRecord(name="snapshot_volumes", status=snapshot))
    return Journal(backup_id="bk-1", command="backup", mode="consistent", state=state, steps=steps)


def test_completed_is_restorable() -> None:
    assert unrestorable(journal(RunState.COMPLETED, StepStatus.DONE)) is None


def test_kept_with_warnings_is_restorable_once_its_snapshot_completed() -> None:
    assert unrestorable(journal(RunState.COMPLETED_WITH_WARNINGS, StepStatus.DONE)) is None
    # K10 took the snapshot between the hooks.
    assert unrestorable(journal(RunState.COMPLETED_WITH_WARNINGS, StepStatus.SKIPPED)) is None


def test_kept_with_warnings_without_a_completed_snapshot_is_not() -> None:
    why = unrestorable(journal(RunState.COMPLETED_WITH_WARNINGS, StepStatus.FAILED))
    assert why == "it is COMPLETED_WITH_WARNINGS and its snapshot step did not complete"
    assert unrestorable(journal(RunState.COMPLETED_WITH_WARNINGS, None)) is not None


def test_failed_held_and_running_runs_are_not() -> None:
    for state in (RunState.FAILED_ROLLED_BACK, RunState.HELD, RunState.RUNNING):
        assert unrestorable(journal(state, StepStatus.DONE)) == f"it is {state}, not COMPLETED"

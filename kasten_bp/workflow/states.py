"""Run and step states, and the transitions a run may make (tested in tests/unit)."""

from __future__ import annotations

from enum import StrEnum

from kasten_bp.errors import KastenBpError


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    # Stopped on purpose between runbook verbs (after `quiesce`, before `resume`).
    HELD = "HELD"
    ROLLING_BACK = "ROLLING_BACK"
    COMPLETED = "COMPLETED"
    # The backup is kept (its snapshot was complete), but something after it failed: a
    # person should look (Velero's PartiallyFailed). Exit code 5.
    COMPLETED_WITH_WARNINGS = "COMPLETED_WITH_WARNINGS"
    FAILED_ROLLED_BACK = "FAILED_ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"
    # Not run by us: e.g. the snapshot of a Kanister run is taken by K10 between hooks.
    SKIPPED = "skipped"


FINAL = {RunState.COMPLETED, RunState.COMPLETED_WITH_WARNINGS, RunState.FAILED_ROLLED_BACK}
# Final states whose backup may be restored.
KEPT = {RunState.COMPLETED, RunState.COMPLETED_WITH_WARNINGS}

ALLOWED: dict[RunState, set[RunState]] = {
    # PENDING -> ROLLING_BACK: its process died before the first step (nothing to undo).
    RunState.PENDING: {RunState.RUNNING, RunState.ROLLING_BACK},
    RunState.RUNNING: {
        RunState.COMPLETED,
        RunState.COMPLETED_WITH_WARNINGS,
        RunState.HELD,
        RunState.ROLLING_BACK,
    },
    RunState.HELD: {RunState.RUNNING, RunState.ROLLING_BACK},
    # ROLLING_BACK -> ROLLING_BACK: a rollback interrupted by a crash is resumed.
    RunState.ROLLING_BACK: {
        RunState.ROLLING_BACK,
        RunState.FAILED_ROLLED_BACK,
        RunState.ROLLBACK_FAILED,
    },
    # A person fixed the cause; `resume` tries the rollback again.
    RunState.ROLLBACK_FAILED: {RunState.ROLLING_BACK},
    RunState.COMPLETED: set(),
    RunState.COMPLETED_WITH_WARNINGS: set(),
    RunState.FAILED_ROLLED_BACK: set(),
}

# Steps whose undo must run during rollback.
NEEDS_UNDO = {StepStatus.RUNNING, StepStatus.DONE, StepStatus.FAILED, StepStatus.UNDO_FAILED}


class IllegalTransition(KastenBpError):
    pass


def check_transition(current: RunState, new: RunState) -> None:
    if new not in ALLOWED[current]:
        raise IllegalTransition(f"run state {current} cannot become {new}")

"""The workflow engine: runs steps in order, journals every transition, rolls back.

A step declares `plan` (what its undo needs, journaled *before* it acts, so a crash in the
middle of `do` can still be undone), `do`, and an idempotent `undo`. On failure every step
that ran — the failed one included — is undone in reverse order; undo failures are
collected and leave ROLLBACK_FAILED with what a person must do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kasten_bp.errors import KastenBpError, RollbackFailed, RunFailed, UsageError
from kasten_bp.workflow.journal import Journal, JournalStore, StepRecord
from kasten_bp.workflow.states import NEEDS_UNDO, RunState, StepStatus

if TYPE_CHECKING:
    from kasten_bp.catalog.base import Catalog
    from kasten_bp.config import Config
    from kasten_bp.platforms.base import Platform


@dataclass
class RunContext:
    """A run's request object: configuration, where it acts, and what it has learnt."""

    config: Config
    platform: Platform
    catalog: Catalog
    journal: Journal
    store: JournalStore
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def backup_id(self) -> str:
        return self.journal.backup_id


class Step(Protocol):
    name: str

    def plan(self, ctx: RunContext) -> dict[str, Any]: ...

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]: ...

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None: ...


class Listener(Protocol):
    def step_started(self, name: str) -> None: ...

    def step_finished(self, record: StepRecord) -> None: ...

    def run_state(self, journal: Journal) -> None: ...


class Engine:
    def __init__(self, ctx: RunContext, steps: Sequence[Step], listeners: Sequence[Listener] = ()):
        self.ctx = ctx
        self.steps = list(steps)
        self.listeners = list(listeners)
        self.store = ctx.store
        self.journal = ctx.journal
        for step in self.steps:
            try:
                self.journal.step(step.name)
            except KeyError:
                self.journal.steps.append(StepRecord(name=step.name))

    def _transition(self, state: RunState, note: str = "") -> None:
        self.store.transition(self.journal, state, note)
        for listener in self.listeners:
            listener.run_state(self.journal)

    def run(self, stop_after: str | None = None) -> Journal:
        """Run pending steps; with `stop_after`, hold the run after that step."""
        if self.journal.state in (RunState.PENDING, RunState.HELD):
            self.journal.claim()
            self._transition(RunState.RUNNING)
        for step in self.steps:
            record = self.journal.step(step.name)
            if record.status in (StepStatus.DONE, StepStatus.SKIPPED):
                continue
            try:
                self._run_step(step, record)
            except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt rolls back too
                self.rollback(exc)
                raise AssertionError("unreachable") from exc
            if stop_after == step.name:
                self._transition(RunState.HELD, f"held after {step.name}")
                return self.journal
        self._transition(RunState.COMPLETED)
        return self.journal

    def _run_step(self, step: Step, record: StepRecord) -> None:
        for listener in self.listeners:
            listener.step_started(step.name)
        record.started = time.time()
        record.status = StepStatus.RUNNING
        record.error = None
        record.plan = step.plan(self.ctx)
        self.store.save(self.journal)
        try:
            record.result = step.do(self.ctx, record.plan) or {}
        except BaseException as exc:
            record.status = StepStatus.FAILED
            record.error = _describe(exc)
            record.ended = time.time()
            self.store.save(self.journal)
            for listener in self.listeners:
                listener.step_finished(record)
            raise
        record.status = StepStatus.DONE
        record.ended = time.time()
        self.store.save(self.journal)
        for listener in self.listeners:
            listener.step_finished(record)

    def rollback(self, cause: BaseException | None, note: str = "") -> None:
        """Undo every step that may have acted, newest first; raise the outcome."""
        message = _describe(cause) if cause is not None else (self.journal.error or note)
        self.journal.error = message
        self._transition(RunState.ROLLING_BACK, note or f"failure: {message}")
        undo_errors = []
        by_name = {s.name: s for s in self.steps}
        for record in reversed(self.journal.steps):
            if record.status not in NEEDS_UNDO or record.name not in by_name:
                continue
            try:
                by_name[record.name].undo(self.ctx, record.plan)
                record.status = StepStatus.UNDONE
                record.undo_error = None
            except Exception as exc:  # noqa: BLE001 - keep undoing the others
                record.status = StepStatus.UNDO_FAILED
                record.undo_error = _describe(exc)
                undo_errors.append(f"{record.name}: {record.undo_error}")
            self.store.save(self.journal)
        if undo_errors:
            self._transition(RunState.ROLLBACK_FAILED, "; ".join(undo_errors))
            raise RollbackFailed(
                f"backup {self.journal.backup_id} failed ({message}) and rollback failed: "
                + "; ".join(undo_errors)
                + ". Fix the cause, then run `kasten-bp resume` to retry the rollback."
            )
        self._transition(RunState.FAILED_ROLLED_BACK)
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        if isinstance(cause, UsageError):
            # A precondition failed before anything changed: still a usage error (exit 2).
            raise cause
        raise RunFailed(f"backup {self.journal.backup_id} failed and was rolled back: {message}")


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, KastenBpError) else f"{type(exc).__name__}: {text}"

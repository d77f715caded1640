"""The workflow engine: runs a flow's steps, journals every transition, cleans up.

- Before the backup is kept (a `keeps_backup` step done), a failure undoes every step that
  may have acted, newest first (the failed one too), runs the deferred actions and ends
  FAILED_ROLLED_BACK (exit 3), or ROLLBACK_FAILED (exit 4) when clean-up failed.
- After it, a failure is a warning: the deferred actions still run, the backup is kept and
  the run ends COMPLETED_WITH_WARNINGS (exit 5).
- Deferred actions (put the mirror back) run at the end of every run that is not held, and
  when a crashed run is recovered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from kasten_bp.errors import KastenBpError, LockLost, RollbackFailed, RunFailed, UsageError
from kasten_bp.workflow.flow import AnyStep, Flow
from kasten_bp.workflow.journal import DeferredRecord, Journal, JournalStore, StepRecord
from kasten_bp.workflow.states import NEEDS_UNDO, RunState, StepStatus

if TYPE_CHECKING:
    from kasten_bp.catalog.base import Catalog
    from kasten_bp.config import Config
    from kasten_bp.platforms.base import Platform


@dataclass
class RunContext:
    """A run's request object: configuration, where it acts, and its journal."""

    config: Config
    platform: Platform
    catalog: Catalog
    journal: Journal
    store: JournalStore

    @property
    def backup_id(self) -> str:
        return self.journal.backup_id


class Listener(Protocol):
    """Progress, logging and timing watch the engine; steps know nothing of them."""

    def step_started(self, journal: Journal, record: StepRecord | DeferredRecord) -> None: ...

    def step_finished(self, journal: Journal, record: StepRecord | DeferredRecord) -> None: ...

    def run_state(self, journal: Journal) -> None: ...


class Engine:
    def __init__(self, ctx: RunContext, flow: Flow, listeners: Sequence[Listener] = ()):
        self.ctx = ctx
        self.flow = flow
        self.listeners = list(listeners)
        self.store = ctx.store
        self.journal = ctx.journal
        known = {r.name for r in self.journal.steps}
        for step in flow.all_steps:
            if step.name not in known:
                self.journal.steps.append(StepRecord(name=step.name))

    # --- what the journal knows ----------------------------------------------------------

    def kept(self) -> bool:
        """The backup is kept once a step that keeps it is done (or was done outside)."""
        return any(
            self.flow.step(r.name).keeps_backup
            and r.status in (StepStatus.DONE, StepStatus.SKIPPED)
            for r in self.journal.steps
            if r.name in self.flow.by_name
        )

    def _facts(self) -> dict[str, Any]:
        facts = dict(self.journal.inputs)
        for record in self.journal.steps:
            facts.update(record.plan)
            facts.update(record.result)
        return facts

    def _needs(self, step: AnyStep) -> BaseModel:
        facts = self._facts()
        return step.needs.model_validate(
            {k: facts[k] for k in step.needs.model_fields if k in facts}
        )

    # --- transitions and events ----------------------------------------------------------

    def _transition(self, state: RunState, note: str = "") -> None:
        self.store.transition(self.journal, state, note)
        for listener in self.listeners:
            listener.run_state(self.journal)

    def _started(self, record: StepRecord | DeferredRecord) -> None:
        record.started = time.time()
        record.status = StepStatus.RUNNING
        record.error = None
        for listener in self.listeners:
            listener.step_started(self.journal, record)
        self.store.save(self.journal)

    def _finished(self, record: StepRecord | DeferredRecord, error: BaseException | None) -> None:
        record.ended = time.time()
        record.status = StepStatus.DONE if error is None else StepStatus.FAILED
        record.error = None if error is None else describe(error)
        for listener in self.listeners:
            listener.step_finished(self.journal, record)
        self.store.save(self.journal)

    def _warn(self, message: str) -> None:
        self.journal.warnings.append(message)
        self.store.save(self.journal)

    # --- running --------------------------------------------------------------------------

    def run(self, stop_after: str | None = None, hold_seconds: float | None = None) -> Journal:
        """Run pending steps; with `stop_after`, hold the run after that step. With
        `hold_seconds`, the hold's deadline is saved in the same write as HELD: a watchdog
        polling the journal must never see a hold without its deadline."""
        if self.journal.state in (RunState.PENDING, RunState.HELD):
            self.journal.claim()
            self._transition(RunState.RUNNING)
        for step in self.flow.steps:
            record = self.journal.step(step.name)
            if record.status in (StepStatus.DONE, StepStatus.SKIPPED):
                continue
            try:
                self._run_step(step, record)
            except LockLost:
                raise  # stop acting at once: the next lock holder finishes the run
            except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt cleans up too
                if not self.kept():
                    self.rollback(exc)
                self._warn(f"{step.name} failed after the backup was kept: {describe(exc)}")
                return self._finish(interrupted=isinstance(exc, KeyboardInterrupt))
            if stop_after == step.name:
                if hold_seconds is not None:
                    self.journal.hold_deadline = time.time() + hold_seconds
                self._transition(RunState.HELD, f"held after {step.name}")
                return self.journal
        return self._finish()

    def _run_step(self, step: AnyStep, record: StepRecord) -> None:
        needs = self._needs(step)
        # Planning only reads; a crash while planning leaves the step pending. The journal
        # never shows a step running without the plan its undo needs.
        plan = step.plan(self.ctx, needs)
        record.plan = plan.model_dump(mode="json")
        self._register_deferred(step, needs, plan)
        self._started(record)  # saves plan, deferred actions and status before acting
        try:
            gives = step.do(self.ctx, needs, plan)
        except BaseException as exc:
            self._finished(record, exc)
            raise
        record.result = gives.model_dump(mode="json")
        self._finished(record, None)

    def _register_deferred(self, step: AnyStep, needs: BaseModel, plan: BaseModel) -> None:
        registered = {(d.action, d.registered_by) for d in self.journal.deferred}
        for deferral in step.defer(needs, plan):
            if (deferral.action, step.name) not in registered:
                self.journal.deferred.append(
                    DeferredRecord(
                        action=deferral.action, args=deferral.args, registered_by=step.name
                    )
                )

    def run_deferred(self) -> list[str]:
        """Run every outstanding deferred action, newest first; return what failed."""
        failed = []
        for record in reversed(self.journal.deferred):
            if not record.outstanding:
                continue
            action = self.flow.actions[record.action]
            self._started(record)
            try:
                action.run(self.ctx, action.args.model_validate(record.args))
            except Exception as exc:  # noqa: BLE001 - the others must still run
                self._finished(record, exc)
                failed.append(f"{record.action}: {record.error}")
                continue
            self._finished(record, None)
        return failed

    def _finish(self, interrupted: bool = False, run_checks: bool = True) -> Journal:
        for failure in self.run_deferred():
            self._warn(f"deferred {failure} (retry with `kasten-bp resume`)")
        if run_checks and not interrupted:
            for check in self.flow.checks:
                record = self.journal.step(check.name)
                if record.status == StepStatus.DONE:
                    continue
                try:
                    self._run_step(check, record)
                except Exception as exc:  # noqa: BLE001 - the backup is kept: a warning
                    self._warn(f"{check.name} failed: {describe(exc)}")
        final = RunState.COMPLETED_WITH_WARNINGS if self.journal.warnings else RunState.COMPLETED
        self._transition(final)
        if interrupted:
            raise KeyboardInterrupt
        return self.journal

    # --- recovery and rollback ----------------------------------------------------------

    def recover(self, note: str) -> None:
        """Finish a run whose process died: keep it if its backup was kept, else roll back."""
        if self.journal.state == RunState.RUNNING and self.kept():
            self._warn(f"the run was interrupted after the backup was kept ({note})")
            self._finish(run_checks=False)
            return
        self.rollback(None, note)

    def expire_hold(self, note: str) -> None:
        """A held run whose hold ran out: put the mirror back. A kept backup (its snapshot
        was taken) completes with a warning; otherwise the run is rolled back."""
        if self.kept():
            self._transition(RunState.RUNNING, note)
            self._warn(note)
            self._finish()
            return
        self.rollback(None, note)

    def rollback(self, cause: BaseException | None, note: str = "") -> None:
        """Undo what may have acted, newest first, run the deferred actions; raise."""
        message = describe(cause) if cause is not None else (self.journal.error or note)
        self.journal.error = message
        self._transition(RunState.ROLLING_BACK, note or f"failure: {message}")
        errors = []
        for record in reversed(self.journal.steps):
            if record.status not in NEEDS_UNDO or record.name not in self.flow.by_name:
                continue
            step = self.flow.step(record.name)
            try:
                step.undo(
                    self.ctx, self._needs(step), step.plans.model_validate(record.plan), cause
                )
                record.status = StepStatus.UNDONE
                record.undo_error = None
            except Exception as exc:  # noqa: BLE001 - keep undoing the others
                record.status = StepStatus.UNDO_FAILED
                record.undo_error = describe(exc)
                errors.append(f"{record.name}: {record.undo_error}")
            self.store.save(self.journal)
        errors += self.run_deferred()
        if errors:
            self._transition(RunState.ROLLBACK_FAILED, "; ".join(errors))
            raise RollbackFailed(
                f"backup {self.journal.backup_id} failed ({message}) and rollback failed: "
                + "; ".join(errors)
                + ". Fix the cause, then run `kasten-bp resume` to retry the rollback."
            )
        self._transition(RunState.FAILED_ROLLED_BACK)
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        if isinstance(cause, UsageError):
            # A precondition failed before anything changed: still a usage error (exit 2).
            raise cause
        raise RunFailed(f"backup {self.journal.backup_id} failed and was rolled back: {message}")


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, KastenBpError) else f"{type(exc).__name__}: {text}"

"""Backup runs: the full backup, the runbook verbs (quiesce, snapshot, resume, status) and
crash recovery, on top of the workflow engine."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from kasten_bp.catalog.base import Catalog, open_catalog
from kasten_bp.catalog.manifests import manifest_data
from kasten_bp.config import Config, GroupsConfig, use_kube_secret_reader
from kasten_bp.errors import LockBusy, RunFailed, UsageError
from kasten_bp.hold import DEFAULT_HOLD_SECONDS, hold_deadline, iso, watchdog_command
from kasten_bp.kafka.clients import apply_config_security
from kasten_bp.platforms import build_platform
from kasten_bp.platforms.base import Platform
from kasten_bp.steps import QUIESCE_UNTIL, SNAPSHOT_STEP, TIMING_MARKS, backup_flow
from kasten_bp.steps.models import RunInputs
from kasten_bp.steps.preflight import preflight_problems
from kasten_bp.waiting import announce
from kasten_bp.workflow.engine import Engine, Listener, RunContext
from kasten_bp.workflow.journal import Journal, JournalStore, owner_alive
from kasten_bp.workflow.listeners import TimingListener
from kasten_bp.workflow.states import FINAL, RunState, StepStatus

MODES = ("consistent", "hot")
# The lock owner a watchdog takes the lock as: commands wait for it (it is finishing a
# dead run, briefly) instead of being refused.
WATCHDOG = "watchdog"
WATCHDOG_GRACE_SECONDS = 300.0
# Runs a dead owner leaves behind, for the next lock holder to finish.
RECOVERABLE = (RunState.PENDING, RunState.RUNNING, RunState.ROLLING_BACK)


def new_backup_id() -> str:
    return datetime.now(UTC).strftime("bk-%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


class Backups:
    """Everything a command needs, built once from the config."""

    def __init__(
        self,
        config: Config,
        listeners: Sequence[Listener] = (),
        config_file: Path | None = None,
    ) -> None:
        self.config = config
        if config.kube_secret_refs():
            assert config.kubernetes is not None  # the config model requires it then
            # Imported here: the kubernetes client costs a fifth of a second to load.
            from kasten_bp.platforms.kube.secrets import KubeSecrets

            use_kube_secret_reader(KubeSecrets.from_config(config.kubernetes))
        # Every Kafka client of this process reaches these clusters with their security.
        apply_config_security(config)
        # Where a hold's watchdog reads the same configuration from.
        self.config_file = config_file
        self.platform: Platform = build_platform(config)
        self.catalog: Catalog = open_catalog(config.catalog)
        self.store = JournalStore(self.catalog)
        self.listeners = list(listeners)

    @cached_property
    def scope(self) -> str:
        """The configured mirror, as journals record it (read when first needed: a
        usage error must not wait for the platform)."""
        return self.platform.scope()

    def _engine(self, journal: Journal) -> Engine:
        ctx = RunContext(self.config, self.platform, self.catalog, journal, self.store)
        listeners = [*self.listeners, TimingListener(TIMING_MARKS)]
        return Engine(ctx, backup_flow(journal.mode), listeners)

    def _new_journal(
        self,
        command: str,
        mode: str,
        head_window: int | None = None,
        groups: Sequence[str] | None = None,
    ) -> Journal:
        inputs = RunInputs(
            mode=mode,
            head_window=head_window,
            groups_include=list(groups) if groups is not None else None,
        )
        journal = Journal(
            backup_id=new_backup_id(),
            command=command,
            mode=mode,
            inputs=inputs.model_dump(),
            cluster=self.scope,
        )
        journal.claim()  # a watchdog tells a dead owner from a live one from the start
        self.store.save(journal)
        return journal

    def ours(self, journal: Journal) -> bool:
        """A run of the configured mirror (a journal older than the `cluster` field is
        taken as ours: it was written when a catalog served one mirror)."""
        return journal.cluster in ("", self.scope)

    def _unfinished(self) -> list[Journal]:
        return [j for j in self.store.unfinished() if self.ours(j)]

    def _runs(self) -> list[Journal]:
        return [j for j in self.store.all() if self.ours(j)]

    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        """The mirror's run lock. A watchdog holds it only while it finishes a dead run:
        wait for it (bounded) rather than refuse; any other holder is refused (exit 2)."""
        deadline = time.monotonic() + WATCHDOG_GRACE_SECONDS
        told = False
        while True:
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(self.platform.lock(owner))
            except LockBusy as busy:
                if not busy.holder.startswith(WATCHDOG) or time.monotonic() > deadline:
                    raise
                if not told:
                    announce(f"waiting for a watchdog to finish a dead run ({busy.holder})")
                    told = True
                time.sleep(1.0)
                continue
            with stack:
                yield
            return

    # --- the watchdog: every run that stops something has one ----------------------------

    def _arm_watchdog(self, journal: Journal) -> None:
        """Before the first step acts: a process (a Job on Kubernetes) that outlives this
        one and finishes the run if this process dies (see `watch`)."""
        if self.config_file is None:
            return
        command = watchdog_command(self.config_file, journal.backup_id)
        try:
            journal.hold_watchdog = self.platform.arm_hold(journal.backup_id, command)
        except Exception as exc:
            # No watchdog, no run: nothing has acted yet, so the run is closed as rolled
            # back (a refusal such as a 403 stays a usage error, exit 2; else exit 3).
            self._engine(journal).rollback(exc, note="its watchdog could not be started")
            raise  # pragma: no cover - rollback always raises
        self.store.save(journal)

    def _disarm_when_done(self, journal: Journal) -> None:
        """A run that ended needs no watchdog; a held one (or one that stopped acting
        without ending) keeps it."""
        done = journal.state in FINAL or journal.state == RunState.ROLLBACK_FAILED
        if done and journal.hold_watchdog:
            self.platform.disarm_hold(journal.backup_id, journal.hold_watchdog)

    def watch(self, backup_id: str) -> dict[str, Any] | None:
        """One look of the watchdog: None while there is nothing to do yet, else the run's
        summary once it is out of anyone's hands (final, or a failed rollback left for a
        person). A held run is put back at its deadline; a run whose owner is gone (its
        lock is free: the owner holds it as long as it acts) is recovered at once."""
        journal = self.store.load(backup_id)
        if journal is None:
            raise UsageError(f"backup {backup_id} not found in catalog {self.catalog.url}")
        if journal.state in FINAL or journal.state == RunState.ROLLBACK_FAILED:
            return self.summary(journal, [])
        if journal.state == RunState.HELD:
            try:
                return self.expire_hold(backup_id)
            except LockBusy:
                return None  # the lock is held: `snapshot` or `resume` is at work
        if owner_alive(journal.owner):
            return None
        try:
            with self.platform.lock(WATCHDOG):
                journal = self.store.load(backup_id)
                if journal is None or journal.state not in RECOVERABLE:
                    return None  # it moved on meanwhile: look again
                note = f"crashed run found by its watchdog (owner {owner_text(journal.owner)})"
                with contextlib.suppress(RunFailed):
                    self._engine(journal).recover(note=note)
                return self.summary(journal, [])
        except LockBusy:
            return None  # the lock is held: by the owner, alive after all, or a person

    # --- recovery -----------------------------------------------------------------------

    def recover_crashed(self) -> list[dict[str, Any]]:
        """Runs left RUNNING or ROLLING_BACK by a process that died: keep them if their
        backup was kept, else roll them back; either way the deferred actions run.
        Call with the lock held, so no live run can be mistaken for a crashed one."""
        recovered = []
        for journal in self._unfinished():
            if journal.state not in RECOVERABLE or owner_alive(journal.owner):
                continue
            engine = self._engine(journal)
            try:
                engine.recover(note=f"crashed run found (owner {journal.owner})")
            except Exception as exc:  # noqa: BLE001 - report, keep going
                recovered.append(
                    {"backup_id": journal.backup_id, "state": journal.state, "error": str(exc)}
                )
                continue
            recovered.append({"backup_id": journal.backup_id, "state": journal.state})
        return recovered

    def _held(self) -> Journal | None:
        """The run a person or a hook must finish: held between runbook verbs, a failed
        rollback, or a kept backup whose deferred clean-up failed."""
        held = [
            j
            for j in self._unfinished()
            if j.state in (RunState.HELD, RunState.ROLLBACK_FAILED) or j.state in FINAL
        ]
        return held[-1] if held else None

    # --- commands -----------------------------------------------------------------------

    def backup(
        self,
        mode: str,
        dry_run: bool = False,
        head_window: int | None = None,
        groups: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """`groups`: regexes of the consumer groups to record, instead of the config's
        groups.include (None: the config decides)."""
        if mode not in MODES:
            raise UsageError(f"--mode must be consistent or hot, got {mode}")
        if groups is not None:
            if mode != "consistent":
                raise UsageError(
                    "--group: consumer groups are recorded at the cut, in consistent mode only"
                )
            GroupsConfig.including(list(groups))  # a bad regex: exit 2 before any change
        with self.lock("backup"):
            recovered = self.recover_crashed()
            held = self._held()
            if held is not None:
                raise UsageError(
                    f"backup {held.backup_id} is {held.state}: run `kasten-bp resume` first"
                )
            if dry_run:
                return self._dry_run(mode, recovered)
            journal = self._new_journal("backup", mode, head_window, groups)
            self._arm_watchdog(journal)
            try:
                self._engine(journal).run()
            finally:
                self._disarm_when_done(journal)
            return self.summary(journal, recovered)

    def _dry_run(self, mode: str, recovered: list[dict[str, Any]]) -> dict[str, Any]:
        config = self.config
        problems = preflight_problems(
            self.platform,
            config.primary.bootstrap,
            config.mirror.bootstrap,
            mode,
            config.replication,
        )
        if problems:
            raise UsageError("preflight failed: " + "; ".join(problems))
        flow = backup_flow(mode)
        return {
            "dry_run": True,
            "mode": mode,
            "platform": self.platform.name,
            "plan": [s.name for s in flow.steps]
            + [f"deferred:{a.name}" for a in reversed(flow.deferred)]
            + [c.name for c in flow.checks],
            "brokers": [b.id for b in self.platform.brokers()],
            "connectors": self.platform.mirrormaker.connector_states()
            if mode == "consistent"
            else {},
            "recovered": recovered,
        }

    def quiesce(self, hold_seconds: float = DEFAULT_HOLD_SECONDS) -> dict[str, Any]:
        """Take the mirror down and hold it for a snapshot; a watchdog puts it back if no
        `resume` comes within `hold_seconds`."""
        with self.lock("quiesce"):
            recovered = self.recover_crashed()
            held = self._held()
            if held is not None:
                raise UsageError(f"backup {held.backup_id} is already {held.state}")
            journal = self._new_journal("quiesce", "consistent")
            self._arm_watchdog(journal)
            try:
                self._engine(journal).run(stop_after=QUIESCE_UNTIL, hold_seconds=hold_seconds)
            finally:
                self._disarm_when_done(journal)
            return self.summary(journal, recovered)

    def expire_hold(self, backup_id: str) -> dict[str, Any] | None:
        """The watchdog's verb: at the deadline, put a still-held mirror back. Returns None
        while there is nothing to do yet; a summary once the run is out of its hold."""
        journal = self.store.load(backup_id)
        if journal is None:
            raise UsageError(f"backup {backup_id} not found in catalog {self.catalog.url}")
        if journal.state != RunState.HELD:
            if journal.state in (RunState.PENDING, RunState.RUNNING):
                return None  # quiesce still on its way to the hold
            return self.summary(journal, [])
        if time.time() < hold_deadline(journal.hold_deadline, journal.updated_at):
            return None
        with self.platform.lock(WATCHDOG):
            journal = self.store.load(backup_id)
            if journal is None or journal.state != RunState.HELD:
                return self.summary(journal, []) if journal else None
            journal.hold_deadline = hold_deadline(journal.hold_deadline, journal.updated_at)
            journal.hold_expired = True
            self.store.save(journal)
            note = (
                f"hold expired at {iso(journal.hold_deadline)}: no `kasten-bp resume` came, "
                "the watchdog put the mirror back"
            )
            with contextlib.suppress(RunFailed):
                self._engine(journal).expire_hold(note)
            return self.summary(journal, [])

    def snapshot(self) -> dict[str, Any]:
        with self.lock("snapshot"):
            journal = self._held()
            if journal is None or journal.state != RunState.HELD:
                expired = [j for j in self._runs() if j.hold_expired]
                if expired and (journal is None or expired[-1].created_at > journal.created_at):
                    late = expired[-1]
                    raise UsageError(
                        f"backup {late.backup_id}: its hold expired at "
                        f"{iso(late.hold_deadline)} and the mirror is running again; "
                        "nothing to snapshot: run `kasten-bp quiesce` again"
                    )
                raise UsageError("no quiesced backup to snapshot: run `kasten-bp quiesce` first")
            if journal.step(SNAPSHOT_STEP).status == StepStatus.DONE:
                return self.summary(journal, [])
            self._engine(journal).run(stop_after=SNAPSHOT_STEP)
            return self.summary(journal, [])

    def _expired_unsnapshotted(self) -> Journal | None:
        """The newest run, when its hold expired before its snapshot and rolled it back."""
        runs = self._runs()
        newest = runs[-1] if runs else None
        if (
            newest is not None
            and newest.hold_expired
            and newest.state == RunState.FAILED_ROLLED_BACK
        ):
            return newest
        return None

    def resume(self, snapshot_taken: bool = False) -> dict[str, Any]:
        """Always safe: finishes a held run, retries a failed rollback or a kept backup's
        failed clean-up, recovers a crash. A held run whose snapshot kasten-bp did not take
        is kept only with `snapshot_taken` (K10's posthook: it snapshotted between its
        hooks); without it the run is rolled back, never marked snapshotted unseen."""
        with self.lock("resume"):
            recovered = self.recover_crashed()
            journal = self._held()
            if journal is None:
                expired = self._expired_unsnapshotted()
                if expired is not None:
                    # The truth to a posthook: the mirror was put back before the snapshot
                    # was taken, so what was just snapshotted outside is not consistent.
                    raise RunFailed(
                        f"backup {expired.backup_id}: the hold expired at "
                        f"{iso(expired.hold_deadline)} before the snapshot was taken: this "
                        "restore point is not consistent"
                    )
                return {"status": "nothing to resume", "recovered": recovered}
            engine = self._engine(journal)
            if journal.state in FINAL:
                failed = engine.run_deferred()
                note = "; ".join(failed) if failed else "deferred clean-up finished by resume"
                self.store.note(journal, note)
                return self.summary(journal, recovered)
            if journal.state == RunState.ROLLBACK_FAILED:
                # Success here is a completed rollback: the backup stays failed, but the
                # mirror is whole again, which is what `resume` promises.
                with contextlib.suppress(RunFailed):
                    engine.rollback(None, note="rollback retried by resume")
                return self.summary(journal, recovered)
            snap = journal.step(SNAPSHOT_STEP)
            if snap.status == StepStatus.PENDING and not snapshot_taken:
                try:
                    engine.rollback(
                        None,
                        note=(
                            "resumed before any snapshot was taken: the mirror is back, the "
                            "backup is not kept (`resume --snapshot-taken` keeps it when the "
                            "volumes were snapshotted outside kasten-bp)"
                        ),
                    )
                finally:
                    self._disarm_when_done(journal)
            if snap.status == StepStatus.PENDING:
                # Taken outside, as the caller says (K10 between its hooks).
                snap.status = StepStatus.SKIPPED
                self.store.save(journal)
            try:
                engine.run()
            finally:
                self._disarm_when_done(journal)
            return self.summary(journal, recovered)

    def status(self) -> dict[str, Any]:
        try:
            with self.lock("status"):
                recovered = self.recover_crashed()
        except LockBusy:
            recovered = []  # a live run holds the lock: report, do not touch
        everyone = self.store.all()
        runs = [j for j in everyone if self.ours(j)]
        current = [j for j in runs if j.state not in FINAL or j.outstanding_deferred()]
        # Runs of other mirrors sharing this catalog: shown, never touched from here.
        elsewhere = [
            {"backup_id": j.backup_id, "status": j.state, "cluster": j.cluster}
            for j in everyone
            if not self.ours(j) and (j.state not in FINAL or j.outstanding_deferred())
        ]
        return {
            "cluster": self.scope,
            "recovered": recovered,
            "current": [self.summary(j, []) for j in current],
            "elsewhere": elsewhere,
            "last": self.summary(runs[-1], []) if runs else None,
        }

    # --- reports ------------------------------------------------------------------------

    def summary(self, journal: Journal, recovered: list[dict[str, Any]]) -> dict[str, Any]:
        marks = journal.marks

        def span(start: str, end: str) -> float | None:
            if start in marks and end in marks:
                return round(marks[end] - marks[start], 3)
            return None

        flow = backup_flow(journal.mode)
        checks = {c.name for c in flow.checks}
        steps = [_row(s.name, s.status, s.seconds) for s in journal.steps if s.name not in checks]
        steps += [_row(d.action, d.status, d.seconds, True) for d in reversed(journal.deferred)]
        steps += [_row(s.name, s.status, s.seconds) for s in journal.steps if s.name in checks]
        return {
            "backup_id": journal.backup_id,
            "cluster": journal.cluster or self.scope,
            "status": journal.state,
            "restorable": unrestorable(journal) is None,
            "mode": journal.mode,
            "command": journal.command,
            "downtime_seconds": span("mm2_stopped", "mm2_resumed"),
            "mirror_unavailable_seconds": span("brokers_stopped", "brokers_serving"),
            "steps": steps,
            "error": journal.error,
            "warnings": journal.warnings,
            "hold_deadline": iso(journal.hold_deadline),
            "hold_expired": journal.hold_expired,
            "left_for_a_person": left_for_a_person(journal),
            "recovered": recovered,
            "manifest": manifest_data(self.catalog, journal.backup_id),
        }


def unrestorable(journal: Journal) -> str | None:
    """Why this run's backup cannot be restored (None: it can). A backup kept with warnings
    is restorable once its snapshot step completed: the warnings are about what came
    after (a check, the mirror's restart), not about the snapshot."""
    if journal.state == RunState.COMPLETED:
        return None
    if journal.state == RunState.COMPLETED_WITH_WARNINGS:
        snap = next((s for s in journal.steps if s.name == SNAPSHOT_STEP), None)
        if snap is not None and snap.status in (StepStatus.DONE, StepStatus.SKIPPED):
            return None
        return f"it is {journal.state} and its snapshot step did not complete"
    return f"it is {journal.state}, not COMPLETED"


def owner_text(owner: dict[str, Any]) -> str:
    where = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "unknown"
    return f"{where}, pod {owner['pod']}" if owner.get("pod") else where


def _row(name: str, status: str, seconds: float | None, deferred: bool = False) -> dict[str, Any]:
    return {"name": name, "status": status, "seconds": seconds, "deferred": deferred}


def left_for_a_person(journal: Journal) -> list[str]:
    """What a person (or `kasten-bp resume`) must still do for this run."""
    todo = [
        f"deferred {d.action} failed ({d.error}): fix the cause, then `kasten-bp resume`"
        for d in journal.deferred
        if d.status == StepStatus.FAILED
    ]
    if journal.state == RunState.HELD:
        todo.append(
            "the mirror is held (quiesced) until "
            f"{iso(journal.hold_deadline) or 'resumed'}: `kasten-bp snapshot`, then "
            "`kasten-bp resume`"
        )
    if journal.state == RunState.ROLLBACK_FAILED:
        todo += [
            f"undo of {s.name} failed ({s.undo_error}): fix the cause, then `kasten-bp resume`"
            for s in journal.steps
            if s.status == StepStatus.UNDO_FAILED
        ]
    if journal.state == RunState.COMPLETED_WITH_WARNINGS:
        todo.append("the backup is kept; read its warnings")
    return todo

"""Every failure path the engine promises, on the real lab: a step or a deferred action
failing after it acted, and kasten-bp killed between steps. Before the snapshot is complete
the run rolls back and the snapshot is gone; after it, the backup is kept with warnings.
Each ends with the mirror's brokers running, MM2's connectors resumed and every
acknowledged primary record on the mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kasten_bp.backup import Backups
from kasten_bp.errors import RunFailed
from kasten_bp.steps import backup_flow
from kasten_bp.waiting import wait_for
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import DeferredAction, Flow, Step
from kasten_bp.workflow.journal import Journal
from kasten_bp.workflow.states import FINAL, RunState, StepStatus

from .helpers import (
    KASTEN_BP,
    BackgroundProducer,
    LabHandle,
    assert_all_mirrored,
    assert_mirror_running,
    cli_json,
    seed,
)

pytestmark = pytest.mark.integration
FLOW = backup_flow("consistent")
BEFORE_SNAPSHOT = [s.name for s in FLOW.steps]  # snapshot_volumes is the last of them
AFTER_SNAPSHOT = [a.name for a in FLOW.deferred] + [c.name for c in FLOW.checks]


def injected(name: str) -> RuntimeError:
    return RuntimeError(f"injected failure after {name}")


class FailsAfterActing(Step[Any, Any, Any]):
    """Wraps a real step: it does its work, then fails — the hardest case to clean up."""

    def __init__(self, inner: Step[Any, Any, Any]) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.needs, self.plans, self.gives = inner.needs, inner.plans, inner.gives
        self.defers = inner.defers  # type: ignore[misc]
        self.keeps_backup = inner.keeps_backup  # type: ignore[misc]

    def plan(self, ctx: RunContext, needs: Any) -> Any:
        return self.inner.plan(ctx, needs)

    def defer(self, needs: Any, plan: Any) -> Any:
        return self.inner.defer(needs, plan)

    def do(self, ctx: RunContext, needs: Any, plan: Any) -> Any:
        self.inner.do(ctx, needs, plan)
        raise injected(self.name)

    def undo(self, ctx: RunContext, needs: Any, plan: Any, failure: BaseException | None) -> None:
        self.inner.undo(ctx, needs, plan, failure)


class DeferredFailsAfterActing(DeferredAction[Any]):
    def __init__(self, inner: DeferredAction[Any]) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.args = inner.args

    def run(self, ctx: RunContext, args: Any) -> None:
        self.inner.run(ctx, args)
        raise injected(self.name)


def flow_failing_at(failing: str) -> Flow:
    def wrap(step: Step[Any, Any, Any]) -> Step[Any, Any, Any]:
        return FailsAfterActing(step) if step.name == failing else step

    def wrap_action(action: DeferredAction[Any]) -> DeferredAction[Any]:
        return DeferredFailsAfterActing(action) if action.name == failing else action

    flow = backup_flow("consistent")
    return Flow(
        flow.inputs,
        steps=[wrap(s) for s in flow.steps],
        checks=[wrap(c) for c in flow.checks],
        deferred=[wrap_action(a) for a in flow.deferred],
    )


def test_the_failure_lists_cover_the_whole_flow() -> None:
    assert BEFORE_SNAPSHOT[-1] == "snapshot_volumes"
    assert set(AFTER_SNAPSHOT) == {
        "start_brokers",
        "resume_mirrormaker",
        "seal_snapshots",
        "seal_content",
        "confirm_replication",
    }


@pytest.mark.parametrize("failing", BEFORE_SNAPSHOT)
def test_a_failure_before_the_snapshot_is_complete_rolls_back(
    lab: LabHandle, topic: str, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kasten_bp.backup.backup_flow", lambda mode: flow_failing_at(failing))
    seed(lab, topic)
    backups = Backups(lab.config)
    failure = pytest.raises(RunFailed, match=f"injected failure after {failing}")
    with BackgroundProducer(lab.primary, topic, rate=100) as writer, failure:
        backups.backup("consistent")
    journal = backups.store.all()[-1]
    assert journal.state == RunState.FAILED_ROLLED_BACK
    index = BEFORE_SNAPSHOT.index(failing)
    ran = {s.name: s.status for s in journal.steps[: index + 1]}
    assert set(ran.values()) == {StepStatus.UNDONE}, ran
    assert all(s.status == StepStatus.PENDING for s in journal.steps[index + 1 :])
    # Whatever took the mirror down was put back by its deferred action.
    assert all(d.status == StepStatus.DONE for d in journal.deferred)
    assert not backups.platform.snapshot_dir(journal.backup_id).exists()  # type: ignore[attr-defined]
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


@pytest.mark.parametrize("failing", AFTER_SNAPSHOT)
def test_a_failure_after_the_snapshot_keeps_the_backup(
    lab: LabHandle, topic: str, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kasten_bp.backup.backup_flow", lambda mode: flow_failing_at(failing))
    seed(lab, topic)
    backups = Backups(lab.config)
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        summary = backups.backup("consistent")
    assert summary["status"] == RunState.COMPLETED_WITH_WARNINGS
    assert len(summary["warnings"]) == 1
    assert f"injected failure after {failing}" in summary["warnings"][0]
    journal = backups.store.load(summary["backup_id"])
    assert journal is not None
    assert journal.step("snapshot_volumes").status == StepStatus.DONE
    assert backups.platform.snapshot_dir(journal.backup_id).exists()  # type: ignore[attr-defined]
    assert len(summary["manifest"]["snapshots"]) == len(backups.platform.brokers())
    if failing in (a.name for a in FLOW.deferred):
        # The action acted, then failed: a person is told; `resume` finishes it.
        assert summary["left_for_a_person"][0].startswith(f"deferred {failing} failed")
        resumed = cli_json(lab, "resume", expect=5)
        assert resumed["backup_id"] == journal.backup_id
        assert resumed["status"] == RunState.COMPLETED_WITH_WARNINGS
        assert not any(d["status"] == "failed" for d in resumed["steps"] if d["deferred"])
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


def _wait_journal(backups: Backups, started: float, step: str, statuses: set[str]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for journal in backups.store.all():
            fresh = journal.created_at >= started_iso(started)
            # A new journal is saved before the engine lists its steps in it.
            listed = any(s.name == step for s in journal.steps)
            if fresh and listed and journal.step(step).status in statuses:
                return journal.backup_id
        time.sleep(0.05)
    raise AssertionError(f"step {step} never reached {statuses}")


def started_iso(started: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds")


# Where kasten-bp is killed (SIGKILL: no clean-up of its own), and what is left once its
# watchdog has finished the run with nobody calling `status` or `resume`; in some cases
# the next command comes at once and must work too (whoever takes the lock first finishes).
KILLS = [
    ("wait_caught_up", "running", None, RunState.FAILED_ROLLED_BACK),
    ("capture_groups", "running", None, RunState.FAILED_ROLLED_BACK),
    ("stop_brokers", "done", "resume", RunState.FAILED_ROLLED_BACK),
    ("snapshot_volumes", "running", "backup", RunState.FAILED_ROLLED_BACK),
    ("snapshot_volumes", "done", None, RunState.COMPLETED_WITH_WARNINGS),
    ("seal_snapshots", "running", "status", RunState.COMPLETED_WITH_WARNINGS),
]


@pytest.mark.parametrize(("kill_when", "status", "then", "final"), KILLS)
def test_a_killed_backup_is_finished_by_its_watchdog(
    lab: LabHandle, topic: str, kill_when: str, status: str, then: str | None, final: str
) -> None:
    seed(lab, topic)
    backups = Backups(lab.config)
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        started = time.time() - 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "kasten_bp.cli", "backup", "--config", str(lab.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        backup_id = _wait_journal(backups, started, kill_when, {status})
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        watchdog = int(backups.store.load(backup_id).hold_watchdog["pid"])  # type: ignore[union-attr]
        if then is not None:
            result = cli_json(lab, then)
            # The command finished the run itself, or found it finished by the watchdog.
            assert [r["backup_id"] for r in result["recovered"]] in ([backup_id], [])
            if then == "backup":
                assert result["status"] == "COMPLETED"
        journal = _wait_final(backups, backup_id)
    assert journal.state == final
    assert all(d.status == StepStatus.DONE for d in journal.deferred)
    snapshot_kept = backups.platform.snapshot_dir(backup_id).exists()  # type: ignore[attr-defined]
    if final == RunState.FAILED_ROLLED_BACK:
        assert "crashed run found" in journal.events[-2]["note"]
        assert not snapshot_kept
    else:
        assert "crashed run found" in journal.warnings[0]
        assert snapshot_kept
    wait_for(f"watchdog pid {watchdog} to exit", lambda: not _alive(watchdog), 30)
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


def test_a_killed_quiesce_puts_the_mirror_back_long_before_its_hold_ends(
    lab: LabHandle, topic: str
) -> None:
    """The issue's report: `quiesce --hold-timeout 30s` killed while it paused MM2 left the
    connectors STOPPED for good. Its watchdog now finishes the run as soon as it is dead."""
    seed(lab, topic)
    backups = Backups(lab.config)
    with BackgroundProducer(lab.primary, topic, rate=100) as writer:
        started = time.time() - 1
        proc = subprocess.Popen(
            [*KASTEN_BP, "quiesce", "--hold-timeout", "10m", "--config", str(lab.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        backup_id = _wait_journal(backups, started, "wait_caught_up", {"running"})
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        killed_at = time.time()
        journal = _wait_final(backups, backup_id)
        # Within a minute, not at the 10 minute hold: the owner was seen dead.
        assert time.time() - killed_at < 120
    assert journal.state == RunState.FAILED_ROLLED_BACK
    assert not journal.hold_expired
    assert all(d.status == StepStatus.DONE for d in journal.deferred)
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


def _wait_final(backups: Backups, backup_id: str) -> Journal:
    def final() -> Journal | None:
        journal = backups.store.load(backup_id)
        return journal if journal is not None and journal.state in FINAL else None

    return wait_for(f"backup {backup_id} to be finished by its watchdog", final, 180)


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_a_command_waits_for_a_watchdog_finishing_a_dead_run_and_refuses_a_live_run(
    lab: LabHandle,
) -> None:
    """`resume` right after a kill meets the watchdog holding the lock while it finishes
    the run: it waits for it instead of failing with exit 2; a live run still refuses it."""
    platform = Backups(lab.config).platform
    released = threading.Event()

    def hold(owner: str) -> None:
        with platform.lock(owner):
            released.wait(3)

    for owner, expect in (("watchdog", 0), ("backup", 2)):
        released.clear()
        holder = threading.Thread(target=hold, args=(owner,))
        holder.start()
        time.sleep(0.5)  # the lock is taken
        try:
            result = subprocess.run(
                [*KASTEN_BP, "resume", "--config", str(lab.config_path)],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            released.set()
            holder.join()
        assert result.returncode == expect, result.stderr[-2000:]
        if owner == "watchdog":
            assert "waiting for a watchdog to finish a dead run" in result.stderr
        else:
            assert "another kasten-bp run holds the lock" in result.stderr

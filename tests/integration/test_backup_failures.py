"""Every failure path the engine promises, on the real lab: a step failing after it acted,
and kasten-bp killed between steps. Each ends with the mirror's brokers running, MM2's
connectors resumed and every acknowledged primary record on the mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from kasten_bp.backup import Backups
from kasten_bp.errors import RunFailed
from kasten_bp.steps import backup_steps
from kasten_bp.steps.base import BaseStep
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.states import RunState, StepStatus

from .helpers import BackgroundProducer, LabHandle, assert_all_mirrored, assert_mirror_running
from .test_backup import cli_json, seed

pytestmark = pytest.mark.integration
CONSISTENT_STEPS = [s.name for s in backup_steps("consistent")]


class FailsAfterActing(BaseStep):
    """Wraps a real step: it does its work, then fails — the hardest case to undo."""

    def __init__(self, inner: BaseStep) -> None:
        self.inner = inner
        self.name = inner.name

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return self.inner.plan(ctx)

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        self.inner.do(ctx, plan)
        raise RuntimeError(f"injected failure after {self.name}")

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        self.inner.undo(ctx, plan)


@pytest.mark.parametrize("failing", CONSISTENT_STEPS)
def test_a_failing_step_rolls_back(
    lab: LabHandle, topic: str, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def steps(mode: str) -> list[BaseStep]:
        return [FailsAfterActing(s) if s.name == failing else s for s in backup_steps(mode)]

    monkeypatch.setattr("kasten_bp.backup.backup_steps", steps)
    seed(lab, topic)
    backups = Backups(lab.config)
    failure = pytest.raises(RunFailed, match=f"injected failure after {failing}")
    with BackgroundProducer(lab.primary, topic, rate=100) as writer, failure:
        backups.backup("consistent")
    journal = backups.store.all()[-1]
    assert journal.state == RunState.FAILED_ROLLED_BACK
    index = CONSISTENT_STEPS.index(failing)
    assert [s.status for s in journal.steps[: index + 1]] == [StepStatus.UNDONE] * (index + 1)
    assert all(s.status == StepStatus.PENDING for s in journal.steps[index + 1 :])
    assert not backups.platform.snapshot_dir(journal.backup_id).exists()  # type: ignore[attr-defined]
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)


def _wait_journal(backups: Backups, started: float, step: str, statuses: set[str]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for journal in backups.store.all():
            fresh = journal.created_at >= started_iso(started)
            if fresh and journal.step(step).status in statuses:
                return journal.backup_id
        time.sleep(0.05)
    raise AssertionError(f"step {step} never reached {statuses}")


def started_iso(started: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize(
    ("kill_when", "statuses", "recover_with"),
    [
        ("wait_caught_up", {"running", "done"}, "status"),
        ("stop_brokers", {"done"}, "resume"),
        ("snapshot_volumes", {"running", "done"}, "backup"),
    ],
)
def test_a_killed_run_is_found_and_rolled_back(
    lab: LabHandle, topic: str, kill_when: str, statuses: set[str], recover_with: str
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
        backup_id = _wait_journal(backups, started, kill_when, statuses)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert backups.store.load(backup_id).state == RunState.RUNNING  # type: ignore[union-attr]
        result = cli_json(lab, recover_with)
    recovered = result["recovered"]
    assert [r["backup_id"] for r in recovered] == [backup_id]
    assert recovered[0]["state"] == RunState.FAILED_ROLLED_BACK
    journal = backups.store.load(backup_id)
    assert journal is not None and journal.state == RunState.FAILED_ROLLED_BACK
    assert "crashed run found" in journal.events[-2]["note"]
    if recover_with == "backup":
        assert result["status"] == "COMPLETED"
    assert_mirror_running(lab)
    assert_all_mirrored(lab, topic, writer.acked)

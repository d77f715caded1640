"""The backup's steps, one module each, and the step lists per mode."""

from __future__ import annotations

from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.capture_heads import CaptureHeads
from kasten_bp.steps.confirm_replication import ConfirmReplication
from kasten_bp.steps.pause_mirrormaker import PauseMirrorMaker
from kasten_bp.steps.preflight import Preflight
from kasten_bp.steps.resume_mirrormaker import ResumeMirrorMaker
from kasten_bp.steps.snapshot_volumes import SnapshotVolumes
from kasten_bp.steps.stop_brokers import StartBrokers, StopBrokers
from kasten_bp.steps.wait_caught_up import WaitCaughtUp

# Where the runbook verbs stop: `quiesce` holds the run after this step, `snapshot` after
# the next.
QUIESCE_UNTIL = StopBrokers.name
SNAPSHOT_STEP = SnapshotVolumes.name


def backup_steps(mode: str) -> list[BaseStep]:
    if mode == "hot":
        return [Preflight(), CaptureHeads(), SnapshotVolumes()]
    return [
        Preflight(),
        PauseMirrorMaker(),
        WaitCaughtUp(),
        CaptureHeads(),
        StopBrokers(),
        SnapshotVolumes(),
        StartBrokers(),
        ResumeMirrorMaker(),
        ConfirmReplication(),
    ]

"""The backup's steps, one module each, and the flow per mode."""

from __future__ import annotations

from kasten_bp.steps.advance_mm2_offsets import AdvanceMirrorMakerOffsets
from kasten_bp.steps.capture_groups import CaptureGroups
from kasten_bp.steps.capture_heads import CaptureHeads
from kasten_bp.steps.confirm_replication import ConfirmReplication
from kasten_bp.steps.discover_topics import DiscoverTopics
from kasten_bp.steps.models import RunInputs
from kasten_bp.steps.pause_mirrormaker import PauseMirrorMaker, ResumeMirrorMaker
from kasten_bp.steps.preflight import Preflight
from kasten_bp.steps.seal_content import SealContent
from kasten_bp.steps.seal_snapshots import SealSnapshots
from kasten_bp.steps.snapshot_volumes import SnapshotVolumes
from kasten_bp.steps.stop_brokers import StartBrokers, StopBrokers
from kasten_bp.steps.wait_caught_up import WaitCaughtUp
from kasten_bp.workflow.flow import Flow

# Where the runbook verbs stop: `quiesce` holds the run after this step, `snapshot` after
# the next.
QUIESCE_UNTIL = StopBrokers.name
SNAPSHOT_STEP = SnapshotVolumes.name

# Timing marks the engine's TimingListener notes: MM2 down and the mirror unavailable.
TIMING_MARKS = {
    ("started", PauseMirrorMaker.name): "mm2_stopped",
    ("done", ResumeMirrorMaker.name): "mm2_resumed",
    ("started", StopBrokers.name): "brokers_stopped",
    ("done", StartBrokers.name): "brokers_serving",
}


def backup_flow(mode: str) -> Flow:
    if mode == "hot":
        return Flow(
            RunInputs, [Preflight(), CaptureHeads(), SnapshotVolumes()], checks=[SealSnapshots()]
        )
    return Flow(
        RunInputs,
        steps=[
            Preflight(),
            DiscoverTopics(),
            PauseMirrorMaker(),
            WaitCaughtUp(),
            AdvanceMirrorMakerOffsets(),
            CaptureHeads(),
            CaptureGroups(),
            StopBrokers(),
            SnapshotVolumes(),
        ],
        # Run after the deferred actions (brokers started, MM2 resumed).
        checks=[SealSnapshots(), SealContent(), ConfirmReplication()],
        deferred=[ResumeMirrorMaker(), StartBrokers()],
    )

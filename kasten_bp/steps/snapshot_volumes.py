"""Snapshot every broker volume and record the snapshots in the manifest. Once done, the
backup is kept whatever fails later."""

from __future__ import annotations

from kasten_bp.catalog.manifests import load_manifest, save_manifest
from kasten_bp.errors import KastenBpError
from kasten_bp.steps.models import SnapshotPlan, Snapshots
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step

TIMEOUT = 600.0


class SnapshotVolumes(Step[Nothing, SnapshotPlan, Snapshots]):
    name = "snapshot_volumes"
    keeps_backup = True

    def plan(self, ctx: RunContext, needs: Nothing) -> SnapshotPlan:
        return SnapshotPlan(snapshot_brokers=[b.id for b in ctx.platform.brokers()])

    def do(self, ctx: RunContext, needs: Nothing, plan: SnapshotPlan) -> Snapshots:
        refs = ctx.platform.snapshot_volumes(ctx.backup_id, plan.snapshot_brokers, TIMEOUT)
        manifest = load_manifest(ctx.catalog, ctx.backup_id)
        manifest.snapshots = refs
        save_manifest(ctx.catalog, manifest)
        return Snapshots(snapshots=len(refs), snapshot_bytes=sum(r.size_bytes for r in refs))

    def undo(
        self, ctx: RunContext, needs: Nothing, plan: SnapshotPlan, failure: BaseException | None
    ) -> None:
        # Half-made snapshots are deleted: a failed backup must not look restorable. One left
        # behind fails the undo (ROLLBACK_FAILED): `resume` tries again once it is fixed.
        left = ctx.platform.delete_snapshots(ctx.backup_id)
        if left:
            raise KastenBpError(
                f"snapshots of backup {ctx.backup_id} not deleted: " + "; ".join(left)
            )

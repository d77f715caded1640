"""Checksum the snapshots once the brokers serve again: reading every byte of the copies
is not work the mirror has to be down for. A failure here is a warning (the backup is
kept); restore then has no checksum to check the copies against, and says so."""

from __future__ import annotations

from kasten_bp.catalog.manifests import load_manifest, save_manifest
from kasten_bp.steps.models import Sealed
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


class SealSnapshots(Step[Nothing, Nothing, Sealed]):
    name = "seal_snapshots"

    def do(self, ctx: RunContext, needs: Nothing, plan: Nothing) -> Sealed:
        manifest = load_manifest(ctx.catalog, ctx.backup_id)
        sealed = ctx.platform.seal_snapshots(ctx.backup_id, manifest.snapshots)
        added = sum(1 for old, new in zip(manifest.snapshots, sealed, strict=True) if new != old)
        if added:
            manifest.snapshots = sealed
            save_manifest(ctx.catalog, manifest)
        return Sealed(sealed_snapshots=added)

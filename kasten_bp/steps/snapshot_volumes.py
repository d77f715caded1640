"""Snapshot every broker volume and record the snapshots in the manifest."""

from __future__ import annotations

from typing import Any

from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.common import load_manifest, save_manifest
from kasten_bp.workflow.engine import RunContext

TIMEOUT = 600.0


class SnapshotVolumes(BaseStep):
    name = "snapshot_volumes"

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        return {"brokers": [b.id for b in ctx.platform.brokers()]}

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        refs = ctx.platform.snapshot_volumes(ctx.backup_id, plan["brokers"], TIMEOUT)
        manifest = load_manifest(ctx)
        manifest.snapshots = refs
        save_manifest(ctx, manifest)
        return {"snapshots": len(refs), "bytes": sum(r.size_bytes for r in refs)}

    def undo(self, ctx: RunContext, plan: dict[str, Any]) -> None:
        # Half-made snapshots are deleted: a failed backup must not look restorable.
        ctx.platform.delete_snapshots(ctx.backup_id)

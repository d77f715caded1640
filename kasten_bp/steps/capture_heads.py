"""Capture every replicated partition's head into the manifest."""

from __future__ import annotations

from typing import Any

from kasten_bp.heads import capture_heads
from kasten_bp.kafka import admin
from kasten_bp.manifest import ClusterInfo, Manifest
from kasten_bp.steps.base import BaseStep
from kasten_bp.steps.common import offsets_from_json, save_manifest, step_plan, step_result
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.journal import now_iso


class CaptureHeads(BaseStep):
    name = "capture_heads"

    def do(self, ctx: RunContext, plan: dict[str, Any]) -> dict[str, Any]:
        config = ctx.config
        mode = ctx.options.get("mode", "consistent")
        if mode == "consistent":
            offsets = offsets_from_json(step_result(ctx, "wait_caught_up")["source_offsets"])
            connectors = step_plan(ctx, "pause_mirrormaker").get("states", {})
        else:
            # Hot: whatever MM2 has committed right now; nothing is proven.
            offsets = ctx.platform.mirrormaker.source_offsets()
            connectors = ctx.platform.mirrormaker.connector_states()
        window = int(ctx.options.get("head_window") or config.backup.head_window)
        heads = capture_heads(config, window, offsets)
        manifest = Manifest(
            backup_id=ctx.backup_id,
            created_at=now_iso(),
            mode=mode,
            platform=ctx.platform.name,
            head_window=window,
            primary=ClusterInfo(bootstrap=config.primary.bootstrap),
            mirror=ClusterInfo(
                bootstrap=config.mirror.bootstrap,
                cluster_id=ctx.platform.mirror_cluster_id(),
                broker_ids=admin.broker_ids(config.mirror.bootstrap),
            ),
            replication_policy=config.replication.policy,
            source_alias=config.replication.source_alias,
            connectors=connectors,
            partitions=heads,
        )
        save_manifest(ctx, manifest)
        return {"partitions": len(heads), "records_in_heads": sum(len(h.head) for h in heads)}

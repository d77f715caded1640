"""Capture every replicated partition's head into the manifest."""

from __future__ import annotations

from kasten_bp.catalog.manifests import save_manifest
from kasten_bp.consistency.capture import capture_heads
from kasten_bp.consistency.scope import replicated_partitions
from kasten_bp.kafka import admin
from kasten_bp.manifest import ClusterInfo, Manifest
from kasten_bp.steps.discover_topics import DISCOVERY_TIMEOUT
from kasten_bp.steps.models import Captured, CaptureNeeds, by_partition
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step
from kasten_bp.workflow.journal import now_iso


class CaptureHeads(Step[CaptureNeeds, Nothing, Captured]):
    name = "capture_heads"

    def do(self, ctx: RunContext, needs: CaptureNeeds, plan: Nothing) -> Captured:
        config = ctx.config
        mm2 = ctx.platform.mirrormaker
        cut = None
        if needs.source_offsets is not None:
            offsets = by_partition(needs.source_offsets)
            if needs.cut_offsets is not None:
                cut = by_partition(needs.cut_offsets)
        else:
            offsets = mm2.source_offsets()  # hot: nothing is proven
        connectors = needs.connector_states
        if connectors is None:
            connectors = mm2.connector_states()
        window = needs.head_window or config.backup.head_window
        primary, mirror = config.primary.bootstrap, config.mirror.bootstrap
        scope = replicated_partitions(primary, mirror, config.replication)
        heads = capture_heads(primary, mirror, scope, window, offsets, cut)
        manifest = Manifest(
            backup_id=ctx.backup_id,
            created_at=now_iso(),
            mode=needs.mode,
            platform=ctx.platform.name,
            head_window=window,
            primary=ClusterInfo(bootstrap=primary),
            mirror=ClusterInfo(
                bootstrap=mirror,
                cluster_id=ctx.platform.mirror_cluster_id(),
                broker_ids=admin.broker_ids(mirror),
            ),
            replication_policy=config.replication.policy,
            source_alias=config.replication.source_alias,
            connectors=connectors,
            partitions=heads,
            not_in_backup=needs.unmirrored_topics or [],
        )
        if manifest.not_in_backup:
            # Never a quiet omission: the backup is kept, and ends with this warning.
            ctx.journal.warnings.append(
                f"primary topics not in the backup (MM2 had not created them on the mirror "
                f"within {DISCOVERY_TIMEOUT:.0f}s): {', '.join(manifest.not_in_backup)}"
            )
        save_manifest(ctx.catalog, manifest)
        return Captured(partitions=len(heads), records_in_heads=sum(len(h.head) for h in heads))

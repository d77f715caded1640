"""Seal a content digest of every partition below the cut, from the mirror once it serves
again: off the downtime path, and what lies below the cut no longer changes (MM2 only
appends) except by retention or compaction, which this step detects and records as
`unsealed` with the reason. A failure here is a warning (the backup is kept; verify then
checks those partitions by their heads)."""

from __future__ import annotations

from kasten_bp.catalog.manifests import load_manifest, save_manifest
from kasten_bp.consistency.seal import content_digests
from kasten_bp.kafka import admin
from kasten_bp.manifest import ContentSeal, PartitionHead
from kasten_bp.steps.models import ContentSealed
from kasten_bp.workflow.engine import RunContext
from kasten_bp.workflow.flow import Nothing, Step


class SealContent(Step[Nothing, Nothing, ContentSealed]):
    name = "seal_content"

    def do(self, ctx: RunContext, needs: Nothing, plan: Nothing) -> ContentSealed:
        if not ctx.config.backup.seal_content:
            return ContentSealed(content_sealed=0, content_unsealed=0)
        manifest = load_manifest(ctx.catalog, ctx.backup_id)
        mirror = ctx.config.mirror.bootstrap
        marks = admin.watermarks(mirror, [h.key for h in manifest.partitions])
        unsealed = {h.key: unsealable(h, marks.get(h.key)) for h in manifest.partitions}
        ranges = {
            h.key: (h.log_start_offset, h.end_offset)
            for h in manifest.partitions
            if unsealed[h.key] is None
        }
        digests = content_digests(mirror, ranges)
        for head in manifest.partitions:
            reason = unsealed[head.key]
            seal = ContentSeal(
                sealed=reason is None,
                start_offset=head.log_start_offset,
                end_offset=head.end_offset,
                reason=reason,
            )
            if reason is None:
                seal.digest, seal.records = digests[head.key]
            head.content_seal = seal
        save_manifest(ctx.catalog, manifest)
        sealed = sum(1 for reason in unsealed.values() if reason is None)
        return ContentSealed(content_sealed=sealed, content_unsealed=len(unsealed) - sealed)


def unsealable(head: PartitionHead, marks: tuple[int, int] | None) -> str | None:
    """Why this partition's content below the cut cannot be sealed now (None: it can)."""
    if head.compacted:
        return "compacted: the log cleaner may remove records at any time, on either side"
    if marks is None:
        return "no longer on the mirror"
    low, high = marks
    if low > head.log_start_offset:
        return f"aged out: the mirror's log start moved from {head.log_start_offset} to {low}"
    if high < head.end_offset:
        return f"the mirror's end {high} is below the cut's {head.end_offset}"
    return None

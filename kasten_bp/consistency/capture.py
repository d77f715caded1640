"""Capturing partition heads for the manifest: the mirror's last K records and where they
live on the primary."""

from __future__ import annotations

from kasten_bp.consistency.scope import ReplicatedPartition, compacted_topics
from kasten_bp.consistency.translate import TranslationRequest, translate_many
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import HeadRecord, PartitionHead
from kasten_bp.records import window_digest


def capture_heads(
    primary: str,
    mirror: str,
    scope: list[ReplicatedPartition],
    window_size: int,
    source_offsets: dict[tuple[str, int], int],
    cut_offsets: dict[tuple[str, int], int] | None = None,
) -> list[PartitionHead]:
    """`source_offsets`: MM2's committed offsets; `cut_offsets`: the proven cut (the primary
    offset of the mirror's last record), which narrows the translation where known."""
    cut = cut_offsets or {}
    marks = admin.watermarks(mirror, [rp.mirror_key for rp in scope])
    compacted = compacted_topics(mirror, sorted({rp.mirror_topic for rp in scope}))
    windows = reading.read_tails(
        mirror, {key: (low, high, window_size) for key, (low, high) in marks.items()}
    )
    requests = [
        TranslationRequest(
            rp.primary_topic,
            rp.partition,
            windows[rp.mirror_key],
            cut.get(rp.primary_key, source_offsets.get(rp.primary_key)),
            rp.mirror_topic in compacted,
        )
        for rp in scope
    ]
    heads = []
    for rp, request, alignment in zip(
        scope, requests, translate_many(primary, requests), strict=True
    ):
        low, high = marks[rp.mirror_key]
        heads.append(
            PartitionHead(
                topic=rp.mirror_topic,
                primary_topic=rp.primary_topic,
                partition=rp.partition,
                log_start_offset=low,
                end_offset=high,
                compacted=request.compacted,
                window_digest=window_digest(request.window),
                head=[
                    HeadRecord(
                        offset=r.offset, timestamp=r.timestamp, digest=r.digest(), primary_offset=po
                    )
                    for r, po in zip(request.window, alignment.offsets, strict=True)
                ],
                mm2_source_offset=source_offsets.get(rp.primary_key),
                cut_primary_offset=cut.get(rp.primary_key),
            )
        )
    return heads

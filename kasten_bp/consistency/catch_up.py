"""Reading what the catch-up proof compares: the mirror's last records and the primary's
records at MM2's committed source offsets."""

from __future__ import annotations

from kasten_bp.consistency.core.catch_up import CatchUpView, lagging
from kasten_bp.consistency.scope import ReplicatedPartition
from kasten_bp.kafka import admin, reading


def lagging_partitions(
    primary: str,
    mirror: str,
    scope: list[ReplicatedPartition],
    source_offsets: dict[tuple[str, int], int],
) -> list[str]:
    """Why each partition of `scope` is not caught up (empty when the mirror holds exactly
    what MM2 read)."""
    marks = admin.watermarks(mirror, [rp.mirror_key for rp in scope])
    tails = reading.read_tails(mirror, {key: (low, high, 1) for key, (low, high) in marks.items()})
    committed = {
        rp.primary_key: source_offsets[rp.primary_key]
        for rp in scope
        if rp.primary_key in source_offsets
    }
    primary_marks = admin.watermarks(primary, sorted(committed))
    sources = reading.read_ranges(primary, {key: (o, o + 1) for key, o in committed.items()})
    views = []
    for rp in scope:
        low, high = marks[rp.mirror_key]
        tail = tails[rp.mirror_key]
        source = sources.get(rp.primary_key)
        on_primary = primary_marks.get(rp.primary_key)
        views.append(
            CatchUpView(
                name=f"{rp.mirror_topic}[{rp.partition}]",
                mirror_has_records=high > low,
                mirror_last=tail[-1] if tail else None,
                committed=committed.get(rp.primary_key),
                primary_log_start=on_primary[0] if on_primary else None,
                primary_at_committed=source[0] if source else None,
            )
        )
    return lagging(views)

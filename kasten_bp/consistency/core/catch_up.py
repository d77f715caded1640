"""The catch-up comparison: does the mirror hold exactly what MM2 read? Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.records import Record


@dataclass(frozen=True)
class CatchUpView:
    """One replicated partition as read for the proof."""

    name: str  # mirror topic[partition]
    mirror_has_records: bool
    mirror_last: Record | None
    # The last primary offset MM2 committed, and what the primary holds there.
    committed: int | None
    primary_log_start: int | None
    primary_at_committed: Record | None


def lagging(views: list[CatchUpView]) -> list[str]:
    """Why each partition that is not caught up is not: its last mirror record must be the
    primary's record at MM2's committed offset."""
    out = []
    for v in views:
        if v.committed is None:
            if v.mirror_has_records:
                out.append(f"{v.name}: has records but MM2 committed no source offset")
            continue
        last, source = v.mirror_last, v.primary_at_committed
        if (
            last is None
            and source is None
            and v.primary_log_start is not None
            and v.primary_log_start > v.committed
        ):
            continue  # retention removed those records on both sides: nothing left to differ
        if last is None or source is None or last.content() != source.content():
            out.append(f"{v.name}: last record differs from primary offset {v.committed}")
    return out

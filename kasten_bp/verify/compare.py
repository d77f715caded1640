"""Classifying one partition from what was read on each side. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.manifest import PartitionHead
from kasten_bp.records import Record, window_digest
from kasten_bp.verify.report import PartitionReport, Status


@dataclass(frozen=True)
class RestoredSide:
    log_start: int
    end: int
    window: list[Record]


@dataclass(frozen=True)
class PrimarySide:
    end: int
    # Primary offsets of the restored window's records (None where not found).
    aligned: list[int | None]
    # Unaligned restored records that a later primary record with the same key replaced.
    superseded: int
    last_timestamp: int | None
    # Data records on the primary after the restored head, when counted (exact: control
    # records excluded); otherwise the offset difference is used.
    records_after: int | None = None
    # The primary's oldest record is newer than the restored head: retention removed it.
    aged_out: bool = False


def classify(
    head: PartitionHead, restored: RestoredSide | None, primary: PrimarySide | None
) -> PartitionReport:
    report = PartitionReport(
        topic=head.topic,
        partition=head.partition,
        primary_topic=head.primary_topic,
        status=Status.MISSING,
        manifest_end_offset=head.end_offset,
    )
    if restored is None:
        report.detail = "partition not found on the restored cluster"
        return report
    report.restored_end_offset = restored.end
    report.restored_log_start_offset = restored.log_start
    matches_manifest = (
        restored.end == head.end_offset and window_digest(restored.window) == head.window_digest
    )
    report.heads_match_manifest = matches_manifest
    if not matches_manifest:
        report.status = Status.DIVERGENT
        if restored.end != head.end_offset:
            report.detail = f"restored end offset {restored.end} != manifest {head.end_offset}"
        else:
            report.detail = "restored head records differ from the manifest"
        return report
    if primary is None:
        report.status = Status.DIVERGENT
        report.detail = f"primary topic {head.primary_topic} partition not found"
        return report
    report.primary_end_offset = primary.end
    unmatched = sum(1 for o in primary.aligned if o is None) - primary.superseded
    if unmatched > 0 and primary.aged_out:
        # The restored head equals the backup, but the primary's retention has since
        # deleted those records: nothing is left to compare them with.
        report.status = Status.BEHIND
        report.records_behind = primary.records_after
        report.detail = (
            "primary no longer holds the restored head (retention); head matches manifest"
        )
        return report
    if unmatched > 0:
        report.status = Status.DIVERGENT
        report.detail = (
            f"{unmatched} of the last {len(restored.window)} restored records "
            "are not on the primary"
        )
        return report
    found = [o for o in primary.aligned if o is not None]
    head_next = (max(found) + 1) if found else 0
    report.restored_head_primary_offset = head_next - 1 if found else None
    if primary.records_after is not None:
        report.records_behind = primary.records_after
    else:
        report.records_behind = max(0, primary.end - head_next) if found else primary.end
    report.records_compared = len(restored.window)
    if report.records_behind:
        report.status = Status.BEHIND
        last_restored = restored.window[-1].timestamp if restored.window else None
        if primary.last_timestamp is not None and last_restored is not None:
            report.seconds_behind = max(0.0, (primary.last_timestamp - last_restored) / 1000)
    else:
        report.status = Status.CONSISTENT
    return report

"""Classifying one partition from what was read on each side. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.consistency.core.matching import Alignment
from kasten_bp.consistency.core.report import PartitionReport, Status
from kasten_bp.manifest import PartitionHead
from kasten_bp.records import Record, window_digest


@dataclass(frozen=True)
class RestoredSide:
    log_start: int
    end: int
    window: list[Record]


@dataclass(frozen=True)
class PrimarySide:
    end: int
    # Where the restored window's records are on the primary.
    alignment: Alignment
    # Unaligned restored records that a later primary record with the same key replaced.
    superseded: int
    last_timestamp: int | None
    # Data records on the primary after the restored head, when counted (exact: control
    # records excluded); otherwise the offset difference is used.
    records_after: int | None = None
    # The primary's oldest record is newer than the restored head: retention removed it.
    aged_out: bool = False
    # The head window's oldest records that retention removed from the primary since, the
    # rest of the window matching from the primary's first record on.
    aged_out_prefix: int = 0


def classify(
    head: PartitionHead, restored: RestoredSide | None, primary: PrimarySide | None
) -> PartitionReport:
    report = _report(head, restored)
    if restored is None:
        return report
    manifest_problem = _manifest_problem(head, restored)
    report.heads_match_manifest = manifest_problem is None
    report.status = Status.DIVERGENT
    if primary is None:
        report.detail = join_details(
            manifest_problem, f"primary topic {head.primary_topic} not found"
        )
        return report
    report.primary_end_offset = primary.end
    unmatched = primary.alignment.unmatched - primary.superseded - primary.aged_out_prefix
    if unmatched > 0 and primary.aged_out and manifest_problem is None:
        # The restored head equals the backup, but the primary's retention has since
        # deleted those records: nothing is left to compare them with.
        report.status = Status.BEHIND
        report.records_behind = primary.records_after
        report.detail = (
            "primary no longer holds the restored head (retention); head matches manifest"
        )
        return report
    primary_problem = _primary_problem(head, restored, primary, unmatched)
    if manifest_problem or primary_problem:
        report.detail = join_details(manifest_problem, primary_problem)
        return report
    last = primary.alignment.last
    report.restored_head_primary_offset = last
    if primary.records_after is not None:
        report.records_behind = primary.records_after
    else:
        report.records_behind = primary.end if last is None else max(0, primary.end - last - 1)
    report.records_compared = len(restored.window) - primary.aged_out_prefix
    if primary.aged_out_prefix:
        report.detail = (
            f"the oldest {primary.aged_out_prefix} record(s) of the restored head are no "
            "longer on the primary (retention); the rest match from its first record"
        )
    if report.records_behind:
        report.status = Status.BEHIND
        last_restored = restored.window[-1].timestamp if restored.window else None
        if primary.last_timestamp is not None and last_restored is not None:
            report.seconds_behind = max(0.0, (primary.last_timestamp - last_restored) / 1000)
    else:
        report.status = Status.CONSISTENT
    return report


def classify_by_manifest(
    head: PartitionHead,
    restored: RestoredSide | None,
    deep: bool,
    content: tuple[str, int] | None = None,
) -> PartitionReport:
    """A partition against what the backup itself recorded, the primary out of reach: log
    start and end offsets, the head window's digests and, with `deep`, the sealed content
    (`content`: the restored side's digest and record count over the sealed range)."""
    report = _report(head, restored)
    if restored is None:
        return report
    manifest_problem = _manifest_problem(head, restored)
    report.heads_match_manifest = manifest_problem is None
    problems = [manifest_problem]
    if restored.log_start != head.log_start_offset:
        problems.append(
            f"restored log start {restored.log_start} != manifest {head.log_start_offset}"
        )
    seal, note = head.content_seal, None
    if deep and content is not None and seal is not None and seal.digest is not None:
        digest, records = content
        if digest != seal.digest or records != seal.records:
            problems.append(
                f"restored records in [{seal.start_offset}, {seal.end_offset}) differ from "
                f"the content sealed at the backup ({records} records read, {seal.records} "
                "sealed)"
            )
        report.records_compared = records
    else:
        report.records_compared = len(restored.window)
        if deep:
            why = seal.reason if seal is not None and seal.reason else "the backup sealed none"
            note = f"unsealed ({why}): checked by its head window"
    if any(problems):
        report.status = Status.DIVERGENT
        report.detail = join_details(*problems, note)
        return report
    # The backup's own RPO, as of the cut: nothing is known of the primary since.
    report.status = Status.CONSISTENT
    report.records_behind = 0
    report.detail = note or ""
    return report


def _report(head: PartitionHead, restored: RestoredSide | None) -> PartitionReport:
    """A partition's report with what the manifest and the restored side say: MISSING, and
    why, when the restored cluster does not have it."""
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
    return report


def _manifest_problem(head: PartitionHead, restored: RestoredSide) -> str | None:
    if restored.end != head.end_offset:
        return f"restored end offset {restored.end} != manifest {head.end_offset}"
    if window_digest(restored.window) == head.window_digest:
        return None
    if head.compacted and head.head and _compacted_since(head, restored.window):
        return None
    return "restored head records differ from the manifest"


def _compacted_since(head: PartitionHead, window: list[Record]) -> bool:
    """Whether the restored head is the manifest's with records removed and nothing else:
    a restored cluster's own log cleaner compacts superseded records away after the restore.
    Every restored record in the manifest's window must sit at its offset with its content;
    records older than the window are not compared here (the primary side checks them). The
    newest record stays: a cleaner never touches the active segment."""
    recorded = {h.offset: h.digest for h in head.head}
    newer = [r for r in window if r.offset >= head.head[0].offset]
    if not newer or newer[-1].offset != head.head[-1].offset:
        return False
    return all(recorded.get(r.offset) == r.digest() for r in newer)


def _primary_problem(
    head: PartitionHead, restored: RestoredSide, primary: PrimarySide, unmatched: int
) -> str | None:
    if unmatched > 0:
        return (
            f"{unmatched} of the last {len(restored.window)} restored records "
            "are not on the primary"
        )
    if head.compacted or primary.alignment.contiguous:
        # Compaction leaves holes on either side; only order and content can be proven.
        return None
    if primary.aged_out_prefix:
        return None  # the rest of the window is one run from the primary's first record
    gaps = ", ".join(g.describe() for g in primary.alignment.gaps)
    return f"head window is not consecutive on the primary: missing {gaps or 'records'}"


def join_details(*problems: str | None) -> str:
    """Details joined into one line, empty ones left out."""
    return "; ".join(p for p in problems if p)

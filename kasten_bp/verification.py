"""Verify a restored cluster against its manifest (exact) and the primary (by content)."""

from __future__ import annotations

from collections.abc import Iterator

from kasten_bp.config import Config
from kasten_bp.errors import KastenBpError
from kasten_bp.heads import is_internal, translate_to_primary
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import Manifest, PartitionHead
from kasten_bp.records import Record
from kasten_bp.verify.compare import PrimarySide, RestoredSide, classify
from kasten_bp.verify.matching import superseded
from kasten_bp.verify.report import PartitionReport, Status, VerifyReport, build_report

# Count primary records past the head exactly when there are at most this many offsets.
EXACT_COUNT_LIMIT = 5000


def verify(config: Config, manifest: Manifest, restored: str, deep: bool = False) -> VerifyReport:
    primary = config.primary.bootstrap
    restored_topics = admin.topics(restored)
    primary_topics = admin.topics(primary)
    reports: list[PartitionReport] = []
    in_manifest = {(p.topic, p.partition) for p in manifest.partitions}
    restored_keys = [
        (t, p) for t, n in restored_topics.items() if not is_internal(t) for p in range(n)
    ]
    marks = admin.watermarks(restored, [k for k in restored_keys if k in in_manifest])
    for head in manifest.partitions:
        key = (head.topic, head.partition)
        if key not in marks:
            reports.append(classify(head, None, None))
            continue
        report = _verify_partition(config, head, restored, marks[key], primary_topics)
        if deep and report.status in (Status.CONSISTENT, Status.BEHIND):
            _deep_compare(config, head, restored, marks[key], report)
        reports.append(report)
    for topic, partition in restored_keys:
        if (topic, partition) not in in_manifest:
            reports.append(
                PartitionReport(
                    topic=topic,
                    partition=partition,
                    status=Status.UNEXPECTED,
                    detail="on the restored cluster but not in the backup's manifest",
                )
            )
    return build_report(manifest.backup_id, restored, primary, deep, reports)


def _verify_partition(
    config: Config,
    head: PartitionHead,
    restored: str,
    marks: tuple[int, int],
    primary_topics: dict[str, int],
) -> PartitionReport:
    low, high = marks
    window = reading.read_tail(restored, head.topic, head.partition, low, high, len(head.head))
    restored_side = RestoredSide(low, high, window)
    if primary_topics.get(head.primary_topic, 0) <= head.partition:
        return classify(head, restored_side, None)
    primary = config.primary.bootstrap
    ((p_low, p_high),) = admin.watermarks(primary, [(head.primary_topic, head.partition)]).values()
    hint = head.head[-1].primary_offset if head.head else head.mm2_source_offset
    aligned = translate_to_primary(
        config, head.primary_topic, head.partition, window, hint, head.compacted
    )
    later: list[Record] = []
    superseded_count = 0
    found = [o for o in aligned if o is not None]
    next_offset = max(found) + 1 if found else p_low
    if head.compacted and len(found) < len(aligned):
        later = reading.read_range(primary, head.primary_topic, head.partition, next_offset, p_high)
        superseded_count = sum(
            1 for r, o in zip(window, aligned, strict=True) if o is None and superseded(r, later)
        )
    records_after = None
    if p_high - next_offset <= EXACT_COUNT_LIMIT:
        records_after = sum(
            1
            for _ in reading.stream_range(
                primary, head.primary_topic, head.partition, next_offset, p_high
            )
        )
    last_ts = None
    tail = reading.read_tail(primary, head.primary_topic, head.partition, p_low, p_high, 1)
    if tail:
        last_ts = tail[-1].timestamp
    return classify(
        head,
        restored_side,
        PrimarySide(
            end=p_high,
            aligned=aligned,
            superseded=superseded_count,
            last_timestamp=last_ts,
            records_after=records_after,
        ),
    )


def _deep_compare(
    config: Config,
    head: PartitionHead,
    restored: str,
    marks: tuple[int, int],
    report: PartitionReport,
) -> None:
    """Stream every restored record and walk the primary alongside it."""
    low, high = marks
    primary = config.primary.bootstrap
    restored_iter = reading.stream_range(restored, head.topic, head.partition, low, high)
    first = next(restored_iter, None)
    if first is None:
        return
    start = admin.offsets_for_times(primary, (head.primary_topic, head.partition), first.timestamp)
    if start < 0:
        report.status, report.detail = Status.DIVERGENT, "first restored record not on the primary"
        return
    end = (report.restored_head_primary_offset or start) + 1
    primary_iter = reading.stream_range(primary, head.primary_topic, head.partition, start, end)
    compared = 0
    mismatch = _walk(_chain(first, restored_iter), primary_iter, head.compacted)
    if isinstance(mismatch, int):
        compared = mismatch
    else:
        report.status = Status.DIVERGENT
        report.detail = mismatch
        return
    report.records_compared = compared


def _chain(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


def _walk(restored: Iterator[Record], primary: Iterator[Record], compacted: bool) -> int | str:
    """Restored records must appear in order on the primary; returns the count compared,
    or a description of the first mismatch."""
    compared = 0
    skipped_start = True  # before the first match, primary records older than the restore
    for r in restored:
        digest = r.digest()
        while True:
            p = next(primary, None)
            if p is None:
                return f"restored offset {r.offset} not found on the primary"
            if p.digest() == digest:
                compared += 1
                skipped_start = False
                break
            if not (compacted or skipped_start):
                return f"restored offset {r.offset} differs from primary offset {p.offset}"
    return compared


def require_restored(bootstrap: str) -> None:
    try:
        admin.broker_ids(bootstrap, timeout=10)
    except Exception as exc:  # noqa: BLE001 - one line for the user
        raise KastenBpError(f"restored cluster {bootstrap} unreachable: {exc}") from None

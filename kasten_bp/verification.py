"""Verify a restored cluster against its manifest (exact) and the primary (by content)."""

from __future__ import annotations

from collections.abc import Iterator

from kasten_bp.config import Config
from kasten_bp.errors import KastenBpError
from kasten_bp.heads import TranslationRequest, is_internal, translate_many
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import Manifest, PartitionHead
from kasten_bp.records import Record
from kasten_bp.verify.compare import PrimarySide, RestoredSide, classify
from kasten_bp.verify.matching import superseded
from kasten_bp.verify.report import PartitionReport, Status, VerifyReport, build_report

# Count primary records past the head exactly when there are at most this many offsets.
EXACT_COUNT_LIMIT = 5000


def verify(config: Config, manifest: Manifest, restored: str, deep: bool = False) -> VerifyReport:
    """Reads are batched across partitions (one assignment per cluster and purpose), so the
    default mode costs a few round trips plus O(partitions x head window) records."""
    primary = config.primary.bootstrap
    restored_topics = admin.topics(restored)
    primary_topics = admin.topics(primary)
    in_manifest = {(p.topic, p.partition) for p in manifest.partitions}
    restored_keys = [
        (t, p) for t, n in restored_topics.items() if not is_internal(t) for p in range(n)
    ]
    marks = admin.watermarks(restored, [k for k in restored_keys if k in in_manifest])
    present = [h for h in manifest.partitions if (h.topic, h.partition) in marks]
    windows = reading.read_tails(
        restored,
        {(h.topic, h.partition): (*marks[(h.topic, h.partition)], len(h.head)) for h in present},
    )
    on_primary = [h for h in present if primary_topics.get(h.primary_topic, 0) > h.partition]
    primary_sides = _primary_sides(config, on_primary, windows)
    reports: list[PartitionReport] = []
    for head in manifest.partitions:
        key = (head.topic, head.partition)
        if key not in marks:
            reports.append(classify(head, None, None))
            continue
        restored_side = RestoredSide(marks[key][0], marks[key][1], windows[key])
        report = classify(head, restored_side, primary_sides.get(key))
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


def _primary_sides(
    config: Config, heads: list[PartitionHead], windows: dict[tuple[str, int], list[Record]]
) -> dict[tuple[str, int], PrimarySide]:
    primary = config.primary.bootstrap
    keys = [(h.topic, h.partition) for h in heads]
    pkeys = [(h.primary_topic, h.partition) for h in heads]
    pmarks = admin.watermarks(primary, sorted(set(pkeys)))
    requests = [
        TranslationRequest(
            h.primary_topic,
            h.partition,
            windows[key],
            h.head[-1].primary_offset if h.head else h.mm2_source_offset,
            h.compacted,
        )
        for h, key in zip(heads, keys, strict=True)
    ]
    aligned_all = translate_many(config, requests)
    next_offsets = {}
    for pkey, aligned in zip(pkeys, aligned_all, strict=True):
        found = [o for o in aligned if o is not None]
        next_offsets[pkey] = max(found) + 1 if found else pmarks[pkey][0]
    # What the primary holds past the restored head: counted exactly when small, and read
    # for compacted topics to tell superseded records from lost ones.
    after_ranges = {
        pkey: (next_offsets[pkey], pmarks[pkey][1])
        for h, pkey in zip(heads, pkeys, strict=True)
        if pmarks[pkey][1] - next_offsets[pkey] <= EXACT_COUNT_LIMIT or h.compacted
    }
    after = reading.read_ranges(primary, after_ranges)
    lasts = reading.read_tails(primary, {pkey: (*pmarks[pkey], 1) for pkey in pkeys})
    sides = {}
    for h, key, pkey, aligned in zip(heads, keys, pkeys, aligned_all, strict=True):
        later = after.get(pkey, [])
        superseded_count = 0
        if h.compacted:
            superseded_count = sum(
                1
                for r, o in zip(windows[key], aligned, strict=True)
                if o is None and superseded(r, later)
            )
        last = lasts.get(pkey) or []
        window = windows[key]
        first_offset = pmarks[pkey][0]
        aged_out = (
            bool(window)
            and not any(o is not None for o in aligned)
            and (first_offset > 0 and _older_than_primary(primary, pkey, first_offset, window[-1]))
        )
        sides[key] = PrimarySide(
            end=pmarks[pkey][1],
            aligned=aligned,
            superseded=superseded_count,
            last_timestamp=last[-1].timestamp if last else None,
            records_after=len(later) if pkey in after_ranges else None,
            aged_out=aged_out,
        )
    return sides


def _older_than_primary(primary: str, pkey: tuple[str, int], first: int, newest: Record) -> bool:
    """Whether the restored head predates everything the primary still holds."""
    oldest = reading.read_ranges(primary, {pkey: (first, first + 1)}).get(pkey) or []
    return bool(oldest) and newest.timestamp < oldest[0].timestamp


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

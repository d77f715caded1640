"""Verify a restored cluster against its manifest (exact) and the primary (by content)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kasten_bp.consistency.core.classify import (
    PrimarySide,
    RestoredSide,
    classify,
    classify_by_manifest,
    join_details,
)
from kasten_bp.consistency.core.matching import aged_out_prefix, superseded_in_window
from kasten_bp.consistency.core.report import (
    PartitionReport,
    Status,
    VerifyReport,
    build_report,
)
from kasten_bp.consistency.deep import DeepTask, compare_all
from kasten_bp.consistency.scope import is_internal
from kasten_bp.consistency.seal import content_digests
from kasten_bp.consistency.translate import TranslationRequest, translate_many
from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import Manifest, PartitionHead
from kasten_bp.records import Record

# Count primary records past the head exactly when there are at most this many offsets.
EXACT_COUNT_LIMIT = 5000


def verify(
    primary: str,
    manifest: Manifest,
    restored: str,
    deep: bool,
    deep_workers: int | None = None,
    topics: re.Pattern[str] | None = None,
) -> VerifyReport:
    """Reads are batched across partitions (one assignment per cluster and purpose), so the
    default mode costs a few round trips plus O(partitions x head window) records. `deep`
    compares every record too, partitions in parallel in up to `deep_workers` processes
    (default: one per two CPUs). `topics` limits the verify, and its verdict, to the
    topics it fully matches (restored names)."""
    if topics is not None:
        manifest = manifest.only_topics(topics)
    side = _read_restored(manifest, restored, topics)
    marks, windows = side.marks, side.windows
    primary_topics = admin.topics(primary)
    present = [h for h in manifest.partitions if h.key in marks]
    on_primary = [h for h in present if primary_topics.get(h.primary_topic, 0) > h.partition]
    primary_sides = _primary_sides(primary, on_primary, windows)
    reports: list[PartitionReport] = []
    to_compare: list[tuple[PartitionHead, PartitionReport]] = []
    for head in manifest.partitions:
        report = classify(head, side.restored_side(head.key), primary_sides.get(head.key))
        if deep and report.status in (Status.CONSISTENT, Status.BEHIND):
            to_compare.append((head, report))
        reports.append(report)
    if to_compare:
        _deep_compare(primary, restored, marks, to_compare, deep_workers)
    reports += side.unexpected()
    result = build_report(
        manifest.backup_id, restored, primary, reading.ISOLATION_LEVEL, deep, reports
    )
    result.topic_filter = None if topics is None else topics.pattern
    return result


def verify_by_manifest(
    manifest: Manifest,
    restored: str,
    deep: bool,
    primary: str,
    topics: re.Pattern[str] | None = None,
) -> VerifyReport:
    """The restored cluster against what the backup recorded, without the primary (the
    disaster day): offsets and head digests; with `deep`, the content sealed at the backup,
    one streaming read of the sealed ranges. `primary` only names it in the report."""
    if topics is not None:
        manifest = manifest.only_topics(topics)
    side = _read_restored(manifest, restored, topics)
    contents = {}
    if deep:
        sealed = {
            h.key: (h.content_seal.start_offset, h.content_seal.end_offset)
            for h in manifest.partitions
            if h.key in side.marks and h.content_seal is not None and h.content_seal.sealed
        }
        contents = content_digests(restored, sealed)
    reports = [
        classify_by_manifest(
            head,
            side.restored_side(head.key),
            deep,
            contents.get(head.key),
        )
        for head in manifest.partitions
    ]
    reports += side.unexpected()
    result = build_report(
        manifest.backup_id, restored, primary, reading.ISOLATION_LEVEL, deep, reports
    )
    result.topic_filter = None if topics is None else topics.pattern
    result.compared_with = "manifest"
    return result


@dataclass(frozen=True)
class _Restored:
    """What verify reads of the restored cluster, whatever it compares with."""

    keys: list[tuple[str, int]]  # every partition of the topics in scope
    in_manifest: set[tuple[str, int]]
    marks: dict[tuple[str, int], tuple[int, int]]
    windows: dict[tuple[str, int], list[Record]]

    def restored_side(self, key: tuple[str, int]) -> RestoredSide | None:
        if key not in self.marks:
            return None
        low, high = self.marks[key]
        return RestoredSide(low, high, self.windows[key])

    def unexpected(self) -> list[PartitionReport]:
        return [
            PartitionReport(
                topic=topic,
                partition=partition,
                status=Status.UNEXPECTED,
                detail="on the restored cluster but not in the backup's manifest",
            )
            for topic, partition in self.keys
            if (topic, partition) not in self.in_manifest
        ]


def _read_restored(manifest: Manifest, restored: str, topics: re.Pattern[str] | None) -> _Restored:
    restored_topics = admin.topics(restored)
    in_manifest = {h.key for h in manifest.partitions}
    keys = [
        (t, p)
        for t, n in restored_topics.items()
        if not is_internal(t) and (topics is None or topics.fullmatch(t))
        for p in range(n)
    ]
    marks = admin.watermarks(restored, [k for k in keys if k in in_manifest])
    present = [h for h in manifest.partitions if h.key in marks]
    windows = reading.read_tails(restored, {h.key: (*marks[h.key], len(h.head)) for h in present})
    return _Restored(keys, in_manifest, marks, windows)


def _primary_sides(
    primary: str, heads: list[PartitionHead], windows: dict[tuple[str, int], list[Record]]
) -> dict[tuple[str, int], PrimarySide]:
    pkeys = [(h.primary_topic, h.partition) for h in heads]
    pmarks = admin.watermarks(primary, sorted(set(pkeys)))
    requests = [
        TranslationRequest(
            h.primary_topic,
            h.partition,
            windows[h.key],
            h.head[-1].primary_offset if h.head else h.last_primary_offset,
            h.compacted,
        )
        for h in heads
    ]
    alignments = translate_many(primary, requests)
    next_offsets = {}
    for pkey, alignment in zip(pkeys, alignments, strict=True):
        found = alignment.last
        next_offsets[pkey] = pmarks[pkey][0] if found is None else found + 1
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
    for h, pkey, alignment in zip(heads, pkeys, alignments, strict=True):
        later = after.get(pkey, [])
        window = windows[h.key]
        superseded_count = 0
        if h.compacted:
            superseded_count = superseded_in_window(window, alignment.offsets, later)
        newest = lasts.get(pkey) or []
        first_offset = pmarks[pkey][0]
        aged_out = (
            bool(window)
            and alignment.last is None
            and first_offset > 0
            and _older_than_primary(primary, pkey, first_offset, window[-1])
        )
        sides[h.key] = PrimarySide(
            end=pmarks[pkey][1],
            alignment=alignment,
            superseded=superseded_count,
            last_timestamp=newest[-1].timestamp if newest else None,
            records_after=len(later) if pkey in after_ranges else None,
            aged_out=aged_out,
            aged_out_prefix=aged_out_prefix(alignment, first_offset),
        )
    return sides


def _older_than_primary(primary: str, pkey: tuple[str, int], first: int, newest: Record) -> bool:
    """Whether the restored head predates everything the primary still holds."""
    oldest = reading.read_ranges(primary, {pkey: (first, first + 1)}).get(pkey) or []
    return bool(oldest) and newest.timestamp < oldest[0].timestamp


def _deep_compare(
    primary: str,
    restored: str,
    marks: dict[tuple[str, int], tuple[int, int]],
    to_compare: list[tuple[PartitionHead, PartitionReport]],
    workers: int | None,
) -> None:
    tasks = [
        DeepTask(
            topic=head.topic,
            partition=head.partition,
            primary_topic=head.primary_topic,
            compacted=head.compacted,
            low=marks[head.key][0],
            high=marks[head.key][1],
            head_primary_offset=report.restored_head_primary_offset,
        )
        for head, report in to_compare
    ]
    outcomes = compare_all(primary, restored, tasks, workers)
    for (_, report), outcome in zip(to_compare, outcomes, strict=True):
        if outcome.divergence is not None:
            report.status, report.detail = Status.DIVERGENT, outcome.divergence
            continue
        report.records_compared = outcome.compared
        if outcome.skipped_older:
            report.detail = join_details(
                report.detail,
                f"{outcome.skipped_older} restored record(s) older than the primary's oldest "
                "were not compared (retention removed them there)",
            )


def require_restored(bootstrap: str) -> None:
    try:
        admin.broker_ids(bootstrap, timeout=10)
    except Exception as exc:  # noqa: BLE001 - one line for the user
        raise KastenBpError(f"restored cluster {bootstrap} unreachable: {exc}") from None

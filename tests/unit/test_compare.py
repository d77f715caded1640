"""Classifying a partition (consistency/core/classify.py) and the report verdict
(consistency/core/report.py)."""

from __future__ import annotations

import pytest

from kasten_bp.consistency.core.classify import PrimarySide, RestoredSide, classify
from kasten_bp.consistency.core.matching import Alignment, Gap
from kasten_bp.consistency.core.report import PartitionReport, Status, build_report
from kasten_bp.manifest import HeadRecord, PartitionHead
from kasten_bp.records import Record, window_digest

TS = 1_700_000_000_000


def window(n: int = 4, first_offset: int = 96, key_prefix: str = "k") -> list[Record]:
    return [
        Record("orders", 0, first_offset + i, TS + i * 1000, f"{key_prefix}{i}".encode(), b"v")
        for i in range(n)
    ]


def head_for(records: list[Record], end: int = 100, compacted: bool = False) -> PartitionHead:
    return PartitionHead(
        topic="orders",
        primary_topic="orders",
        partition=0,
        log_start_offset=0,
        end_offset=end,
        compacted=compacted,
        window_digest=window_digest(records),
        head=[
            HeadRecord(offset=r.offset, timestamp=r.timestamp, digest=r.digest()) for r in records
        ],
    )


def primary(
    aligned: list[int | None],
    end: int,
    superseded: int = 0,
    last_ts: int | None = None,
    records_after: int | None = None,
    gaps: tuple[Gap, ...] = (),
) -> PrimarySide:
    """A primary side whose alignment is a run unless records are missing or gaps given."""
    contiguous = None not in aligned and not gaps
    return PrimarySide(
        end=end,
        alignment=Alignment(contiguous, tuple(aligned), gaps),
        superseded=superseded,
        last_timestamp=last_ts,
        records_after=records_after,
    )


W = window()
HEAD = head_for(W)
RESTORED = RestoredSide(log_start=0, end=100, window=W)
ALIGNED: list[int | None] = [196, 197, 198, 199]


def test_missing_when_not_restored() -> None:
    report = classify(HEAD, None, None)
    assert report.status == Status.MISSING
    assert report.manifest_end_offset == 100
    assert report.restored_end_offset is None
    assert "not found" in report.detail


def test_divergent_on_end_offset_mismatch() -> None:
    restored = RestoredSide(log_start=0, end=99, window=W)
    report = classify(HEAD, restored, primary(ALIGNED, 200))
    assert report.status == Status.DIVERGENT
    assert report.heads_match_manifest is False
    assert "99" in report.detail and "100" in report.detail
    assert report.restored_end_offset == 99


def test_divergent_on_window_digest_mismatch() -> None:
    changed = [*W[:-1], Record("orders", 0, 99, W[-1].timestamp, W[-1].key, b"changed")]
    report = classify(HEAD, RestoredSide(0, 100, changed), primary(ALIGNED, 200))
    assert report.status == Status.DIVERGENT
    assert report.heads_match_manifest is False
    assert "differ from the manifest" in report.detail


def test_divergent_when_primary_partition_missing() -> None:
    report = classify(HEAD, RESTORED, None)
    assert report.status == Status.DIVERGENT
    assert report.heads_match_manifest is True
    assert "orders" in report.detail


def test_divergent_when_records_not_on_primary() -> None:
    report = classify(HEAD, RESTORED, primary([196, 197, None, None], 200))
    assert report.status == Status.DIVERGENT
    assert report.heads_match_manifest is True
    assert "2 of the last 4" in report.detail


def test_divergent_when_the_window_has_a_hole_on_the_primary() -> None:
    # Every restored record is on the primary, in order, but primary offset 198 (a data
    # record) lies between two of them: the restore lost it.
    holed = primary([196, 197, 199, 200], 201, gaps=(Gap(197, 199, 1),), records_after=0)
    report = classify(HEAD, RESTORED, holed)
    assert report.status == Status.DIVERGENT
    assert report.heads_match_manifest is True
    assert "not consecutive" in report.detail
    assert "between primary offsets 197 and 199" in report.detail
    assert report.records_behind is None


def test_compacted_tolerates_a_hole() -> None:
    head = head_for(W, compacted=True)
    holed = primary([196, 197, 199, 200], 201, gaps=(Gap(197, 199, 1),), records_after=0)
    report = classify(head, RESTORED, holed)
    assert report.status == Status.CONSISTENT
    assert report.restored_head_primary_offset == 200


def test_manifest_and_primary_problems_are_both_named() -> None:
    restored = RestoredSide(log_start=0, end=99, window=W)
    holed = primary([196, 197, 199, 200], 201, gaps=(Gap(197, 199, 1),))
    report = classify(HEAD, restored, holed)
    assert report.status == Status.DIVERGENT
    assert "restored end offset 99 != manifest 100" in report.detail
    assert "between primary offsets 197 and 199" in report.detail


def test_consistent_when_nothing_behind() -> None:
    report = classify(HEAD, RESTORED, primary(ALIGNED, 200, last_ts=W[-1].timestamp))
    assert report.status == Status.CONSISTENT
    assert report.records_behind == 0
    assert report.seconds_behind is None
    assert report.restored_head_primary_offset == 199
    assert report.primary_end_offset == 200
    assert report.records_compared == 4
    assert report.heads_match_manifest is True


def test_consistent_when_exact_count_is_zero_despite_offset_gap() -> None:
    # The primary's end is past the head only by a transaction marker: no data behind.
    report = classify(HEAD, RESTORED, primary(ALIGNED, 201, records_after=0))
    assert report.status == Status.CONSISTENT
    assert report.records_behind == 0


def test_behind_with_records_and_seconds() -> None:
    last_ts = W[-1].timestamp + 7_500
    report = classify(HEAD, RESTORED, primary(ALIGNED, 250, last_ts=last_ts))
    assert report.status == Status.BEHIND
    assert report.records_behind == 50
    assert report.seconds_behind == pytest.approx(7.5)
    assert report.restored_head_primary_offset == 199


def test_behind_uses_exact_count_when_given() -> None:
    report = classify(HEAD, RESTORED, primary(ALIGNED, 250, last_ts=TS, records_after=42))
    assert report.status == Status.BEHIND
    assert report.records_behind == 42
    # A primary clock older than the restored head never gives negative seconds.
    assert report.seconds_behind == 0.0


def test_compacted_superseded_records_are_tolerated() -> None:
    head = head_for(W, compacted=True)
    aligned: list[int | None] = [196, None, 198, 199]
    report = classify(head, RESTORED, primary(aligned, 200, superseded=1))
    assert report.status == Status.CONSISTENT
    # One missing record that nothing superseded is still divergent.
    report = classify(head, RESTORED, primary([196, None, None, 199], 200, superseded=1))
    assert report.status == Status.DIVERGENT
    assert "1 of the last 4" in report.detail


def test_empty_partition_is_consistent_with_an_empty_primary() -> None:
    head = head_for([], end=0)
    report = classify(head, RestoredSide(0, 0, []), primary([], 0))
    assert report.status == Status.CONSISTENT
    assert report.records_behind == 0
    # ...and behind when the primary has records the (empty) backup does not.
    report = classify(head, RestoredSide(0, 0, []), primary([], 5))
    assert report.status == Status.BEHIND
    assert report.records_behind == 5


def part(status: Status, behind: int | None = None, secs: float | None = None) -> PartitionReport:
    return PartitionReport(
        topic="t", partition=0, status=status, records_behind=behind, seconds_behind=secs
    )


def test_report_consistent_when_all_consistent_or_behind() -> None:
    report = build_report(
        "b1",
        "r:1",
        "p:1",
        "read_committed",
        False,
        [part(Status.CONSISTENT, 0), part(Status.BEHIND, 5, 2.0), part(Status.BEHIND, 3, 4.5)],
    )
    assert report.verdict == "consistent"
    assert report.rpo_records == 8
    assert report.rpo_seconds == 4.5
    assert report.counts["consistent"] == 1 and report.counts["behind"] == 2
    assert report.counts["divergent"] == 0
    assert report.primary_isolation_level == "read_committed"


@pytest.mark.parametrize("bad", [Status.DIVERGENT, Status.MISSING, Status.UNEXPECTED])
def test_report_inconsistent_with_any_bad_partition(bad: Status) -> None:
    report = build_report(
        "b1", "r:1", "p:1", "read_committed", True, [part(Status.CONSISTENT, 0), part(bad)]
    )
    assert report.verdict == "inconsistent"
    assert report.counts[bad.value] == 1
    assert report.deep is True


def test_report_without_partitions_is_inconsistent() -> None:
    report = build_report("b1", "r:1", "p:1", "read_committed", False, [])
    assert report.verdict == "inconsistent"
    assert report.rpo_records == 0 and report.rpo_seconds == 0.0


def test_a_compacted_head_may_lose_superseded_records_after_the_restore() -> None:
    # The restored cluster's own cleaner removed offset 97; the window read from it now
    # reaches back to 95. Same offsets, same contents otherwise: the head is the backup's.
    recorded = window(4, first_offset=96)
    head = head_for(recorded, compacted=True)
    older = window(1, first_offset=95, key_prefix="old")
    cleaned = older + [r for r in recorded if r.offset != 97]
    restored = RestoredSide(log_start=0, end=100, window=cleaned)
    report = classify(head, restored, primary([195, 196, 198, 199], 200, superseded=0))
    assert report.heads_match_manifest is True, report.detail


@pytest.mark.parametrize(
    "change",
    ["not compacted", "content changed", "newest gone"],
)
def test_a_head_that_lost_records_otherwise_differs_from_the_manifest(change: str) -> None:
    recorded = window(4, first_offset=96)
    head = head_for(recorded, compacted=change != "not compacted")
    kept = [r for r in recorded if r.offset != 97]
    if change == "content changed":
        kept[0] = Record("orders", 0, 96, TS, b"k0", b"changed")
    if change == "newest gone":
        kept = kept[:-1]
    restored = RestoredSide(log_start=0, end=100, window=kept)
    report = classify(head, restored, primary([None] * len(kept), 200))
    assert report.heads_match_manifest is False
    assert "differ from the manifest" in report.detail


def test_a_head_partly_aged_out_of_the_primary_is_not_divergent() -> None:
    side = primary([None, None, 198, 199], 200)
    aged = PrimarySide(
        end=side.end,
        alignment=side.alignment,
        superseded=0,
        last_timestamp=None,
        records_after=0,
        aged_out_prefix=2,
    )
    report = classify(HEAD, RESTORED, aged)
    assert report.status == Status.CONSISTENT, report.detail
    assert report.records_compared == 2
    assert "retention" in report.detail
    # Without the prefix (the primary holds older records), the same holes are divergent.
    report = classify(HEAD, RESTORED, side)
    assert report.status == Status.DIVERGENT

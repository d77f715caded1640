"""The proof after a replay: per partition, the target holds exactly the selected source
records, in order: key, value, timestamp, the source's headers and the original-offset
headers. Both sides are streamed side by side (memory does not grow with the data)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest

from kasten_bp.kafka import admin, reading
from kasten_bp.records import Record
from kasten_bp.replay.copy import replayed_headers, selected
from kasten_bp.replay.report import PartitionProgress
from kasten_bp.replay.source import Source
from kasten_bp.replay.spec import ReplaySpec

OK = "ok"


def _expected(source: Source, progress: PartitionProgress, spec: ReplaySpec) -> Iterator[Record]:
    plan = progress.plan()
    if plan.span == 0:
        return
    records = source.stream({plan.key: (plan.start, plan.end)})
    if len(plan.ranges) == 1 and spec.from_ms is None and spec.until_ms is None:
        yield from records  # the stream's bounds are the selection
        return
    for record in records:
        if selected(plan, spec, record):
            yield record


def _actual(target: str, progress: PartitionProgress) -> Iterator[Record]:
    key = (progress.target_topic, progress.partition)
    (_, end), *_ = admin.watermarks(target, [key]).values()
    start = progress.target_start_offset
    if end <= start:
        return iter(())
    return reading.stream_range(target, key[0], key[1], start, end)


def prove_partition(
    source: Source, target: str, progress: PartitionProgress, spec: ReplaySpec
) -> str:
    """ "ok", or one line saying where the target first differs from the selection."""
    where = f"{progress.target_topic}[{progress.partition}]"
    count = 0
    for want, got in zip_longest(_expected(source, progress, spec), _actual(target, progress)):
        if want is None:
            assert got is not None
            return f"{where}: unexpected record at target offset {got.offset} (past the selection)"
        if got is None:
            return f"{where}: missing source offset {want.offset} ({count} records matched)"
        expected = (want.key, want.value, replayed_headers(want, spec), want.timestamp)
        actual = (got.key, got.value, got.headers, got.timestamp)
        if expected != actual:
            field = next(
                name
                for name, a, b in zip(
                    ("key", "value", "headers", "timestamp"), expected, actual, strict=True
                )
                if a != b
            )
            return (
                f"{where}: {field} differs at target offset {got.offset} "
                f"(source offset {want.offset})"
            )
        count += 1
    if count != progress.records:
        return f"{where}: {count} records match, the report counted {progress.records}"
    return OK

"""Deep verify's walk over whole partitions, a batch at a time (pure: it judges batches
others read).

Same judgement as `matching.walk` record by record: every restored record must appear on
the primary in order, one right after another once the first has matched (unless the topic
is compacted, where the primary may hold records the restored cluster's cleaner removed);
primary records before the first match are skipped. What makes it fast: where a run of
restored records equals the same number of primary records, a list comparison in C per
column accepts them all; record-by-record steps happen only around a difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Content = Any  # (timestamp, key, value, headers): compared by equality only


class ContentBatch(Protocol):
    """Records as columns of their contents: record i is (c[i] for c in columns)."""

    @property
    def columns(self) -> Sequence[Sequence[Content]]: ...

    @property
    def size(self) -> int: ...

    def content(self, index: int) -> Content: ...

    def offset(self, index: int) -> int: ...


@dataclass
class WalkResult:
    compared: int = 0
    skipped_older: int = 0
    mismatch: str | None = None


class _Cursor:
    """A position in a stream of batches."""

    def __init__(self, batches: Iterator[ContentBatch]) -> None:
        self._batches = batches
        self.batch: ContentBatch | None = None
        self.index = 0

    def ready(self) -> bool:
        """Whether a record is at the cursor (fetching the next batch when needed)."""
        while self.batch is None or self.index >= self.batch.size:
            self.batch = next(self._batches, None)
            self.index = 0
            if self.batch is None:
                return False
        return True

    def content(self) -> Content:
        assert self.batch is not None
        return self.batch.content(self.index)

    def remaining(self) -> int:
        assert self.batch is not None
        return self.batch.size - self.index

    def run(self, n: int) -> list[Sequence[Content]]:
        """The next n records, column by column."""
        assert self.batch is not None
        i = self.index
        if i == 0 and n == self.batch.size:
            return list(self.batch.columns)  # the whole batch: no copy
        return [column[i : i + n] for column in self.batch.columns]

    def offset(self) -> int:
        assert self.batch is not None
        return self.batch.offset(self.index)


def skip_older(restored: _Cursor, oldest: Content) -> int:
    """Advance past restored records up to the twin of the primary's `oldest` record,
    stopping at a record newer than it (then there is no twin: the walk reports it)."""
    skipped = 0
    while restored.ready():
        content = restored.content()
        if content == oldest or content[0] > oldest[0]:
            break
        restored.index += 1
        skipped += 1
    return skipped


def deep_walk(
    restored_batches: Iterator[ContentBatch],
    primary_batches: Iterator[ContentBatch],
    compacted: bool,
    primary_oldest: Content | None = None,
) -> WalkResult:
    """Compare every restored record with the primary; `primary_oldest` is the primary's
    oldest record when its retention has deleted older ones (restored records before its
    twin are counted in `skipped_older`, not compared)."""
    restored, primary = _Cursor(restored_batches), _Cursor(primary_batches)
    result = WalkResult()
    if primary_oldest is not None:
        result.skipped_older = skip_older(restored, primary_oldest)
    slow = 0  # record-by-record steps to take before the next bulk comparison
    while restored.ready():
        if not primary.ready():
            result.mismatch = f"restored offset {restored.offset()} not found on the primary"
            return result
        if result.compared and not slow:
            n = min(restored.remaining(), primary.remaining())
            if restored.run(n) == primary.run(n):
                result.compared += n
                restored.index += n
                primary.index += n
                continue
            slow = n  # the first difference lies within these n records: step past it
        slow = max(0, slow - 1)
        if restored.content() == primary.content():
            result.compared += 1
            restored.index += 1
        elif result.compared and not compacted:
            result.mismatch = (
                f"restored offset {restored.offset()} differs from primary offset "
                f"{primary.offset()}"
            )
            return result
        primary.index += 1
    return result

"""Consumer-group positions across a restore (issue 8): where a group that committed offset
P on the primary must resume on the restored cluster, and how a committed position on the
restored cluster compares with that. Pure decisions over what the I/O layer looked up.

P is the next record the group would read, so what it has consumed ends at the primary's
record at P-1. Its restored position is one past that record's restored twin (found by
content: MM2 renumbers offsets). Methods, best first:

- `exact`: one past the twin of the last data record before P (a gap between that record
  and P made of transaction markers or aborted records changes nothing); also P at or past
  the cut with no data record in between (the group has consumed everything in the backup:
  the restored end) and P before the first record in the backup (the restored start);
- `earlier_record`: the record at P-1 is gone (aged out, compacted away); one past the twin
  of the nearest earlier record that still has one; the consumer re-reads what lies between;
- `checkpoint`: no record before P has a twin; MM2's checkpoint's downstream offset (MM2
  itself documents it may be up to `offset.lag.max` records early);
- `past_cut`: the group committed records that are not in the backup: reported, never
  clamped to the end;
- `none`: nothing to translate with.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal

Method = Literal["exact", "earlier_record", "checkpoint", "past_cut", "none"]
Standing = Literal["exact", "behind", "ahead", "missing"]


@dataclass(frozen=True)
class Twin:
    """A primary record and where its content twin is on the restored cluster."""

    primary_offset: int
    restored_offset: int


@dataclass(frozen=True)
class Checkpoint:
    """MM2's latest checkpoint for a group partition (upstream: primary, downstream: mirror)."""

    upstream_offset: int
    downstream_offset: int


@dataclass(frozen=True)
class Lookup:
    """What the I/O layer found for one group partition."""

    committed: int  # P on the primary
    cut_end: int  # primary offset one past the newest record in the backup
    restored_start: int
    restored_end: int
    # Primary offset of the first record in the backup (None: the partition is empty).
    first_in_backup: int | None
    # Data records on the primary in [cut_end, P): committed but not in the backup.
    past_cut_records: int
    # The nearest record before P that has a twin, and whether it is the last data record
    # before P (nothing but markers or aborted records between it and P).
    previous: Twin | None
    previous_is_last: bool
    # Where the twin of the first primary record at or after P is (None: not found or P at
    # the cut): the end of what a consumer placed after `previous` would re-read.
    next_restored: int | None
    checkpoint: Checkpoint | None
    # The restored offsets read around the twins, [start, stop), and the data records found
    # there: a re-read is counted in records (a compacted or transactional restored log has
    # gaps); outside the window it is the offset distance, an upper bound.
    restored_window: tuple[int, int] | None = None
    restored_data: tuple[int, ...] = ()


@dataclass(frozen=True)
class Translation:
    method: Method
    restored_offset: int | None
    reread: int | None  # records a consumer would read again (None: unknown)
    detail: str = ""
    # The highest restored offset that skips nothing the group had not read: after an
    # `earlier_record` fallback, the twin of its first unread record (committing anywhere
    # from restored_offset up to it re-reads less and skips nothing); else restored_offset.
    latest_safe: int | None = None


def translate(found: Lookup) -> Translation:
    p = found.committed
    if found.past_cut_records > 0:
        return Translation(
            "past_cut",
            None,
            None,
            f"committed offset {p} is past the backup's cut at primary offset "
            f"{found.cut_end}: {found.past_cut_records} consumed record(s) are not in the backup",
        )
    if p >= found.cut_end:
        return Translation("exact", found.restored_end, 0, "consumed everything in the backup")
    if found.first_in_backup is not None and p <= found.first_in_backup:
        return Translation("exact", found.restored_start, 0, "consumed nothing in the backup")
    if found.previous is not None:
        position = found.previous.restored_offset + 1
        if found.previous_is_last:
            return Translation("exact", position, 0)
        until = found.next_restored if found.next_restored is not None else found.restored_end
        return Translation(
            "earlier_record",
            position,
            _records_between(found, position, until),
            f"the record before {p} is gone; the nearest earlier one with a twin is at "
            f"primary offset {found.previous.primary_offset}",
            latest_safe=max(position, until),
        )
    cp = found.checkpoint
    if cp is not None and cp.upstream_offset <= p:
        return Translation(
            "checkpoint",
            cp.downstream_offset,
            None,
            f"no record before {p} has a twin; MM2's checkpoint for upstream offset "
            f"{cp.upstream_offset}",
        )
    return Translation("none", None, None, f"no record before {p} has a twin and no checkpoint")


def _records_between(found: Lookup, start: int, stop: int) -> int:
    window = found.restored_window
    if window is not None and window[0] <= start and stop <= window[1]:
        return bisect_left(found.restored_data, stop) - bisect_left(found.restored_data, start)
    return max(0, stop - start)


@dataclass(frozen=True)
class Judgement:
    status: Standing
    records: int  # how many records it would re-read (behind) or skip (ahead)


def judge(committed: int | None, expected: int, latest_safe: int | None = None) -> Judgement:
    """A group's committed offset on the restored cluster against its translated position
    (`latest_safe`: the highest offset that still skips nothing, see Translation)."""
    upper = expected if latest_safe is None else max(expected, latest_safe)
    if committed is None:
        return Judgement("missing", 0)
    if expected <= committed <= upper:
        return Judgement("exact", 0)
    if committed < expected:
        return Judgement("behind", expected - committed)
    return Judgement("ahead", committed - upper)

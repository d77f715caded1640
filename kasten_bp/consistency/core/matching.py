"""Aligning records across clusters by content (offsets do not line up: MM2 renumbers,
transactions leave control-record gaps, compaction leaves holes). Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kasten_bp.records import Record


@dataclass(frozen=True)
class Gap:
    """Data records of the other side that lie between two matched window records."""

    after: int  # offset (other side) of the matched record before the gap
    before: int  # offset (other side) of the matched record after the gap
    records: int  # how many data records the window lacks there

    def describe(self) -> str:
        return f"{self.records} record(s) between primary offsets {self.after} and {self.before}"


@dataclass(frozen=True)
class Alignment:
    """Where a window's records are on the other side.

    `contiguous` is the proof: the window is one run of consecutive data records there.
    `offsets` otherwise only say how much matches (in order, first twin wins, None where
    not found): a window with a hole matches record by record and still is not a copy.
    """

    contiguous: bool
    offsets: tuple[int | None, ...]
    gaps: tuple[Gap, ...] = ()

    @property
    def unmatched(self) -> int:
        return sum(1 for o in self.offsets if o is None)

    @property
    def last(self) -> int | None:
        """The other side's offset of the newest matched record."""
        return max((o for o in self.offsets if o is not None), default=None)


def align(window: Sequence[Record], candidates: Iterable[Record]) -> Alignment:
    """Align `window` with `candidates` (both in offset order, data records only: a control
    record is never read, so a transaction marker does not break a run)."""
    if not window:
        return Alignment(contiguous=True, offsets=())
    wanted = [r.digest() for r in window]
    cands = [(c.offset, c.digest()) for c in candidates]
    n = len(wanted)
    # Every start where the whole window follows, record after record; the first wins.
    for start in range(len(cands) - n + 1):
        if all(cands[start + i][1] == wanted[i] for i in range(n)):
            return Alignment(contiguous=True, offsets=tuple(o for o, _ in cands[start : start + n]))
    return _greedy(wanted, cands)


def _greedy(wanted: list[str], cands: list[tuple[int, str]]) -> Alignment:
    """In-order matching that may skip candidates; the skips it had to make are the gaps."""
    offsets: list[int | None] = [None] * len(wanted)
    gaps = []
    pos = 0
    prev: int | None = None  # candidate index of the previous match
    for i, digest in enumerate(wanted):
        for j in range(pos, len(cands)):
            if cands[j][1] == digest:
                offsets[i] = cands[j][0]
                if prev is not None and j - prev > 1:
                    gaps.append(Gap(cands[prev][0], cands[j][0], j - prev - 1))
                prev, pos = j, j + 1
                break
    return Alignment(contiguous=False, offsets=tuple(offsets), gaps=tuple(gaps))


def aged_out_prefix(alignment: Alignment, primary_log_start: int) -> int:
    """How many of the window's oldest records the primary's retention has deleted since:
    they are unmatched, every later one matched with no gap, and the first match is the
    primary's oldest record (it holds nothing older that could have been their twins)."""
    offsets = alignment.offsets
    leading = next((i for i, o in enumerate(offsets) if o is not None), len(offsets))
    if leading == 0 or leading == len(offsets) or alignment.gaps:
        return 0
    if None in offsets[leading:] or offsets[leading] != primary_log_start:
        return 0
    return leading


def superseded(record: Record, later: Iterable[Record]) -> bool:
    """In a compacted topic, a record may be gone from one side because a later record with
    the same key replaced it."""
    return record.key is not None and any(r.key == record.key for r in later)


def superseded_in_window(
    window: list[Record], aligned: tuple[int | None, ...], after: list[Record]
) -> int:
    """How many of a compacted head window's records are missing on the primary because a
    later record with the same key replaced them there: one found later in the window (its
    twin is on the primary, so the primary's cleaner may drop the older one) or one the
    primary holds past the window (`after`)."""
    count = 0
    for i, (record, offset) in enumerate(zip(window, aligned, strict=True)):
        if offset is not None:
            continue
        later_in_window = (
            r for r, o in zip(window[i + 1 :], aligned[i + 1 :], strict=True) if o is not None
        )
        if superseded(record, later_in_window) or superseded(record, after):
            count += 1
    return count

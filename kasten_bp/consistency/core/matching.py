"""Aligning records across clusters by content (offsets do not line up: MM2 renumbers,
transactions leave control-record gaps, compaction leaves holes). Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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


def superseded(record: Record, later: Iterable[Record]) -> bool:
    """In a compacted topic, a record may be gone from one side because a later record with
    the same key replaced it."""
    return record.key is not None and any(r.key == record.key for r in later)


def walk(restored: Iterator[Record], primary: Iterator[Record], compacted: bool) -> int | str:
    """Restored records must appear in order on the primary, one after another unless the
    topic is compacted; returns the count compared, or a description of the first mismatch.
    Primary records older than the first restored one are skipped."""
    compared = 0
    for r in restored:
        digest = r.digest()
        while True:
            p = next(primary, None)
            if p is None:
                return f"restored offset {r.offset} not found on the primary"
            if p.digest() == digest:
                compared += 1
                break
            if compared and not compacted:
                return f"restored offset {r.offset} differs from primary offset {p.offset}"
    return compared

"""Aligning records across clusters by content (offsets do not line up: MM2 renumbers,
transactions leave control-record gaps, compaction leaves holes). Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kasten_bp.records import Record


def align(
    window: Sequence[Record], candidates: Iterable[Record], allow_gaps: bool
) -> list[int | None]:
    """For each record of `window`, the offset of its content-equal twin in `candidates`.

    Both are in offset order. The window must appear in order; without `allow_gaps` the
    twins must be consecutive data records (a control-record gap is invisible here since
    control records are never read). Unmatched entries are None.
    """
    result: list[int | None] = [None] * len(window)
    if not window:
        return result
    wanted = [r.digest() for r in window]
    cands = [(c.offset, c.digest()) for c in candidates]
    if not allow_gaps:
        # The window's first record fixes the start; then every next record must follow.
        for start in range(len(cands)):
            if cands[start][1] != wanted[0]:
                continue
            if all(
                start + i < len(cands) and cands[start + i][1] == wanted[i]
                for i in range(len(wanted))
            ):
                return [cands[start + i][0] for i in range(len(wanted))]
        # Fall through to the greedy match to report how much does match.
    pos = 0
    for i, digest in enumerate(wanted):
        for j in range(pos, len(cands)):
            if cands[j][1] == digest:
                result[i] = cands[j][0]
                pos = j + 1
                break
    return result


def superseded(record: Record, later: Iterable[Record]) -> bool:
    """In a compacted topic, a record may be gone from one side because a later record with
    the same key replaced it."""
    return record.key is not None and any(r.key == record.key for r in later)

"""Where records live on the primary, found by content (offsets do not line up)."""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.consistency.core.matching import Alignment, align
from kasten_bp.kafka import admin, reading
from kasten_bp.records import Record

# How far before a hinted offset to look: room for control records and compaction holes.
HINT_SLACK = 16
# How far past a timestamp lookup to look.
LOOKUP_SLACK = 10_000


@dataclass(frozen=True)
class TranslationRequest:
    primary_topic: str
    partition: int
    window: list[Record]
    # The primary offset of the window's last record as far as known (MM2's committed
    # source offset, or the manifest's): narrows the search.
    hint_last_offset: int | None
    compacted: bool

    @property
    def key(self) -> tuple[str, int]:
        return (self.primary_topic, self.partition)


def translate_many(primary: str, requests: list[TranslationRequest]) -> list[Alignment]:
    """Align each request's window with the primary: first around its hint, all partitions
    in one batched read; where that proves nothing, around a timestamp lookup."""
    marks = admin.watermarks(primary, sorted({r.key for r in requests}))
    hinted = {}
    for r in requests:
        low, high = marks[r.key]
        hint = r.hint_last_offset
        if r.window and hint is not None and low <= hint < high:
            hinted[r.key] = (max(low, hint + 1 - 4 * len(r.window) - HINT_SLACK), hint + 1)
    candidates = reading.read_ranges(primary, hinted)
    results = [align(r.window, candidates.get(r.key, [])) for r in requests]
    retry = [i for i, (r, a) in enumerate(zip(requests, results, strict=True)) if not _proven(r, a)]
    looked_up = {}
    for i in retry:
        r = requests[i]
        start = admin.offsets_for_times(primary, r.key, r.window[0].timestamp)
        if start >= 0:
            looked_up[r.key] = (
                start,
                min(marks[r.key][1], start + 4 * len(r.window) + LOOKUP_SLACK),
            )
    candidates = reading.read_ranges(primary, looked_up)
    for i in retry:
        again = align(requests[i].window, candidates.get(requests[i].key, []))
        # Keep whichever says more: a run, else more records found.
        results[i] = max(results[i], again, key=lambda a: (a.contiguous, -a.unmatched))
    return results


def _proven(request: TranslationRequest, alignment: Alignment) -> bool:
    if request.compacted:
        return alignment.unmatched == 0
    return alignment.contiguous

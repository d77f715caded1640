"""Where consumer groups resume on a restored cluster (issue 8): the I/O around
kasten_bp.consistency.core.groups.

Per restored partition, all groups at once: one read of the primary around the groups'
committed offsets, one read of the restored cluster where those records' twins are (found
from their timestamps, which MM2 keeps), then each group's position by content. Reads are
batched across partitions, so the cost grows with the partitions and the spread of the
groups' offsets, not with the number of groups.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from kasten_bp.consistency.core.groups import Checkpoint, Lookup, Translation, Twin, translate
from kasten_bp.kafka import admin, reading
from kasten_bp.manifest import GroupCapture, PartitionHead
from kasten_bp.records import Record

# Records read before the lowest committed offset: fallbacks when the record at P-1 is gone.
LOOK_BACK = 16
# Records read past the highest committed offset: the re-read bound of a fallback.
LOOK_AHEAD = 16
# Committed offsets further apart than this are read as separate ranges.
CLUSTER_SPAN = 50_000
# Records past the cut counted exactly up to this many.
PAST_CUT_CAP = 10_000
# Restored records read past the expected span of the twins (markers, duplicates).
RESTORED_SLACK = 1_000
# Recorded twins of one partition closer than this many offsets are read as one range.
TWIN_SPAN = 5_000

Key = tuple[str, int]


@dataclass(frozen=True)
class Committed:
    """A group's committed offset for one primary partition, as the backup recorded it."""

    group: str
    topic: str  # primary topic
    partition: int
    offset: int
    checkpoint: Checkpoint | None = None


def recorded_commits(captured: Iterable[GroupCapture]) -> list[Committed]:
    """Every committed offset of these recorded groups, with MM2's checkpoint beside it."""
    return [
        Committed(
            g.group,
            p.topic,
            p.partition,
            p.committed_offset,
            Checkpoint(p.checkpoint.upstream_offset, p.checkpoint.downstream_offset)
            if p.checkpoint is not None
            else None,
        )
        for g in captured
        for p in g.partitions
    ]


@dataclass(frozen=True)
class Position:
    committed: Committed
    restored_topic: str
    translation: Translation


def cut_end(head: PartitionHead) -> int | None:
    """The primary offset one past the newest record in the backup (None: unknown)."""
    translated = [h.primary_offset for h in head.head if h.primary_offset is not None]
    if translated:
        return max(translated) + 1
    if head.last_primary_offset is not None:
        return head.last_primary_offset + 1
    return None


def positions(
    primary: str, restored: str, heads: list[PartitionHead], committed: Iterable[Committed]
) -> list[Position]:
    """Each committed offset translated to the restored cluster (order kept)."""
    wanted = list(committed)
    by_primary = {(h.primary_topic, h.partition): h for h in heads}
    out: dict[int, Position] = {}
    todo: dict[Key, list[int]] = defaultdict(list)
    for i, c in enumerate(wanted):
        head = by_primary.get((c.topic, c.partition))
        if head is None:
            out[i] = Position(c, "", Translation("none", None, None, "partition not in backup"))
        else:
            todo[(c.topic, c.partition)].append(i)
    if todo:
        keys = sorted(todo)
        pmarks = admin.watermarks(primary, keys)
        groups_of = {key: [wanted[i] for i in todo[key]] for key in keys}
        plans = {key: _Partition.plan(by_primary[key], pmarks[key], groups_of[key]) for key in keys}
        _read_primary(primary, plans)
        _read_twins(restored, plans)
        for key in keys:
            head = by_primary[key]
            found = _lookups(primary, restored, plans[key], groups_of[key])
            for i, lookup in zip(todo[key], found, strict=True):
                out[i] = Position(wanted[i], head.topic, translate(lookup))
    return [out[i] for i in range(len(wanted))]


@dataclass
class _Partition:
    """One restored partition's reads, done for all partitions at once per cluster."""

    head: PartitionHead
    end: int  # the cut on the primary
    spans: list[tuple[int, int]]  # primary ranges to read around the committed offsets
    records: list[Record] = field(default_factory=list)
    twins: dict[str, int] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    data: tuple[int, ...] = ()

    @classmethod
    def plan(
        cls, head: PartitionHead, marks: tuple[int, int], committed: list[Committed]
    ) -> _Partition:
        end = cut_end(head)
        low_now = marks[0]
        if end is None:
            # The backup holds nothing of this partition (MM2 had mirrored none of it at the
            # cut): whatever a group consumed of what the primary holds is past the cut.
            end = low_now
        inside = sorted({c.offset for c in committed if low_now < c.offset < end})
        spans = [
            (max(low_now, first - LOOK_BACK), min(end, last + LOOK_AHEAD))
            for first, last in _clusters(inside)
        ]
        return cls(head, end, spans)


def _read_primary(primary: str, plans: dict[Key, _Partition]) -> None:
    """The primary records around every partition's committed offsets: one read per round
    (a partition whose groups sit far apart has several spans, read in later rounds)."""
    rounds = max((len(p.spans) for p in plans.values()), default=0)
    for n in range(rounds):
        ranges = {key: p.spans[n] for key, p in plans.items() if len(p.spans) > n}
        for key, records in reading.read_ranges(primary, ranges).items():
            plans[key].records += records


def _read_twins(restored: str, plans: dict[Key, _Partition]) -> None:
    """Content digest -> restored offset of each record's twin, every partition in one
    read (the last copy wins: MM2 may re-send a run after a restart, and a consumer placed
    after the last copy re-reads none of it); and the restored window read, with the
    offsets of the data records in it."""
    stamps = {}
    for p in plans.values():
        # The manifest's head window already says where its records are.
        p.twins = {h.digest: h.offset for h in p.head.head} if p.records else {}
        if p.records:
            stamps[p.head.key] = min(r.timestamp for r in p.records)
    by_restored = {p.head.key: p for p in plans.values()}
    starts = admin.offsets_for_times_many(restored, stamps)
    ranges = {}
    for rkey, start in starts.items():
        if start < 0:
            continue
        p = by_restored[rkey]
        start = max(start, p.head.log_start_offset)
        stop = min(p.head.end_offset, start + 2 * len(p.records) + RESTORED_SLACK)
        ranges[rkey] = (start, stop)
    read = reading.read_ranges(restored, ranges)
    for p in plans.values():
        rkey = p.head.key
        if rkey in ranges:
            for r in read[rkey]:
                p.twins[r.digest()] = r.offset
            p.window = ranges[rkey]
            p.data = tuple(r.offset for r in read[rkey])


def _lookups(
    primary: str, restored: str, p: _Partition, committed: list[Committed]
) -> list[Lookup]:
    head, end = p.head, p.end
    pkey = (head.primary_topic, head.partition)
    # Each primary record's digest looked up once for all groups (the records are in
    # offset order): with 200 groups on a partition, digesting per group was most of
    # `groups plan`.
    offsets = [r.offset for r in p.records]
    twin_of = [p.twins.get(r.digest()) for r in p.records]
    previous = {c.offset: _previous(offsets, twin_of, c.offset, head.compacted) for c in committed}
    past = {c.offset: _count(primary, pkey, end, c.offset) for c in committed if c.offset > end}
    first_in_backup: int | None = None
    if any(c.offset < end and previous[c.offset][0] is None for c in committed):
        first_in_backup = _first_in_backup(primary, restored, head, pkey)
    lookups = []
    for c in committed:
        twin, is_last = previous[c.offset]
        lookups.append(
            Lookup(
                committed=c.offset,
                cut_end=end,
                restored_start=head.log_start_offset,
                restored_end=head.end_offset,
                first_in_backup=first_in_backup,
                past_cut_records=past.get(c.offset, 0),
                previous=twin,
                previous_is_last=is_last,
                next_restored=_next_twin(offsets, twin_of, c.offset),
                checkpoint=c.checkpoint,
                restored_window=p.window,
                restored_data=p.data,
            )
        )
    return lookups


def _clusters(offsets: list[int]) -> list[tuple[int, int]]:
    """Sorted offsets as (first, last) runs no wider than CLUSTER_SPAN."""
    out: list[tuple[int, int]] = []
    for offset in offsets:
        if out and offset - out[-1][0] <= CLUSTER_SPAN:
            out[-1] = (out[-1][0], offset)
        else:
            out.append((offset, offset))
    return out


def _previous(
    offsets: list[int], twin_of: list[int | None], committed: int, compacted: bool
) -> tuple[Twin | None, bool]:
    """The nearest primary record before `committed` with a twin, and whether it is the
    last data record before it (a gap of markers or aborted records does not count, except
    in a compacted topic, where a gap may be a record compacted away). `offsets` ascending,
    `twin_of` their twins' restored offsets, index for index."""
    before = bisect.bisect_left(offsets, committed)
    for i in range(before - 1, -1, -1):
        twin = twin_of[i]
        if twin is not None:
            is_last = i == before - 1 and (offsets[i] == committed - 1 or not compacted)
            return Twin(offsets[i], twin), is_last
    return None, False


def _next_twin(offsets: list[int], twin_of: list[int | None], committed: int) -> int | None:
    for i in range(bisect.bisect_left(offsets, committed), len(offsets)):
        if twin_of[i] is not None:
            return twin_of[i]
    return None


def _count(primary: str, pkey: Key, start: int, stop: int) -> int:
    """Data records on the primary in [start, stop), read up to PAST_CUT_CAP."""
    capped = min(stop, start + PAST_CUT_CAP)
    return len(reading.read_ranges(primary, {pkey: (start, capped)})[pkey])


def _first_in_backup(primary: str, restored: str, head: PartitionHead, pkey: Key) -> int | None:
    """The primary offset of the restored partition's first record (None: gone there)."""
    if head.end_offset <= head.log_start_offset:
        return None
    stream = reading.stream_range(
        restored, head.topic, head.partition, head.log_start_offset, head.end_offset
    )
    first = next(stream, None)
    stream.close()  # only the first record is needed
    if first is None:
        return None
    start = admin.offsets_for_times(primary, pkey, first.timestamp)
    if start < 0:
        return None
    low, high = admin.watermarks(primary, [pkey])[pkey]
    span = (max(low, start), min(high, max(low, start) + RESTORED_SLACK))
    for r in reading.read_ranges(primary, {pkey: span})[pkey]:
        if r.digest() == first.digest():
            return r.offset
    return None


def records_before(
    bootstrap: str, wanted: set[tuple[str, int, int]]
) -> dict[tuple[str, int, int], Record]:
    """The last data record below each (topic, partition, offset), where there is one.
    A partition's offsets within TWIN_SPAN of each other are served by one batched read of
    the span (this runs while MM2 is stopped: 200 groups at 200 offsets must not cost 200
    round trips); the rest one batched round per offset, reading back from it."""
    by_key: dict[Key, list[int]] = defaultdict(list)
    for topic, partition, offset in sorted(wanted):
        by_key[(topic, partition)].append(offset)
    marks = admin.watermarks(bootstrap, sorted(by_key))
    spans = {
        key: (max(marks[key][0], offsets[0] - LOOK_BACK), offsets[-1])
        for key, offsets in by_key.items()
        if offsets[-1] - offsets[0] <= TWIN_SPAN
    }
    out = {}
    rest: dict[Key, list[int]] = {k: o for k, o in by_key.items() if k not in spans}
    for key, records in reading.read_ranges(bootstrap, spans).items():
        offsets = [r.offset for r in records]
        for wanted_offset in by_key[key]:
            below = bisect.bisect_left(offsets, wanted_offset)
            if below:
                out[(key[0], key[1], wanted_offset)] = records[below - 1]
            else:  # nothing below it in the span: look further back
                rest.setdefault(key, []).append(wanted_offset)
    while rest:
        ends = {key: offsets[0] for key, offsets in rest.items()}
        tails = reading.read_tails(
            bootstrap,
            {key: (marks[key][0], end, 1) for key, end in ends.items() if end > marks[key][0]},
        )
        for key, end in ends.items():
            if tails.get(key):
                out[(key[0], key[1], end)] = tails[key][-1]
        rest = {key: offsets[1:] for key, offsets in rest.items() if len(offsets) > 1}
    return out

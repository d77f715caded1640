"""Reading what the catch-up proof compares: the mirror's last records and the primary's
records at MM2's committed source offsets; where the mirror holds more than MM2 committed,
the mirror's tail back to the committed record's twin and the primary's records after it.
Every read is one batched read of all the partitions that need it."""

from __future__ import annotations

from dataclasses import replace

from kasten_bp.consistency.core.catch_up import CatchUp, CatchUpView, Digested, judge
from kasten_bp.consistency.scope import ReplicatedPartition
from kasten_bp.kafka import admin, reading

Key = tuple[str, int]

# The first look back from the mirror's end for the committed record's twin, in offsets;
# it grows fourfold until the twin is found.
FIRST_LOOK_BACK = 256
# How far back the twin is looked for at most. What a stopped source task delivers past
# its committed offsets is what its producer had in flight: bounded by buffer.memory
# (32 MiB by default), far fewer records than this.
MAX_LOOK_BACK = 1 << 18


def catch_up(
    primary: str,
    mirror: str,
    scope: list[ReplicatedPartition],
    source_offsets: dict[Key, int],
) -> list[tuple[ReplicatedPartition, CatchUp]]:
    """Each partition of `scope` with its verdict: caught up with its cut, or why not."""
    marks = admin.watermarks(mirror, [rp.mirror_key for rp in scope])
    tails = reading.read_tails(mirror, {key: (low, high, 1) for key, (low, high) in marks.items()})
    committed = {
        rp.primary_key: source_offsets[rp.primary_key]
        for rp in scope
        if rp.primary_key in source_offsets
    }
    primary_marks = admin.watermarks(primary, sorted(committed))
    sources = reading.read_ranges(primary, {key: (o, o + 1) for key, o in committed.items()})
    views = {}
    for rp in scope:
        low, high = marks[rp.mirror_key]
        tail = tails[rp.mirror_key]
        source = sources.get(rp.primary_key)
        on_primary = primary_marks.get(rp.primary_key)
        views[rp] = CatchUpView(
            name=f"{rp.mirror_topic}[{rp.partition}]",
            mirror_has_records=high > low,
            mirror_last=tail[-1] if tail else None,
            committed=committed.get(rp.primary_key),
            primary_log_start=on_primary[0] if on_primary else None,
            primary_at_committed=source[0] if source else None,
        )
    ahead = [
        rp
        for rp, v in views.items()
        if v.mirror_last is not None
        and v.primary_at_committed is not None
        and v.mirror_last.content() != v.primary_at_committed.content()
    ]
    if ahead:
        views.update(_with_tails(primary, mirror, ahead, views, marks, primary_marks))
    return [(rp, judge(views[rp])) for rp in scope]


def _with_tails(
    primary: str,
    mirror: str,
    ahead: list[ReplicatedPartition],
    views: dict[ReplicatedPartition, CatchUpView],
    marks: dict[Key, tuple[int, int]],
    primary_marks: dict[Key, tuple[int, int]],
) -> dict[ReplicatedPartition, CatchUpView]:
    wanted = {}
    for rp in ahead:
        source = views[rp].primary_at_committed
        assert source is not None  # chosen so
        wanted[rp.mirror_key] = source.digest()
    mirror_tails = _tails_back_to(
        mirror, {rp.mirror_key: marks[rp.mirror_key] for rp in ahead}, wanted
    )
    counts = {}
    for rp in ahead:
        tail = mirror_tails[rp.mirror_key]
        twin = next((i for i, (_, d) in enumerate(tail) if d == wanted[rp.mirror_key]), None)
        if twin is not None and twin < len(tail) - 1:
            counts[rp.primary_key] = len(tail) - 1 - twin
    starts = {rp.primary_key: views[rp].committed for rp in ahead if rp.primary_key in counts}
    nexts = _first_records(
        primary,
        {
            key: (int(start) + 1, primary_marks[key][1], counts[key])
            for key, start in starts.items()
            if start is not None
        },
    )
    return {
        rp: replace(
            views[rp],
            mirror_tail=tuple(mirror_tails[rp.mirror_key]),
            primary_next=tuple(nexts.get(rp.primary_key, ())),
        )
        for rp in ahead
    }


def _tails_back_to(
    bootstrap: str, marks: dict[Key, tuple[int, int]], wanted: dict[Key, str]
) -> dict[Key, list[Digested]]:
    """Each partition's newest data records as (offset, digest), read back from its end
    until they include a record with the wanted digest, the log start, or MAX_LOOK_BACK."""
    out: dict[Key, list[Digested]] = {}
    span = dict.fromkeys(marks, FIRST_LOOK_BACK)
    todo = {key for key, (low, high) in marks.items() if high > low}
    out.update({key: [] for key in marks if key not in todo})
    while todo:
        ranges = {
            key: (max(marks[key][0], marks[key][1] - span[key]), marks[key][1]) for key in todo
        }
        got: dict[Key, list[Digested]] = {key: [] for key in todo}
        for record in reading.stream_ranges(bootstrap, ranges):
            got[(record.topic, record.partition)].append((record.offset, record.digest()))
        again = set()
        for key in todo:
            found = any(d == wanted[key] for _, d in got[key])
            if found or ranges[key][0] == marks[key][0] or span[key] >= MAX_LOOK_BACK:
                out[key] = got[key]
            else:
                span[key] *= 4
                again.add(key)
        todo = again
    return out


def _first_records(
    bootstrap: str, wanted: dict[Key, tuple[int, int, int]]
) -> dict[Key, list[Digested]]:
    """The first `count` data records at or after `start` and before `end`, as (offset,
    digest): key -> (start, end, count). Transaction markers take offsets too, so the
    range read grows until it holds `count` data records or reaches `end`."""
    out: dict[Key, list[Digested]] = {}
    span = {key: count + 16 for key, (_, _, count) in wanted.items()}
    todo = {key for key, (start, end, count) in wanted.items() if count > 0 and end > start}
    out.update({key: [] for key in wanted if key not in todo})
    while todo:
        ranges = {
            key: (wanted[key][0], min(wanted[key][1], wanted[key][0] + span[key])) for key in todo
        }
        got: dict[Key, list[Digested]] = {key: [] for key in todo}
        for record in reading.stream_ranges(bootstrap, ranges):
            got[(record.topic, record.partition)].append((record.offset, record.digest()))
        again = set()
        for key in todo:
            start, end, count = wanted[key]
            if len(got[key]) >= count or ranges[key][1] >= end:
                out[key] = got[key][:count]
            else:
                span[key] *= 2
                again.add(key)
        todo = again
    return out

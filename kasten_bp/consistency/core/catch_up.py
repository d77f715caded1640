"""The catch-up comparison: does the mirror hold exactly what MM2 read, or a clean
continuation of it? Pure: no I/O.

Connect stops a source task by committing the offsets of the records acknowledged so far,
then closing its producer, which still delivers the records in flight. So a stopped mirror
may hold records past MM2's committed offset. They count when they are, by content, the
primary's next records after that offset, one after another: then the cut is the mirror's
real end. Anything else (a gap, a foreign record) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from kasten_bp.records import Record

# A record as the proof compares it: its offset on its own cluster, and its content digest.
Digested = tuple[int, str]


@dataclass(frozen=True)
class CatchUpView:
    """One replicated partition as read for the proof."""

    name: str  # mirror topic[partition]
    mirror_has_records: bool
    mirror_last: Record | None
    # The last primary offset MM2 committed, and what the primary holds there.
    committed: int | None
    primary_log_start: int | None
    primary_at_committed: Record | None
    # Read only when the mirror's last record is not the committed one: the mirror's
    # newest data records (oldest first), far enough back to hold the committed record's
    # twin if the mirror has it, and the primary's data records after the committed offset
    # (as many as the mirror holds after that twin).
    mirror_tail: tuple[Digested, ...] = ()
    primary_next: tuple[Digested, ...] = ()


@dataclass(frozen=True)
class CatchUp:
    """A partition's verdict: why it is not caught up, or its cut (the primary offset of
    the mirror's last record; None where nothing is known, e.g. nothing committed)."""

    problem: str | None
    cut: int | None
    # Mirror records past MM2's committed offset that are the primary's next records.
    ahead: int = 0


def judge(v: CatchUpView) -> CatchUp:
    if v.committed is None:
        if v.mirror_has_records:
            return CatchUp(f"{v.name}: has records but MM2 committed no source offset", None)
        return CatchUp(None, None)
    last, source = v.mirror_last, v.primary_at_committed
    if (
        last is None
        and source is None
        and v.primary_log_start is not None
        and v.primary_log_start > v.committed
    ):
        # Retention removed those records on both sides: nothing left to differ.
        return CatchUp(None, v.committed)
    if last is not None and source is not None and last.content() == source.content():
        return CatchUp(None, v.committed)
    if source is not None:
        ahead = continuation(v.mirror_tail, source.digest(), v.primary_next)
        if ahead is not None:
            return CatchUp(None, v.primary_next[ahead - 1][0], ahead)
        if any(d == source.digest() for _, d in v.mirror_tail):
            return CatchUp(
                f"{v.name}: the mirror's records after primary offset {v.committed} are not "
                "the primary's next records (a gap or a foreign record)",
                None,
            )
    return CatchUp(f"{v.name}: last record differs from primary offset {v.committed}", None)


def continuation(
    mirror_tail: tuple[Digested, ...], committed_digest: str, primary_next: tuple[Digested, ...]
) -> int | None:
    """How many records the mirror holds past the committed record's twin, when those are
    exactly the primary's next records in order (None: no such twin, or a gap or a foreign
    record after it). Twins nearest the end are tried first: equal records may repeat."""
    digests = [d for _, d in mirror_tail]
    for i in range(len(digests) - 1, -1, -1):
        if digests[i] != committed_digest:
            continue
        after = digests[i + 1 :]
        if (
            after
            and len(primary_next) >= len(after)
            and all(a == p for a, (_, p) in zip(after, primary_next, strict=False))
        ):
            return len(after)
    return None


def lagging(views: list[CatchUpView]) -> list[str]:
    """Why each partition that is not caught up is not (empty when every one is)."""
    return [p for p in (judge(v).problem for v in views) if p is not None]

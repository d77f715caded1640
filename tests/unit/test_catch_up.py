"""The catch-up comparison (consistency/core/catch_up.py)."""

from __future__ import annotations

from kasten_bp.consistency.core.catch_up import CatchUp, CatchUpView, continuation, judge, lagging
from kasten_bp.records import Record


def rec(offset: int, value: bytes, topic: str = "orders") -> Record:
    return Record(topic, 0, offset, 1_700_000_000_000, b"k", value)


def view(
    mirror_last: Record | None,
    primary_at_committed: Record | None,
    committed: int | None = 41,
    primary_log_start: int | None = 0,
    mirror_has_records: bool = True,
) -> CatchUpView:
    return CatchUpView(
        name="orders[0]",
        mirror_has_records=mirror_has_records,
        mirror_last=mirror_last,
        committed=committed,
        primary_log_start=primary_log_start,
        primary_at_committed=primary_at_committed,
    )


def test_caught_up_when_the_last_records_have_the_same_content() -> None:
    # Offsets differ (MM2 renumbers); content decides.
    assert lagging([view(rec(7, b"v"), rec(41, b"v", topic="primary.orders"))]) == []


def test_lagging_when_the_mirror_has_another_last_record() -> None:
    assert lagging([view(rec(6, b"older"), rec(41, b"v"))]) == [
        "orders[0]: last record differs from primary offset 41"
    ]
    assert lagging([view(None, rec(41, b"v"))]) == [
        "orders[0]: last record differs from primary offset 41"
    ]


def test_records_without_a_committed_offset_are_lagging() -> None:
    assert lagging([view(rec(0, b"v"), None, committed=None)]) == [
        "orders[0]: has records but MM2 committed no source offset"
    ]
    empty = view(None, None, committed=None, mirror_has_records=False)
    assert lagging([empty]) == []


def test_retention_on_both_sides_is_not_lagging() -> None:
    assert lagging([view(None, None, committed=41, primary_log_start=50)]) == []
    # Gone from the primary but not past its log start: something else is wrong.
    assert lagging([view(None, None, committed=41, primary_log_start=41)]) != []


# --- a mirror ahead of MM2's committed offset (issue 33) --------------------------------
def digested(offset: int, value: bytes) -> tuple[int, str]:
    return (offset, rec(offset, value).digest())


def ahead_view(mirror_values: list[bytes], primary_next: list[tuple[int, bytes]]) -> CatchUpView:
    """The mirror's tail ends in `mirror_values`; the primary holds b"v" at the committed
    offset 41 and `primary_next` after it (offset, value)."""
    tail = tuple(digested(100 + i, v) for i, v in enumerate(mirror_values))
    return CatchUpView(
        name="orders[0]",
        mirror_has_records=True,
        mirror_last=rec(100 + len(mirror_values) - 1, mirror_values[-1]),
        committed=41,
        primary_log_start=0,
        primary_at_committed=rec(41, b"v"),
        mirror_tail=tail,
        primary_next=tuple(digested(o, v) for o, v in primary_next),
    )


def test_a_mirror_ahead_by_the_primarys_next_records_is_caught_up_at_its_end() -> None:
    # A transaction marker at 42 takes an offset: the cut is the last record's offset.
    verdict = judge(ahead_view([b"u", b"v", b"a", b"b"], [(43, b"a"), (44, b"b"), (45, b"c")]))
    assert verdict == CatchUp(problem=None, cut=44, ahead=2)


def test_the_cut_is_the_committed_offset_when_the_last_records_match() -> None:
    assert judge(view(rec(7, b"v"), rec(41, b"v"))) == CatchUp(problem=None, cut=41)


def test_a_gap_after_the_committed_record_is_refused() -> None:
    verdict = judge(ahead_view([b"v", b"b"], [(42, b"a"), (43, b"b")]))
    assert verdict.cut is None
    assert verdict.problem == (
        "orders[0]: the mirror's records after primary offset 41 are not the primary's next "
        "records (a gap or a foreign record)"
    )


def test_a_foreign_record_after_the_committed_record_is_refused() -> None:
    verdict = judge(ahead_view([b"v", b"a", b"foreign"], [(42, b"a"), (43, b"b")]))
    assert verdict.cut is None and verdict.problem is not None


def test_a_mirror_holding_more_than_the_primary_has_is_refused() -> None:
    verdict = judge(ahead_view([b"v", b"a", b"b"], [(42, b"a")]))
    assert verdict.cut is None and verdict.problem is not None


def test_without_the_committed_records_twin_the_mirror_is_lagging() -> None:
    verdict = judge(ahead_view([b"x", b"a"], [(42, b"a")]))
    assert verdict.problem == "orders[0]: last record differs from primary offset 41"


def test_equal_records_repeating_try_the_twin_nearest_the_end_first_then_earlier_ones() -> None:
    # "v" twice on the mirror: the later one is followed by b"v2", which the primary lacks
    # after 41; the earlier one is followed by exactly the primary's next records.
    verdict = judge(ahead_view([b"v", b"v", b"v2"], [(42, b"v"), (43, b"v2")]))
    assert verdict == CatchUp(problem=None, cut=43, ahead=2)


def test_continuation_counts_the_records_past_the_twin() -> None:
    tail = (digested(1, b"v"), digested(2, b"a"))
    assert continuation(tail, rec(0, b"v").digest(), (digested(9, b"a"),)) == 1
    assert continuation(tail, rec(0, b"zz").digest(), (digested(9, b"a"),)) is None

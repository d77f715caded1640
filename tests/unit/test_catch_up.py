"""The catch-up comparison (consistency/core/catch_up.py)."""

from __future__ import annotations

from kasten_bp.consistency.core.catch_up import CatchUpView, lagging
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

"""Aligning records across clusters by content."""

from __future__ import annotations

from kasten_bp.records import Record
from kasten_bp.verify.matching import align, superseded


def rec(offset: int, key: bytes | None, value: bytes | None = b"v", ts: int = 1000) -> Record:
    return Record("t", 0, offset, ts, key, value)


def same_content_at(records: list[Record], offsets: list[int]) -> list[Record]:
    """The same records renumbered, as MM2 does on the other side."""
    return [
        Record("primary-t", r.partition, o, r.timestamp, r.key, r.value, r.headers)
        for r, o in zip(records, offsets, strict=True)
    ]


WINDOW = [rec(100 + i, f"k{i}".encode(), f"v{i}".encode(), 1000 + i) for i in range(4)]


def test_empty_window() -> None:
    assert align([], [rec(0, b"a")], allow_gaps=False) == []
    assert align([], [], allow_gaps=True) == []


def test_contiguous_match_returns_the_other_sides_offsets() -> None:
    before = [rec(10, b"x", b"old", 900), rec(11, b"y", b"old", 901)]
    candidates = before + same_content_at(WINDOW, [12, 13, 14, 15])
    assert align(WINDOW, candidates, allow_gaps=False) == [12, 13, 14, 15]


def test_contiguous_ignores_candidate_offsets_gaps() -> None:
    # A control record (transaction marker) occupies offset 14 on the primary but is never
    # read: the data records are still consecutive in the candidate stream.
    candidates = same_content_at(WINDOW, [12, 13, 15, 16])
    assert align(WINDOW, candidates, allow_gaps=False) == [12, 13, 15, 16]


def test_contiguous_requires_consecutive_records() -> None:
    extra = rec(99, b"intruder", b"?", 5000)
    candidates = same_content_at(WINDOW[:2], [12, 13]) + [extra]
    candidates += same_content_at(WINDOW[2:], [15, 16])
    # No consecutive run matches; the greedy fallback still says how much matches, in order.
    result = align(WINDOW, candidates, allow_gaps=False)
    assert result == [12, 13, 15, 16]
    # With gaps allowed the same: greedy, in order.
    assert align(WINDOW, candidates, allow_gaps=True) == [12, 13, 15, 16]


def test_contiguous_prefers_a_full_run_over_an_earlier_partial_one() -> None:
    # The first record appears earlier alone (a duplicate); the full run starts later.
    early = same_content_at(WINDOW[:1], [5])
    noise = [rec(6, b"n", b"n", 1)]
    full = same_content_at(WINDOW, [20, 21, 22, 23])
    assert align(WINDOW, early + noise + full, allow_gaps=False) == [20, 21, 22, 23]
    # Greedy (compacted) matching takes the first occurrence of each record, in order.
    assert align(WINDOW, early + noise + full, allow_gaps=True) == [5, 21, 22, 23]


def test_gaps_allowed_skips_compacted_holes() -> None:
    candidates = [
        *same_content_at(WINDOW[:1], [10]),
        rec(11, b"other", b"o", 1),
        *same_content_at(WINDOW[1:3], [14, 15]),
        rec(16, b"other2", b"o", 1),
        *same_content_at(WINDOW[3:], [30]),
    ]
    assert align(WINDOW, candidates, allow_gaps=True) == [10, 14, 15, 30]


def test_not_found_is_none() -> None:
    missing = rec(200, b"foreign", b"record", 1)
    window = [*WINDOW[:2], missing, WINDOW[2]]
    candidates = same_content_at(WINDOW[:3], [40, 41, 42])
    assert align(window, candidates, allow_gaps=False) == [40, 41, None, 42]
    assert align(window, candidates, allow_gaps=True) == [40, 41, None, 42]
    assert align(WINDOW, [], allow_gaps=False) == [None, None, None, None]


def test_out_of_order_is_not_matched_backwards() -> None:
    reversed_candidates = same_content_at(list(reversed(WINDOW)), [50, 51, 52, 53])
    result = align(WINDOW, reversed_candidates, allow_gaps=True)
    # Only one record can be matched in order (the first one found, then nothing after).
    assert sum(o is not None for o in result) == 1


def test_duplicates_in_the_window_need_two_twins() -> None:
    dup = WINDOW[1]
    window = [WINDOW[0], dup, dup, WINDOW[2]]
    once = same_content_at([WINDOW[0], dup, WINDOW[2]], [60, 61, 62])
    assert align(window, once, allow_gaps=False) == [60, 61, None, 62]
    twice = same_content_at(window, [60, 61, 62, 63])
    assert align(window, twice, allow_gaps=False) == [60, 61, 62, 63]


def test_content_includes_timestamp_and_headers() -> None:
    moved = [Record("p", 0, 70 + i, r.timestamp + 1, r.key, r.value) for i, r in enumerate(WINDOW)]
    assert align(WINDOW, moved, allow_gaps=True) == [None] * 4
    with_headers = [
        Record("p", 0, 80 + i, r.timestamp, r.key, r.value, (("h", b"1"),))
        for i, r in enumerate(WINDOW)
    ]
    assert align(WINDOW, with_headers, allow_gaps=True) == [None] * 4


def test_superseded() -> None:
    record = rec(5, b"user-1", b"old")
    assert superseded(record, [rec(9, b"user-2", b"x"), rec(10, b"user-1", b"new")])
    assert not superseded(record, [rec(9, b"user-2", b"x")])
    assert not superseded(record, [])
    # A null key is never compacted away by a later record.
    assert not superseded(rec(5, None, b"old"), [rec(6, None, b"new")])
    # b"" is a key like any other, and differs from null.
    assert superseded(rec(5, b"", b"old"), [rec(6, b"", b"new")])
    assert not superseded(rec(5, b"", b"old"), [rec(6, None, b"new")])

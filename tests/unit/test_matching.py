"""Aligning records across clusters by content."""

from __future__ import annotations

from kasten_bp.consistency.core.matching import (
    Alignment,
    Gap,
    aged_out_prefix,
    align,
    superseded,
    superseded_in_window,
)
from kasten_bp.records import Record


def rec(offset: int, key: bytes | None, value: bytes | None = b"v", ts: int = 1000) -> Record:
    return Record("t", 0, offset, ts, key, value)


def same_content_at(records: list[Record], offsets: list[int]) -> list[Record]:
    """The same records renumbered, as MM2 does on the other side."""
    return [
        Record("primary-t", r.partition, o, r.timestamp, r.key, r.value, r.headers)
        for r, o in zip(records, offsets, strict=True)
    ]


WINDOW = [rec(100 + i, f"k{i}".encode(), f"v{i}".encode(), 1000 + i) for i in range(4)]


def test_empty_window_is_a_run() -> None:
    assert align([], [rec(0, b"a")]) == Alignment(contiguous=True, offsets=())
    assert align([], []).contiguous


def test_contiguous_match_returns_the_other_sides_offsets() -> None:
    before = [rec(10, b"x", b"old", 900), rec(11, b"y", b"old", 901)]
    result = align(WINDOW, before + same_content_at(WINDOW, [12, 13, 14, 15]))
    assert result == Alignment(contiguous=True, offsets=(12, 13, 14, 15))
    assert result.last == 15 and result.unmatched == 0


def test_contiguous_ignores_candidate_offsets_gaps() -> None:
    # A control record (transaction marker) occupies offset 14 on the primary but is never
    # read: the data records are still consecutive in the candidate stream.
    result = align(WINDOW, same_content_at(WINDOW, [12, 13, 15, 16]))
    assert result.contiguous
    assert result.offsets == (12, 13, 15, 16)


def test_a_record_missing_inside_the_window_is_not_contiguous() -> None:
    # The primary holds a data record (offset 14) between the window's 2nd and 3rd records:
    # the window lost it. Every window record is found, in order, and still it is no copy.
    lost = rec(14, b"lost", b"?", 1001)
    candidates = [*same_content_at(WINDOW[:2], [12, 13]), lost]
    candidates += same_content_at(WINDOW[2:], [15, 16])
    result = align(WINDOW, candidates)
    assert not result.contiguous
    assert result.unmatched == 0
    assert result.offsets == (12, 13, 15, 16)  # how much matches, never a pass
    assert result.gaps == (Gap(after=13, before=15, records=1),)
    assert "between primary offsets 13 and 15" in result.gaps[0].describe()


def test_gaps_count_every_skipped_record() -> None:
    candidates = [
        *same_content_at(WINDOW[:1], [10]),
        rec(11, b"other", b"o", 1),
        *same_content_at(WINDOW[1:3], [14, 15]),
        rec(16, b"other2", b"o", 1),
        rec(17, b"other3", b"o", 1),
        *same_content_at(WINDOW[3:], [30]),
    ]
    result = align(WINDOW, candidates)
    assert not result.contiguous
    assert result.offsets == (10, 14, 15, 30)
    assert result.gaps == (Gap(10, 14, 1), Gap(15, 30, 2))


def test_a_full_run_wins_over_an_earlier_partial_one() -> None:
    # The first record appears earlier alone (a duplicate); the full run starts later.
    early = same_content_at(WINDOW[:1], [5])
    noise = [rec(6, b"n", b"n", 1)]
    full = same_content_at(WINDOW, [20, 21, 22, 23])
    assert align(WINDOW, early + noise + full) == Alignment(True, (20, 21, 22, 23))


def test_not_found_is_none() -> None:
    missing = rec(200, b"foreign", b"record", 1)
    window = [*WINDOW[:2], missing, WINDOW[2]]
    result = align(window, same_content_at(WINDOW[:3], [40, 41, 42]))
    assert not result.contiguous
    assert result.offsets == (40, 41, None, 42)
    assert result.unmatched == 1 and result.gaps == ()
    assert align(WINDOW, []).offsets == (None, None, None, None)
    assert align(WINDOW, []).last is None


def test_a_window_longer_than_the_candidates_is_no_run() -> None:
    result = align(WINDOW, same_content_at(WINDOW[:3], [1, 2, 3]))
    assert not result.contiguous
    assert result.offsets == (1, 2, 3, None)


def test_out_of_order_is_not_matched_backwards() -> None:
    reversed_candidates = same_content_at(list(reversed(WINDOW)), [50, 51, 52, 53])
    result = align(WINDOW, reversed_candidates)
    # Only one record can be matched in order (the first one found, then nothing after).
    assert not result.contiguous
    assert sum(o is not None for o in result.offsets) == 1


def test_duplicates_in_the_window_need_two_twins() -> None:
    dup = WINDOW[1]
    window = [WINDOW[0], dup, dup, WINDOW[2]]
    once = same_content_at([WINDOW[0], dup, WINDOW[2]], [60, 61, 62])
    assert align(window, once).offsets == (60, 61, None, 62)
    twice = same_content_at(window, [60, 61, 62, 63])
    assert align(window, twice) == Alignment(True, (60, 61, 62, 63))


def test_content_includes_timestamp_and_headers() -> None:
    moved = [Record("p", 0, 70 + i, r.timestamp + 1, r.key, r.value) for i, r in enumerate(WINDOW)]
    assert align(WINDOW, moved).offsets == (None,) * 4
    with_headers = [
        Record("p", 0, 80 + i, r.timestamp, r.key, r.value, (("h", b"1"),))
        for i, r in enumerate(WINDOW)
    ]
    assert align(WINDOW, with_headers).offsets == (None,) * 4


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


def test_a_record_superseded_inside_the_window_is_not_lost() -> None:
    # user-1's old value is gone from the primary; its newer value is later in the same
    # window and on the primary. user-3 is gone with no newer value anywhere: lost.
    window = [rec(5, b"user-1", b"old"), rec(6, b"user-3", b"x"), rec(7, b"user-1", b"new")]
    assert superseded_in_window(window, (None, None, 17), []) == 1
    # A newer value the primary holds past the window counts too.
    assert superseded_in_window(window, (None, None, 17), [rec(20, b"user-3", b"y")]) == 2
    # A newer value in the window that is itself missing on the primary proves nothing.
    assert superseded_in_window(window, (None, None, None), []) == 0


def test_an_aged_out_prefix_is_the_window_head_before_the_primarys_first_record() -> None:
    # Window of 5; the primary now starts at offset 40 with the window's third record.
    assert aged_out_prefix(Alignment(False, (None, None, 40, 41, 42)), 40) == 2
    # Not from the primary's first record: something older is missing, not aged out.
    assert aged_out_prefix(Alignment(False, (None, None, 41, 42, 43)), 40) == 0
    # A hole after the first match, or a gap, is not retention's doing.
    assert aged_out_prefix(Alignment(False, (None, 40, None, 42)), 40) == 0
    gap = (Gap(40, 42, 1),)
    assert aged_out_prefix(Alignment(False, (None, 40, 42), gap), 40) == 0
    # Nothing or everything matched: no prefix to speak of.
    assert aged_out_prefix(Alignment(True, (40, 41)), 40) == 0
    assert aged_out_prefix(Alignment(False, (None, None)), 40) == 0

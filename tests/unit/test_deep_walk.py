"""Deep verify's batch walk: the same judgement as record by record, whatever the batch
boundaries on either side."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kasten_bp.consistency.core.deep_walk import WalkResult, deep_walk


@dataclass(frozen=True)
class FakeBatch:
    offsets: list[int]
    contents: list[tuple]

    @property
    def columns(self) -> list[list]:
        return [list(column) for column in zip(*self.contents, strict=True)]

    @property
    def size(self) -> int:
        return len(self.contents)

    def content(self, index: int) -> tuple:
        return self.contents[index]

    def offset(self, index: int) -> int:
        return self.offsets[index]


def content(i: int, value: bytes | None = None, ts: int | None = None) -> tuple:
    return (1000 + i if ts is None else ts, f"k{i}".encode(), value or f"v{i}".encode(), None)


def batches(offsets: list[int], contents: list[tuple], size: int) -> list[FakeBatch]:
    return [
        FakeBatch(offsets[i : i + size], contents[i : i + size])
        for i in range(0, len(contents), size)
    ]


def walk(
    restored: list[tuple],
    primary: list[tuple],
    compacted: bool = False,
    sizes: tuple[int, int] = (3, 2),
    oldest: tuple | None = None,
    restored_first: int = 100,
) -> WalkResult:
    r_offsets = list(range(restored_first, restored_first + len(restored)))
    return deep_walk(
        iter(batches(r_offsets, restored, sizes[0])),
        iter(batches(list(range(len(primary))), primary, sizes[1])),
        compacted,
        oldest,
    )


RESTORED = [content(i) for i in range(10)]
SIZES = [(1, 1), (3, 2), (2, 7), (10, 10), (4, 100)]


@pytest.mark.parametrize("sizes", SIZES)
def test_a_run_after_older_primary_records_is_compared_in_full(sizes: tuple[int, int]) -> None:
    older = [content(-1, b"old", ts=1)]
    assert walk(RESTORED, older + RESTORED, sizes=sizes) == WalkResult(compared=10)


@pytest.mark.parametrize("sizes", SIZES)
def test_a_hole_on_the_primary_is_a_mismatch_unless_compacted(sizes: tuple[int, int]) -> None:
    holed = RESTORED[:4] + [content(99, b"lost")] + RESTORED[4:]
    outcome = walk(RESTORED, holed, sizes=sizes)
    assert outcome.mismatch == "restored offset 104 differs from primary offset 4"
    # Compaction leaves holes: the same walk passes, every record compared.
    assert walk(RESTORED, holed, compacted=True, sizes=sizes) == WalkResult(compared=10)


@pytest.mark.parametrize("sizes", SIZES)
def test_one_changed_byte_is_named_by_its_offsets(sizes: tuple[int, int]) -> None:
    flipped = list(RESTORED)
    flipped[7] = content(7, b"v7-but-different")
    outcome = walk(flipped, RESTORED, sizes=sizes)
    assert outcome.mismatch == "restored offset 107 differs from primary offset 7"
    assert outcome.compared == 7


def test_a_changed_header_or_timestamp_is_a_mismatch() -> None:
    header = list(RESTORED)
    header[2] = (*RESTORED[2][:3], [("h", b"x")])
    assert walk(header, RESTORED).mismatch == "restored offset 102 differs from primary offset 2"
    stamp = list(RESTORED)
    stamp[5] = (RESTORED[5][0] + 1, *RESTORED[5][1:])
    assert walk(stamp, RESTORED).mismatch == "restored offset 105 differs from primary offset 5"


@pytest.mark.parametrize("sizes", SIZES)
def test_a_restored_record_the_primary_lacks_is_named(sizes: tuple[int, int]) -> None:
    outcome = walk(RESTORED, RESTORED[:6], compacted=True, sizes=sizes)
    assert outcome.mismatch == "restored offset 106 not found on the primary"


def test_compacted_holes_many_times_over_still_compare_every_restored_record() -> None:
    restored = [content(i) for i in range(0, 300, 3)]
    primary = [content(i) for i in range(300)]  # the restored cleaner kept one in three
    assert walk(restored, primary, compacted=True, sizes=(7, 11)) == WalkResult(compared=100)
    assert walk(restored, primary, compacted=False).mismatch is not None


@pytest.mark.parametrize("sizes", SIZES)
def test_records_older_than_the_primarys_oldest_are_skipped_and_counted(
    sizes: tuple[int, int],
) -> None:
    outcome = walk(RESTORED, RESTORED[3:], oldest=RESTORED[3], sizes=sizes)
    assert outcome == WalkResult(compared=7, skipped_older=3)
    # No twin anywhere: skipping stops at the first newer record and the walk reports it.
    stranger = content(40, b"not in the backup", ts=1002)
    outcome = walk(RESTORED, RESTORED[3:], oldest=stranger, sizes=sizes)
    assert outcome.skipped_older == 3 and outcome.compared == 7


def test_nothing_restored_compares_nothing() -> None:
    assert walk([], RESTORED) == WalkResult()

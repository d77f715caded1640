"""The group translation's decisions (kasten_bp/consistency/core/groups.py): one case per
method, and the verify judgement."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kasten_bp.consistency.core.groups import Checkpoint, Lookup, Twin, judge, translate

# A partition whose backup holds primary offsets 100..199 at restored offsets 0..99.
BASE = Lookup(
    committed=150,
    cut_end=200,
    restored_start=0,
    restored_end=100,
    first_in_backup=100,
    past_cut_records=0,
    previous=Twin(149, 49),
    previous_is_last=True,
    next_restored=50,
    checkpoint=Checkpoint(140, 38),
)


def test_one_past_the_twin_of_the_record_before_p() -> None:
    t = translate(BASE)
    assert (t.method, t.restored_offset, t.reread) == ("exact", 50, 0)


def test_markers_between_the_last_record_and_p_change_nothing() -> None:
    # Primary: data at 147, commit marker at 148-149; P=150.
    t = translate(replace(BASE, previous=Twin(147, 47), previous_is_last=True))
    assert (t.method, t.restored_offset, t.reread) == ("exact", 48, 0)


def test_a_compacted_away_record_falls_back_to_an_earlier_one_and_counts_the_reread() -> None:
    t = translate(replace(BASE, previous=Twin(145, 45), previous_is_last=False, next_restored=50))
    assert (t.method, t.restored_offset, t.reread) == ("earlier_record", 46, 4)
    # Committing anywhere from 46 up to the first unread record (50) skips nothing.
    assert t.latest_safe == 50
    assert judge(50, 46, t.latest_safe).status == "exact"
    assert (judge(52, 46, t.latest_safe).status, judge(52, 46, t.latest_safe).records) == (
        "ahead",
        2,
    )
    assert "primary offset 145" in t.detail


def test_a_reread_counts_records_not_offsets_where_the_restored_log_has_gaps() -> None:
    # Restored offsets 46..49 read: only 48 still holds a record (the rest compacted away).
    gappy = replace(
        BASE,
        previous=Twin(145, 45),
        previous_is_last=False,
        next_restored=50,
        restored_window=(40, 60),
        restored_data=(40, 45, 48, 50, 51),
    )
    assert translate(gappy).reread == 1
    # Outside the window read, the offset distance is all that is known: an upper bound.
    assert translate(replace(gappy, restored_window=(47, 60))).reread == 4


def test_without_a_twin_the_checkpoint_is_used() -> None:
    t = translate(replace(BASE, previous=None))
    assert (t.method, t.restored_offset, t.reread) == ("checkpoint", 38, None)


def test_a_checkpoint_ahead_of_the_group_is_not_used() -> None:
    t = translate(replace(BASE, previous=None, checkpoint=Checkpoint(160, 60)))
    assert (t.method, t.restored_offset) == ("none", None)


def test_a_group_past_the_cut_is_reported_not_clamped() -> None:
    t = translate(replace(BASE, committed=230, past_cut_records=30))
    assert (t.method, t.restored_offset) == ("past_cut", None)
    assert "30 consumed record(s) are not in the backup" in t.detail


@pytest.mark.parametrize("committed", [200, 203])
def test_at_the_cut_or_past_only_markers_is_the_restored_end(committed: int) -> None:
    t = translate(replace(BASE, committed=committed))
    assert (t.method, t.restored_offset, t.reread) == ("exact", 100, 0)


@pytest.mark.parametrize("committed", [0, 100])
def test_before_the_backup_is_the_restored_start(committed: int) -> None:
    t = translate(replace(BASE, committed=committed))
    assert (t.method, t.restored_offset, t.reread) == ("exact", 0, 0)


def test_judge() -> None:
    assert judge(None, 5).status == "missing"
    assert (judge(5, 5).status, judge(5, 5).records) == ("exact", 0)
    assert (judge(3, 5).status, judge(3, 5).records) == ("behind", 2)
    assert (judge(9, 5).status, judge(9, 5).records) == ("ahead", 4)

"""Hold durations as users write them, and when a hold ends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kasten_bp.errors import UsageError
from kasten_bp.hold import DEFAULT_HOLD_SECONDS, hold_deadline, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("90", 90), ("1h30m", 5400), ("2.5m", 150)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0s", "-5m", "15x", "1h 30", "m"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match="--hold-timeout"):
        parse_duration(text)


def test_a_hold_ends_at_its_deadline() -> None:
    assert hold_deadline(1_800_000_000.0, "2026-12-02T10:00:00.000+00:00") == 1_800_000_000.0


def test_a_hold_saved_without_its_deadline_ends_the_default_time_after_that_save() -> None:
    """An older kasten-bp saved HELD, then the deadline: a journal stopped in between is
    held for the default time, not forever."""
    saved = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert hold_deadline(None, saved.isoformat(timespec="milliseconds")) == (
        saved.timestamp() + DEFAULT_HOLD_SECONDS
    )


@pytest.mark.timeout(30)
def test_a_long_hostile_duration_is_refused_at_once() -> None:
    """The parser is one pass (issue 28): the old nested pattern took about 4x longer per
    two more digits (18 digits: 0.055 s), so 60 digits would have outlived this test."""
    with pytest.raises(UsageError, match="is not a duration"):
        parse_duration("1" * 60 + "x")
    assert parse_duration("1" * 30 + "s") == float("1" * 30)

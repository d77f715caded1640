"""Hold durations as users write them."""

from __future__ import annotations

import pytest

from kasten_bp.errors import UsageError
from kasten_bp.hold import parse_duration


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

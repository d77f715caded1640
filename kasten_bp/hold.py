"""A quiesce that cannot outlive its hold.

`quiesce` stops MM2 and the mirror's brokers and *holds* the run for a snapshot taken by
someone else (K10 between its hooks). If neither `snapshot`+`resume` nor `resume` comes
before the hold's deadline, a watchdog started by `quiesce` puts the mirror back by itself:
locally a detached process, on Kubernetes a Job. Both run `kasten-bp hold-expire`.

Every run that stops something (`backup` too) has the same watchdog, armed before its first
step acts: it also finishes the run at once when its owner dies (`Backups.watch`).
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from kasten_bp.errors import UsageError

DEFAULT_HOLD_SECONDS = 15 * 60
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_PIECE = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '1h', '1h30m' -> seconds."""
    # One left-to-right pass (no nested repetition to backtrack over): the pieces must
    # cover the whole text, and only a lone number may go without a unit.
    stripped = text.strip()
    pieces = [(m.group(1), m.group(2)) for m in _PIECE.finditer(stripped)]
    covered = "".join(n + u for n, u in pieces) == stripped
    if not covered or not pieces or (len(pieces) > 1 and any(u == "" for _, u in pieces)):
        raise UsageError(f"--hold-timeout {text!r} is not a duration (e.g. 30s, 15m, 1h)")
    seconds = sum(float(n) * _UNITS[u] for n, u in pieces)
    if seconds <= 0:
        raise UsageError(f"--hold-timeout {text!r} must be longer than 0s")
    return seconds


def watchdog_command(config_path: Path, backup_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kasten_bp.cli",
        "hold-expire",
        backup_id,
        "--config",
        str(config_path.resolve()),
    ]


def hold_deadline(deadline: float | None, held_at: str) -> float:
    """When a held run's hold ends. A run saved HELD without its deadline (an older
    kasten-bp's quiesce wrote the deadline in a second save, and may have stopped between
    the two) is held for the default time from that save, not forever."""
    if deadline is not None:
        return deadline
    return datetime.fromisoformat(held_at).timestamp() + DEFAULT_HOLD_SECONDS


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")

"""How a replay shows its progress: a rich bar (records/s, ETA) on a terminal, a line on
stderr every few seconds otherwise (logs, CI, JSON output on stdout stays clean)."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from kasten_bp.waiting import announce

LINE_EVERY_SECONDS = 5.0


class ProgressSink(Protocol):
    def update(self, sent: int, total: int) -> None: ...

    def close(self) -> None: ...


class Lines:
    def __init__(self, replay_id: str) -> None:
        self.replay_id = replay_id
        self.started = self._said = time.monotonic()

    def update(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if now - self._said < LINE_EVERY_SECONDS:
            return
        self._said = now
        rate = sent / max(now - self.started, 1e-3)
        announce(
            f"replay {self.replay_id}: {sent} of at most {total} records sent, {rate:.0f} records/s"
        )

    def close(self) -> None:
        pass


class Bar:
    def __init__(self, replay_id: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn(f"replay {replay_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} records/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("replay", total=total, rate="-")
        self.started = time.monotonic()
        self._bar.start()

    def update(self, sent: int, total: int) -> None:
        rate = sent / max(time.monotonic() - self.started, 1e-3)
        self._bar.update(self._task, completed=sent, total=total, rate=f"{rate:.0f}")

    def close(self) -> None:
        self._bar.stop()


def for_stderr(replay_id: str, total: int) -> ProgressSink:
    return Bar(replay_id, total) if sys.stderr.isatty() else Lines(replay_id)

"""Bounded waits that say what they wait for."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from kasten_bp.errors import TemporaryError, WaitTimeout
from kasten_bp.transience import is_temporary

T = TypeVar("T")

# A listener receives one line each time a wait starts, so the CLI can show progress.
_listeners: list[Callable[[str], None]] = []
# The deadline (time.monotonic) of the innermost wait a probe runs in: clients that can
# bound a request (the Kubernetes API, Connect REST) bound it by the time left, so that
# one probe cannot outlast its wait.
_deadline: ContextVar[float | None] = ContextVar("wait_deadline", default=None)


def time_left() -> float | None:
    """Seconds left to the innermost running wait, or None outside any wait."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def add_progress_listener(listener: Callable[[str], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def announce(message: str) -> None:
    for listener in list(_listeners):
        listener(message)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.25,
    max_interval: float = 1.0,
) -> T:
    """Call `probe` until it returns something other than None/False, or time out.

    A temporary error from `probe` (see `transience`) counts as "not yet" and is named in
    the timeout; any other error ends the wait at once: waiting cannot fix it. While a
    probe runs, `time_left()` tells the clients it calls how long they may take.
    """
    announce(f"waiting for {what} (up to {timeout:.0f}s)")
    deadline = time.monotonic() + timeout
    outer = _deadline.get()
    last_error: Exception | None = None
    while True:
        token = _deadline.set(deadline if outer is None else min(deadline, outer))
        try:
            result = probe()
            if result is not None and result is not False:
                return result
            last_error = None
        except Exception as exc:
            if not is_temporary(exc):
                raise
            last_error = exc
        finally:
            _deadline.reset(token)
        if time.monotonic() >= deadline:
            detail = ""
            if isinstance(last_error, TemporaryError):
                detail = f": {last_error}"
            elif last_error is not None:
                detail = f": last error: {last_error}"
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)

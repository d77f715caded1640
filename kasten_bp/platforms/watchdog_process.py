"""A hold's watchdog as a detached local process: the local platform's, and the fallback of
the Kubernetes platforms when kasten-bp does not run in a pod (a runbook from a laptop)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any


def start_watchdog(command: list[str], log: Path) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the hook's shell and the CLI
        )
    return {"kind": "process", "pid": proc.pid, "log": str(log)}


def stop_watchdog(backup_id: str, handle: dict[str, Any]) -> None:
    pid = int(handle.get("pid", 0))
    # Only a live watchdog of this backup: a pid may have been reused meanwhile.
    with contextlib.suppress(OSError):
        if pid > 0 and backup_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)

"""Detached processes that outlive the CLI, tracked by pid files under a lab directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PID_SUFFIX = ".pid"


@dataclass(frozen=True)
class Supervised:
    """A process the lab started: its pid file marks it as ours."""

    name: str
    pid_file: Path
    log_file: Path

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive_and_ours(pid, self.pid_file)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive_and_ours(pid: int, pid_file: Path) -> bool:
    """Alive, not a zombie, and its command line names our marker (guards pid reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    marker = pid_file.read_text().split("\n", 1)[1].strip() if pid_file.exists() else ""
    cmdline = _cmdline(pid)
    # An empty command line is a process between fork and exec: not evidence of reuse.
    return not marker or not cmdline or marker in cmdline


def start(
    name: str, argv: list[str], run_dir: Path, marker: str, env: dict | None = None
) -> Supervised:
    """Start `argv` in its own session; stdout/stderr go to run_dir/name.out."""
    run_dir.mkdir(parents=True, exist_ok=True)
    proc_handle = Supervised(name, run_dir / f"{name}{PID_SUFFIX}", run_dir / f"{name}.out")
    with open(proc_handle.log_file, "ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **(env or {})},
        )
    proc_handle.pid_file.write_text(f"{process.pid}\n{marker}\n")
    return proc_handle


def stop(handle: Supervised, timeout: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the process and wait for it to exit; SIGKILL after `timeout`. Idempotent.
    True when it had to be killed (asked for SIGKILL itself, or did not exit in time)."""
    pid = handle.pid()
    killed = False
    if pid is not None and _alive_and_ours(pid, handle.pid_file):
        _signal(pid, sig)
        deadline = time.monotonic() + timeout
        while _alive_and_ours(pid, handle.pid_file) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive_and_ours(pid, handle.pid_file):
            killed = True
            _signal(pid, signal.SIGKILL)
            while _alive_and_ours(pid, handle.pid_file):
                _reap(pid)
                time.sleep(0.05)
        _reap(pid)
        killed = killed or sig == signal.SIGKILL
    handle.pid_file.unlink(missing_ok=True)
    return killed


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def all_under(root: Path) -> list[Supervised]:
    """Every process started anywhere under `root` (lab clusters, restored clusters)."""
    # os.walk, not Path.rglob: a broker deleting a partition's directory while we look
    # must not fail the walk (rglob raised FileNotFoundError at a lab's `down` in CI).
    found = [
        Path(folder) / name
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith(PID_SUFFIX)
    ]
    return [Supervised(p.name[: -len(PID_SUFFIX)], p, p.with_suffix(".out")) for p in sorted(found)]

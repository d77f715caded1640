"""Free TCP ports on 127.0.0.1 for lab servers.

A port is chosen long before its server binds it (a Connect worker starts a minute after
its ports are planned). A port from the kernel's ephemeral range can meanwhile be taken as
the local end of any client connection, and the server then dies with "address in use".
So ports are drawn below the ephemeral range, and each is reserved by a file created
exclusively, so two labs planned at once never draw the same port.

Stdlib only: the test-env scripts run this file directly (`python3 ports.py N`).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

LOWEST_PORT = 20000
# A reservation outlives the time from planning a port to its server binding it.
RESERVATION_SECONDS = 1800
_DEFAULT_EPHEMERAL_LOW = 32768


def reservations_dir() -> Path:
    return Path(os.environ.get("KASTEN_BP_PORTS_DIR") or tempfile.gettempdir()) / "kasten-bp-ports"


def ephemeral_low(range_file: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def free_ports(count: int) -> list[int]:
    """Pick `count` distinct free ports below the ephemeral range, each reserved for this caller."""
    high = ephemeral_low()
    if high - LOWEST_PORT < 1000:
        return _kernel_chosen(count)
    chosen: list[int] = []
    for port in random.sample(range(LOWEST_PORT, high), high - LOWEST_PORT):
        if len(chosen) == count:
            break
        if _bindable(port) and _reserve(port):
            chosen.append(port)
    if len(chosen) < count:
        raise OSError(f"no {count} free ports between {LOWEST_PORT} and {high} on 127.0.0.1")
    return chosen


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reserve(port: int) -> bool:
    """Create the port's reservation file; one older than RESERVATION_SECONDS is taken over."""
    folder = reservations_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / str(port)
    with contextlib.suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime > RESERVATION_SECONDS:
            path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True


def _kernel_chosen(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


if __name__ == "__main__":
    print(" ".join(str(p) for p in free_ports(int(sys.argv[1]))))

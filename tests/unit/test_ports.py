"""Lab ports: drawn below the kernel's ephemeral range and reserved so two labs never share one."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from kasten_bp.lab import ports


@pytest.fixture(autouse=True)
def own_reservations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KASTEN_BP_PORTS_DIR", str(tmp_path))
    return tmp_path / "kasten-bp-ports"


def test_ports_are_distinct_below_the_ephemeral_range_and_reserved(own_reservations: Path) -> None:
    chosen = ports.free_ports(8)
    assert len(set(chosen)) == 8
    assert all(ports.LOWEST_PORT <= p < ports.ephemeral_low() for p in chosen)
    assert sorted(int(f.name) for f in own_reservations.iterdir()) == sorted(chosen)


def test_a_reserved_port_is_not_drawn_again_until_its_reservation_is_stale(
    own_reservations: Path,
) -> None:
    port = ports.free_ports(1)[0]
    assert not ports._reserve(port)
    stale = time.time() - ports.RESERVATION_SECONDS - 1
    os.utime(own_reservations / str(port), (stale, stale))
    assert ports._reserve(port)


def test_a_port_in_use_is_not_bindable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not ports._bindable(s.getsockname()[1])
        assert ports.is_listening(s.getsockname()[1])


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t60999\n")
    assert ports.ephemeral_low(f) == 40000
    assert ports.ephemeral_low(tmp_path / "absent") == 32768


def test_the_lab_finds_its_processes_in_nested_folders(tmp_path: Path) -> None:
    from kasten_bp.lab.processes import PID_SUFFIX, all_under

    (tmp_path / "mirror" / "broker-1").mkdir(parents=True)
    (tmp_path / "mirror" / "broker-1" / f"kafka{PID_SUFFIX}").write_text("1\n")
    (tmp_path / "connect").mkdir()
    (tmp_path / "connect" / f"connect{PID_SUFFIX}").write_text("2\n")
    assert sorted(p.name for p in all_under(tmp_path)) == ["connect", "kafka"]
    assert all_under(tmp_path / "gone") == []  # a folder removed meanwhile is no error

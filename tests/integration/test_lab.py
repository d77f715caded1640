"""The embedded lab: real primary and mirror clusters, MM2 replicating between them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kasten_bp.errors import PermanentError
from kasten_bp.kafka import admin, clients, producing
from kasten_bp.lab import kraft
from kasten_bp.lab.lab import START_RETRIES, Lab
from kasten_bp.lab.load import LoadSpec, run_load
from kasten_bp.lab.ports import is_listening
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for

from . import kafka_tools
from .helpers import LabHandle, contents, partition_records, wait_mirrored

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "kasten_bp.cli"]


def test_edge_case_records_reach_the_mirror_identical_and_in_order(
    lab: LabHandle, topic: str
) -> None:
    # Explicit timestamps, recent enough that retention (7 days) keeps them all session.
    base = int(time.time() * 1000) - 3_600_000
    records = []
    for i in range(300):
        partition = i % 3
        key = None if i % 5 == 0 else f"k{i}".encode()
        value = b"" if i % 7 == 0 else (None if i % 17 == 0 else os.urandom(i % 97))
        headers = ((("h", f"{i}".encode()), ("null-header", None), ("h", b"dup"))) if i % 2 else ()
        records.append(Record(topic, partition, -1, base + i * 10, key, value, headers))
    producing.produce(lab.primary, records)
    wait_mirrored(lab.primary, lab.mirror, topic)
    for p in range(3):
        primary_side = partition_records(lab.primary, topic, p)
        mirror_side = partition_records(lab.mirror, topic, p)
        assert len(primary_side) == 100
        assert contents(mirror_side) == contents(primary_side)
    first = partition_records(lab.mirror, topic, 0)[0]
    assert first.key is None and first.value == b"" and first.timestamp == base


def test_load_command_records_replicate(lab: LabHandle, topic: str) -> None:
    result = run_load(lab.primary, LoadSpec(topic=topic, records=3000))
    assert result["produced"] == 3000
    wait_mirrored(lab.primary, lab.mirror, topic)
    total = 0
    for p in range(3):
        mirror_side = partition_records(lab.mirror, topic, p)
        assert contents(mirror_side) == contents(partition_records(lab.primary, topic, p))
        total += len(mirror_side)
    assert total == 3000
    kinds = [r for p in range(3) for r in partition_records(lab.mirror, topic, p)]
    assert any(r.key is None for r in kinds) and any(r.value == b"" for r in kinds)
    assert any(r.headers for r in kinds)


def test_consumer_group_offsets_are_checkpointed_and_translated(lab: LabHandle, topic: str) -> None:
    producing.produce(
        lab.primary, [Record(topic, i % 3, -1, 0, f"k{i}".encode(), b"v", ()) for i in range(90)]
    )
    group = f"g-{topic}"
    consumer = clients.consumer(lab.primary, {"group.id": group})
    consumer.subscribe([topic])
    seen = 0
    while seen < 60:
        msgs = consumer.consume(60 - seen, timeout=2)
        seen += len([m for m in msgs if m.error() is None])
    consumer.commit(asynchronous=False)
    consumer.close()
    parts = [(topic, p) for p in range(3)]
    primary_offsets = wait_for(
        f"group {group} offsets on the primary",
        lambda: kafka_tools.committed_group_offsets(lab.primary, group, parts) or None,
        60,
    )
    assert sum(primary_offsets.values()) == 60

    def translated() -> dict | None:
        offsets = kafka_tools.committed_group_offsets(lab.mirror, group, parts)
        return offsets if offsets == primary_offsets else None

    # Same offsets on both sides: the mirror topic was written in the same order from offset 0.
    wait_for(f"group {group} offsets synced to the mirror", translated, 120)
    for (t, p), committed in primary_offsets.items():
        if committed == 0:
            continue
        last_primary = partition_records(lab.primary, t, p)[committed - 1]
        last_mirror = partition_records(lab.mirror, t, p)[committed - 1]
        assert last_primary.content() == last_mirror.content()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def test_bad_broker_count_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = _cli("lab", "up", "--workdir", str(tmp_path / "x"), "--mirror-brokers", "0")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--mirror-brokers must be at least 1" in result.stderr
    assert not (tmp_path / "x").exists()


def test_missing_java_is_a_one_line_usage_error(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    result = _cli("lab", "up", "--workdir", str(tmp_path / "x"), env=env)
    assert result.returncode == 2, result.stderr
    assert "java not found" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_running_lab_of_another_shape_is_refused(lab: LabHandle) -> None:
    assert lab.lab is not None
    result = _cli("lab", "up", "--workdir", str(lab.lab.workdir), "--mirror-brokers", "1")
    assert result.returncode == 2
    assert "belongs to a running lab" in result.stderr


def test_lab_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "small"
    first = _cli(
        "lab", "up", "--workdir", str(workdir), "--mirror-brokers", "1", "--output", "json"
    )
    assert first.returncode == 0, first.stderr
    import json

    info = json.loads(first.stdout)
    assert info["primary"]["bootstrap"].startswith("127.0.0.1:")
    assert info["connect"]["url"].startswith("http://127.0.0.1:")
    assert info["config"] == str(workdir.resolve() / "kasten-bp.yaml")
    broker = info["mirror"]["brokers"][0]
    assert broker["id"] == 1 and broker["pid"] > 0 and broker["log_dirs"]
    again = _cli(
        "lab", "up", "--workdir", str(workdir), "--mirror-brokers", "1", "--output", "json"
    )
    assert again.returncode == 0
    assert json.loads(again.stdout)["mirror"]["brokers"][0]["pid"] == broker["pid"]
    lab = Lab(workdir)
    ports = lab._planned_ports()
    pids = [p.pid() for p in lab.all_processes()]
    assert len(pids) == 3
    down = _cli("lab", "down", "--workdir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert not any(is_listening(p) for p in ports)
    assert not any(Path(f"/proc/{pid}").exists() and _is_java(pid) for pid in pids)
    assert _cli("lab", "down", "--workdir", str(workdir)).returncode == 0


def _is_java(pid: int) -> bool:
    try:
        return b"java" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_broker_that_exits_while_starting_is_started_again_or_named(tmp_path: Path) -> None:
    """A broker whose port is taken exits at start-up. The readiness wait starts it again
    (as a kubelet restarts a pod) and, once it has no restarts left, fails naming the broker
    and Kafka's own reason."""
    cluster = kraft.plan_cluster("flaky", tmp_path, 1)
    (broker,) = cluster.brokers
    kraft.write_configs(cluster)
    kraft.format_storage(cluster)
    lab = Lab(tmp_path)

    def runs() -> int:
        return broker.server_log.read_text().count("Registered signal handlers")

    assert START_RETRIES >= 1
    try:
        with socket.create_server(("127.0.0.1", broker.port)):
            kraft.start_cluster(cluster)
            # No restarts allowed, so one failed run (each run is a JVM start).
            with pytest.raises(PermanentError) as failed:
                lab.wait_cluster_ready(cluster, 180, restarts=0)
            message = str(failed.value)
            assert message.startswith("broker 1 of cluster flaky exited: "), message
            assert f"127.0.0.1:{broker.port}" in message and "Address already in use" in message
            assert runs() == 1
            # Once more with the port still taken; it is free when the wait finds it exited.
            kraft.start_cluster(cluster)
            wait_for("broker 1 to exit", lambda: kraft.dead_broker(cluster), 120)
        lab.wait_cluster_ready(cluster, 180)
        # The run started by hand exited; the wait started one more, which serves.
        assert runs() == 3 and broker.handle.alive()
        admin.create_topic(cluster.bootstrap, "t", 1)
        producing.produce(cluster.bootstrap, [Record("t", 0, -1, 0, b"k", b"v", ())])
    finally:
        kraft.stop_brokers(cluster.brokers)

"""Helpers for integration tests: reading both sides and waiting for MM2."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from kasten_bp.config import Config, load_config
from kasten_bp.kafka import admin, producing, reading
from kasten_bp.lab.lab import Lab
from kasten_bp.records import Record
from kasten_bp.waiting import wait_for


class LabHandle:
    """What tests need to know about the running lab."""

    def __init__(self, lab: Lab | None, config_path: Path) -> None:
        self.lab = lab
        self.config_path = config_path

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def primary(self) -> str:
        return self.config.primary.bootstrap

    @property
    def mirror(self) -> str:
        return self.config.mirror.bootstrap


def partition_records(bootstrap: str, topic: str, partition: int) -> list[Record]:
    ((low, high),) = admin.watermarks(bootstrap, [(topic, partition)]).values()
    return reading.read_ranges(bootstrap, {(topic, partition): (low, high)})[(topic, partition)]


def contents(records: list[Record]) -> list[tuple]:
    return [r.content() for r in records]


def wait_mirrored(
    primary: str, mirror: str, topic: str, mirror_topic: str | None = None, timeout: float = 120
) -> None:
    """Wait until the mirror holds as many data records per partition as the primary."""
    mirror_topic = mirror_topic or topic
    partitions = admin.topics(primary)[topic]

    def caught_up() -> bool:
        if mirror_topic not in admin.topics(mirror):
            return False
        for p in range(partitions):
            if len(partition_records(mirror, mirror_topic, p)) < len(
                partition_records(primary, topic, p)
            ):
                return False
        return True

    wait_for(f"MM2 to mirror {topic} to {mirror_topic}", caught_up, timeout)


class BackgroundProducer:
    """Writes uniquely numbered records to a primary topic until stopped; remembers every
    record the broker acknowledged, so a test can prove none was lost."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 100.0) -> None:
        import threading

        from kasten_bp.kafka import clients

        self.topic = topic
        self.rate = rate
        self.acked: list[bytes] = []
        self._producer = clients.producer(bootstrap)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        import time

        i = 0
        while not self._stop.is_set():
            value = f"{self.topic}-{i:08d}".encode()

            def ack(err: object, msg: object, value: bytes = value) -> None:
                if err is None:
                    self.acked.append(value)

            self._producer.produce(
                self.topic, key=str(i % 17).encode(), value=value, on_delivery=ack
            )
            self._producer.poll(0)
            i += 1
            time.sleep(1 / self.rate)
        self._producer.flush(30)

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(60)


def assert_all_mirrored(
    lab: LabHandle, topic: str, acked: list[bytes], timeout: float = 180
) -> None:
    """Every acknowledged primary record reaches the mirror (MM2 resumed, nothing lost)."""
    wanted = set(acked)
    assert wanted, "the background producer acknowledged nothing"

    def all_there() -> bool:
        partitions = admin.topics(lab.mirror).get(topic, 0)
        seen = {r.value for p in range(partitions) for r in partition_records(lab.mirror, topic, p)}
        return wanted <= seen

    wait_for(f"all {len(wanted)} acknowledged records of {topic} on the mirror", all_there, timeout)


def assert_mirror_running(lab: LabHandle) -> None:
    """Brokers up with full ISRs and every MM2 connector RUNNING."""
    from kasten_bp.connect import ConnectClient

    assert lab.lab is not None
    state = lab.lab.require_state()
    assert all(b.handle.alive() for b in state.mirror.brokers)
    wait_for(
        "every mirror partition led with a full ISR",
        lambda: admin.all_partitions_healthy(lab.mirror, len(state.mirror.brokers)),
        120,
    )
    with ConnectClient(lab.config.connect.url) as client:
        for name in lab.config.connect.connectors:

            def running(name: str = name) -> bool:
                return client.all_running(name)

            wait_for(f"connector {name} RUNNING", running, 60)


KASTEN_BP = [sys.executable, "-m", "kasten_bp.cli"]


def cli(lab: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    """`kasten-bp ARGS --config <the lab's>`, as a user runs it."""
    return subprocess.run(
        [*KASTEN_BP, *args, "--config", str(lab.config_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )


def cli_with_json(lab: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    """`kasten-bp ARGS --output json`, whatever its exit code (the caller checks it)."""
    return cli(lab, *args, "--output", "json")


def lab_consume(lab: LabHandle, group: str, topic: str, records: int) -> dict[str, Any]:
    """`kasten-bp lab consume`: a real consumer group reads and commits `records`."""
    assert lab.lab is not None
    result = subprocess.run(
        [*KASTEN_BP, "lab", "consume", "--workdir"]
        + [str(lab.lab.workdir), "--group", group, "--topic", topic]
        + ["--records", str(records), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout))


def cli_json(lab: LabHandle, *args: str, expect: int = 0) -> Any:
    result = cli_with_json(lab, *args)
    assert result.returncode == expect, result.stderr[-2000:] or result.stdout[-3000:]
    return json.loads(result.stdout)


def cli_json_for(config: Path, *args: str, expect: int = 0) -> Any:
    """`kasten-bp ARGS --config CONFIG --output json` for a config of the test's own (the
    lab's is `cli_json`); must exit with `expect`."""
    done = subprocess.run(
        [*KASTEN_BP, *args, "--config", str(config), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == expect, done.stderr[-2000:] or done.stdout[-3000:]
    return json.loads(done.stdout)


def seed(lab: LabHandle, topic: str, count: int = 30) -> None:
    """Records on every partition, mirrored, before a test's backup starts."""
    producing.produce(
        lab.primary,
        [Record(topic, i % 3, -1, 0, b"seed", f"seed-{i}".encode(), ()) for i in range(count)],
    )
    wait_mirrored(lab.primary, lab.mirror, topic)


def write_spec(tmp_path: Path, **raw: Any) -> Path:
    """A replay spec file holding `raw` as YAML."""
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def fresh(prefix: str = "copy") -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

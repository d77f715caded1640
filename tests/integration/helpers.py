"""Helpers for integration tests: reading both sides and waiting for MM2."""

from __future__ import annotations

from pathlib import Path

from kasten_bp.config import Config, load_config
from kasten_bp.kafka import admin, reading
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
    return reading.read_range(bootstrap, topic, partition, low, high)


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

"""Where replayed records come from, behind one small interface.

A source lists its topics with each partition's readable range (the bound of the replay)
and streams records of many partitions at once. Two sources exist: a Kafka cluster bounded
by a backup's manifest (the restored cluster: exactly the consistent cut) and any Kafka
cluster bounded by its high watermarks at planning time. An object-storage export is the third
(export_source.py): it lists from its index and streams its files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from kasten_bp.errors import UsageError
from kasten_bp.kafka import admin, reading
from kasten_bp.kafka.configs import topic_configs
from kasten_bp.manifest import Manifest
from kasten_bp.records import Record

Key = tuple[str, int]


@dataclass(frozen=True)
class SourcePartition:
    number: int
    start: int  # first readable offset
    end: int  # the bound: offsets < end are replayed at most


@dataclass(frozen=True)
class SourceTopic:
    name: str  # as the source names it (a restored mirror's name)
    original: str  # as the primary named it (the target's default name)
    partitions: tuple[SourcePartition, ...]


class Source(Protocol):
    description: str
    backup_id: str | None

    def topics(self) -> dict[str, SourceTopic]: ...

    def stream(self, ranges: dict[Key, tuple[int, int]]) -> Iterator[Record]:
        """Data records with start <= offset < end of every range, each partition in offset
        order (partitions interleaved), committed data only."""
        ...

    def first_offset_at(self, key: Key, timestamp_ms: int) -> int | None:
        """Earliest offset whose timestamp is >= timestamp_ms (None: unknown or none)."""
        ...

    def estimate(self, key: Key, ranges: tuple[tuple[int, int], ...]) -> int:
        """Records a dry run announces for these offset ranges (an upper bound)."""
        ...

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]: ...


# A broker that has only just started (a restored cluster the replay started) may answer
# metadata with "Required feature not supported" for a moment: asked again, not failed.
JUST_STARTED = "_UNSUPPORTED_FEATURE"
JUST_STARTED_SECONDS = 30.0


def _topics(bootstrap: str) -> dict[str, int]:
    deadline = time.monotonic() + JUST_STARTED_SECONDS
    while True:
        try:
            return admin.topics(bootstrap)
        except Exception as exc:  # noqa: BLE001 - the client's own exception type
            if JUST_STARTED not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


class KafkaSource:
    """A Kafka cluster; `bounds` (from a manifest) or else its current high watermarks."""

    def __init__(
        self,
        bootstrap: str,
        bounds: dict[Key, tuple[int, int]] | None = None,
        originals: dict[str, str] | None = None,
        backup_id: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.bounds = bounds
        self.originals = originals or {}
        self.backup_id = backup_id
        what = f"backup {backup_id} on {bootstrap}" if backup_id else f"cluster {bootstrap}"
        self.description = what
        self._topics: dict[str, SourceTopic] | None = None

    @classmethod
    def for_backup(cls, bootstrap: str, manifest: Manifest) -> KafkaSource:
        bounds = {p.key: (p.log_start_offset, p.end_offset) for p in manifest.partitions}
        originals = {p.topic: p.primary_topic for p in manifest.partitions}
        return cls(bootstrap, bounds, originals, manifest.backup_id)

    def topics(self) -> dict[str, SourceTopic]:
        if self._topics is None:
            self._topics = self._describe()
        return self._topics

    def _describe(self) -> dict[str, SourceTopic]:
        counts = _topics(self.bootstrap)
        if self.bounds is not None:
            keys = sorted(self.bounds)
            missing = [f"{t}[{p}]" for t, p in keys if p >= counts.get(t, 0)]
            if missing:
                raise UsageError(
                    f"source {self.description} lacks partitions of the backup: "
                    + ", ".join(missing[:5])
                )
        else:
            keys = sorted((t, p) for t, n in counts.items() for p in range(n))
        marks = admin.watermarks(self.bootstrap, keys)
        by_topic: dict[str, list[SourcePartition]] = {}
        for key in keys:
            low, high = marks[key]
            start, end = low, high
            if self.bounds is not None:
                # The cut: never past the manifest's end, never below what is still stored.
                start, end = max(low, self.bounds[key][0]), self.bounds[key][1]
                if high < end:
                    raise UsageError(
                        f"source {self.description}: {key[0]}[{key[1]}] ends at {high}, "
                        f"before the backup's end offset {end}"
                    )
            by_topic.setdefault(key[0], []).append(SourcePartition(key[1], start, end))
        return {
            name: SourceTopic(name, self.originals.get(name, name), tuple(parts))
            for name, parts in by_topic.items()
        }

    def stream(self, ranges: dict[Key, tuple[int, int]]) -> Iterator[Record]:
        # One assignment over many partitions: the reader batches fetches across them.
        # (kasten_bp.kafka.reading keeps the multi-partition stream private for now.)
        return reading.stream_ranges(self.bootstrap, ranges)

    def first_offset_at(self, key: Key, timestamp_ms: int) -> int | None:
        offset = admin.offsets_for_times(self.bootstrap, key, timestamp_ms)
        return offset if offset >= 0 else None

    def estimate(self, key: Key, ranges: tuple[tuple[int, int], ...]) -> int:
        # Offsets in range: control records and compaction holes make the count less.
        return sum(end - start for start, end in ranges)

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        return topic_configs(self.bootstrap, topics)

"""An object-storage export as a replay source (`replay --from s3://bucket/prefix/EXPORT_ID`).

The index answers everything planning asks (topics, partitions and their cut, record
counts, configs) without reading a file; streaming reads only the files whose first/last
offsets meet the requested ranges, one file at a time, each checked against its sha256
before any of its records is handed on (kasten_bp.export.reading).
"""

from __future__ import annotations

from collections.abc import Iterator

from kasten_bp.errors import UsageError
from kasten_bp.export.index import ExportIndex
from kasten_bp.export.reading import Objects, files_in, load_index, read_file
from kasten_bp.records import Record
from kasten_bp.replay.source import Key, SourcePartition, SourceTopic


class ExportSource:
    def __init__(self, export: Objects, index: ExportIndex) -> None:
        self.export = export
        self.index = index
        self.url = export.url
        self.backup_id: str | None = index.backup_id
        self.description = f"export {index.export_id} of backup {index.backup_id} at {export.url}"
        self._cut = {p.key: p for p in index.partitions}

    @classmethod
    def open(cls, export: Objects) -> ExportSource:
        """UsageError (exit 2) naming the object when there is no complete export there."""
        return cls(export, load_index(export))

    def topics(self) -> dict[str, SourceTopic]:
        originals = {str(h["topic"]): str(h["primary_topic"]) for h in self.index.heads}
        by_topic: dict[str, list[SourcePartition]] = {}
        for p in sorted(self.index.partitions, key=lambda p: p.key):
            by_topic.setdefault(p.topic, []).append(SourcePartition(p.partition, p.start, p.end))
        return {
            name: SourceTopic(name, originals.get(name, name), tuple(parts))
            for name, parts in by_topic.items()
        }

    def stream(self, ranges: dict[Key, tuple[int, int]]) -> Iterator[Record]:
        # Partition after partition (not interleaved): one file open at a time keeps memory
        # and temporary disk to one file, whatever the parallelism.
        for key, (start, end) in ranges.items():
            if key not in self._cut:
                raise UsageError(f"{self.description} holds no partition {key[0]}[{key[1]}]")
            for f in files_in(self.index, key, start, end):
                records = read_file(self.export, self.index, f)
                try:
                    for record in records:
                        if record.offset >= end:
                            break  # a file holds its records in offset order
                        if record.offset >= start:
                            yield record
                finally:
                    records.close()  # its temporary file, now

    def first_offset_at(self, key: Key, timestamp_ms: int) -> int | None:
        """The first offset of the first file whose latest timestamp reaches timestamp_ms:
        every file before it holds older records only (the replay filters the rest by the
        window). An index without file timestamps: the partition's start (read it all)."""
        files = files_in(self.index, key, 0, 2**63)
        if any(f.max_timestamp is None for f in files):
            return self._cut[key].start
        return next((f.first_offset for f in files if (f.max_timestamp or 0) >= timestamp_ms), None)

    def estimate(self, key: Key, ranges: tuple[tuple[int, int], ...]) -> int:
        """Records in the ranges by the index's counts: exact for whole files, at most the
        offsets covered for a file a range cuts through."""
        total = 0
        for start, end in ranges:
            for f in files_in(self.index, key, start, end):
                if start <= f.first_offset and f.last_offset < end:
                    total += f.records
                else:
                    covered = min(end, f.last_offset + 1) - max(start, f.first_offset)
                    total += min(f.records, covered)
        return total

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        """What the index kept of the source's configs (an older index: none, and a topic
        this replay creates gets the target's defaults; the replay says so)."""
        kept = self.index.topic_configs
        return {t: dict(kept[t]) for t in topics if t in kept}

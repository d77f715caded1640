"""The export's own documents: `_progress.json` while it runs, `index.json` once complete.

`index.json` is written last: an export without one is incomplete, whatever files it holds.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

INDEX = "index.json"
PROGRESS = "_progress.json"
SCHEMA_VERSION = 1


def new_export_id() -> str:
    return datetime.now(UTC).strftime("ex-%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FileEntry(BaseModel):
    key: str  # relative to the export: <topic>/<partition>/<start-offset>.<ext>
    topic: str
    partition: int
    records: int
    first_offset: int
    last_offset: int
    sha256: str
    size: int
    # The file's latest record timestamp: a replay's time window skips files before it.
    # (Absent from indexes written before it was recorded.)
    max_timestamp: int | None = None


class PartitionEntry(BaseModel):
    topic: str
    partition: int
    start: int  # the cut: offsets start <= o < end were exported
    end: int
    records: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    # Offsets inside [first, last] holding no record (compaction, transaction markers).
    gaps: int = 0
    done: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def next_offset(self) -> int:
        return self.start if self.last_offset is None else self.last_offset + 1


class ExportIndex(BaseModel):
    schema_version: int = SCHEMA_VERSION
    export_id: str
    backup_id: str
    url: str  # s3://bucket/prefix/<export_id>
    format: str
    compression: str
    topic_regex: str | None = None
    roll_bytes: int
    status: str = "running"  # running | interrupted | failed | completed
    created_at: str = Field(default_factory=now_iso)
    completed_at: str | None = None
    source: str = ""
    # The manifest heads the export was cut at, per partition.
    heads: list[dict[str, Any]] = Field(default_factory=list)
    # The source topics' configs as the restored cluster described them: what a replay
    # creating its targets copies. (Absent from indexes written before they were kept.)
    topic_configs: dict[str, dict[str, str]] = Field(default_factory=dict)
    partitions: list[PartitionEntry] = Field(default_factory=list)
    files: list[FileEntry] = Field(default_factory=list)

    def partition(self, topic: str, number: int) -> PartitionEntry:
        for p in self.partitions:
            if p.topic == topic and p.partition == number:
                return p
        raise KeyError((topic, number))

    def add_file(self, entry: FileEntry) -> None:
        """A file is uploaded: the partition's counts move on with it."""
        self.files.append(entry)
        p = self.partition(entry.topic, entry.partition)
        if p.first_offset is None:
            p.first_offset = entry.first_offset
        p.records += entry.records
        p.last_offset = entry.last_offset
        p.gaps = p.last_offset - p.first_offset + 1 - p.records

    def summary(self) -> dict[str, Any]:
        """What `export -o json` prints."""
        return {
            "export_id": self.export_id,
            "backup_id": self.backup_id,
            "status": self.status,
            "url": self.url,
            "format": self.format,
            "compression": self.compression,
            "records": sum(f.records for f in self.files),
            "bytes": sum(f.size for f in self.files),
            "files": [
                f.model_dump(
                    include={
                        "key",
                        "topic",
                        "partition",
                        "records",
                        "first_offset",
                        "last_offset",
                        "sha256",
                    }
                )
                for f in self.files
            ],
        }

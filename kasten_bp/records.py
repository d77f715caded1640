"""The record model shared by reading, manifests and verification (no Kafka client here)."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = field(default_factory=tuple)

    def content(self) -> tuple[bytes | None, bytes | None, tuple[Header, ...], int]:
        """What must survive mirroring and restore: everything but topic and offset."""
        return (self.key, self.value, self.headers, self.timestamp)

    def digest(self) -> str:
        return content_digest(self)


def _field(data: bytes | None) -> bytes:
    # Length-prefixed, with -1 for null, so (b"", None) and (None, b"") differ.
    if data is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(data)) + data


def content_digest(record: Record) -> str:
    h = hashlib.sha256()
    h.update(struct.pack(">q", record.timestamp))
    h.update(_field(record.key))
    h.update(_field(record.value))
    h.update(struct.pack(">i", len(record.headers)))
    for name, value in record.headers:
        h.update(_field(name.encode()))
        h.update(_field(value))
    return h.hexdigest()


def window_digest(records: list[Record]) -> str:
    """One digest over a run of records, order included."""
    h = hashlib.sha256()
    for r in records:
        h.update(bytes.fromhex(r.digest()))
    return h.hexdigest()

"""Avro envelopes (fastavro): the schema travels in the file's header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import fastavro
from fastavro.write import Writer

from kasten_bp.export.envelope import Envelope, from_row

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "KafkaRecord",
    "namespace": "io.kasten_bp.export",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp", "type": "long", "doc": "milliseconds since the epoch"},
        {"name": "timestamp_type", "type": "string", "doc": "CreateTime or LogAppendTime"},
        {"name": "key", "type": ["null", "bytes"]},
        {"name": "value", "type": ["null", "bytes"]},
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [
                        {"name": "key", "type": "string"},
                        {"name": "value", "type": ["null", "bytes"]},
                    ],
                },
            },
        },
    ],
}
CODECS = {"zstd": "zstandard", "snappy": "snappy", "none": "null"}
_PARSED = fastavro.parse_schema(SCHEMA)


BLOCK_BYTES = 1024 * 1024


class AvroWriter:
    def __init__(self, sink: Any, compression: str, block_bytes: int = BLOCK_BYTES) -> None:
        # Blocks are cut here (by an estimate of their size), not by fastavro's interval.
        self._writer = Writer(sink, _PARSED, codec=CODECS[compression], sync_interval=1 << 30)
        self.block_bytes = block_bytes
        self.pending = 0

    def write(self, envelope: Envelope) -> None:
        self._writer.write(envelope.row())
        r = envelope.record
        self.pending += len(r.key or b"") + len(r.value or b"") + 32
        if self.pending >= self.block_bytes:
            self._writer.flush()
            self.pending = 0

    def close(self) -> None:
        self._writer.flush()
        self.pending = 0


def read_avro(fo: IO[bytes], compression: str) -> Iterator[Envelope]:
    for row in fastavro.reader(fo):
        assert isinstance(row, dict)
        yield from_row(row)

"""Parquet envelopes (pyarrow): key/value binary, headers list<struct<key, value>>, the
metadata as top-level columns; a row group per ~4 MiB of records, so memory stays small."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from kasten_bp.export.envelope import Envelope, from_row

SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("timestamp_type", pa.string(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field(
            "headers",
            pa.list_(
                pa.struct(
                    [pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())]
                )
            ),
        ),
    ]
)
ROW_GROUP_BYTES = 4 * 1024 * 1024
ROW_GROUP_ROWS = 50_000


_HEADER = SCHEMA.field("headers").type.value_type


class ParquetWriter:
    """Columns are gathered as plain lists and turned into arrays once per row group."""

    def __init__(self, sink: Any, compression: str, block_bytes: int = ROW_GROUP_BYTES) -> None:
        self._writer = pq.ParquetWriter(sink, SCHEMA, compression=compression)
        self.block_bytes = block_bytes
        self.pending = 0  # an estimate of the row group not yet written
        self._reset()

    def _reset(self) -> None:
        self._columns: list[list[Any]] = [[] for _ in range(7)]
        self._header_offsets = [0]
        self._header_keys: list[str] = []
        self._header_values: list[bytes | None] = []

    def write(self, envelope: Envelope) -> None:
        r = envelope.record
        topic, partition, offset, timestamp, ttype, key, value = self._columns
        topic.append(r.topic)
        partition.append(r.partition)
        offset.append(r.offset)
        timestamp.append(r.timestamp)
        ttype.append(envelope.timestamp_type)
        key.append(r.key)
        value.append(r.value)
        for k, v in r.headers:
            self._header_keys.append(k)
            self._header_values.append(v)
        self._header_offsets.append(len(self._header_keys))
        self.pending += len(r.key or b"") + len(r.value or b"") + 64
        if self.pending >= self.block_bytes or len(offset) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._columns[2]:
            return
        headers = pa.ListArray.from_arrays(
            pa.array(self._header_offsets, pa.int32()),
            pa.StructArray.from_arrays(
                [
                    pa.array(self._header_keys, pa.string()),
                    pa.array(self._header_values, pa.binary()),
                ],
                fields=list(_HEADER),
            ),
        )
        arrays = [
            pa.array(column, field.type)
            for column, field in zip(self._columns, SCHEMA, strict=False)
        ]
        table = pa.Table.from_arrays([*arrays, headers], schema=SCHEMA)
        self._writer.write_table(table)
        self._reset()
        self.pending = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def read_parquet(fo: IO[bytes], compression: str) -> Iterator[Envelope]:
    for batch in pq.ParquetFile(fo).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield from_row(row)

"""The export formats by name: file extension, writer and reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from kasten_bp.errors import UsageError
from kasten_bp.export.avro import AvroWriter, read_avro
from kasten_bp.export.envelope import Envelope
from kasten_bp.export.jsonl import JsonLinesWriter, read_jsonl
from kasten_bp.export.parquet import ParquetWriter, read_parquet

COMPRESSIONS = ("zstd", "snappy", "none")


class Writer(Protocol):
    pending: int  # bytes held by the writer, not yet in the sink (an estimate)

    def write(self, envelope: Envelope) -> None: ...

    def close(self) -> None:
        """Everything written reaches the sink (the sink itself stays usable)."""
        ...


@dataclass(frozen=True)
class Format:
    name: str
    writer: Callable[[Any, str, int], Writer]  # (sink, compression, block bytes)
    reader: Callable[[IO[bytes], str], Iterator[Envelope]]

    def extension(self, compression: str) -> str:
        # Avro and Parquet compress inside the file; JSON Lines is compressed whole.
        if self.name == "jsonl":
            return {"zstd": "jsonl.zst", "snappy": "jsonl.sz", "none": "jsonl"}[compression]
        return self.name


FORMATS = {
    "jsonl": Format("jsonl", JsonLinesWriter, read_jsonl),
    "avro": Format("avro", AvroWriter, read_avro),
    "parquet": Format("parquet", ParquetWriter, read_parquet),
}


def get_format(name: str, compression: str) -> Format:
    if name not in FORMATS:
        raise UsageError(f"unknown export format {name!r} (want one of {', '.join(FORMATS)})")
    if compression not in COMPRESSIONS:
        raise UsageError(
            f"unknown compression {compression!r} (want one of {', '.join(COMPRESSIONS)})"
        )
    return FORMATS[name]

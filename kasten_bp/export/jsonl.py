"""JSON Lines envelopes: one JSON object per line, bytes in base64; zstd (one zstd frame)
or snappy (the framing format, whose concatenated streams are one stream) or none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import cramjam
import zstandard

from kasten_bp.export.envelope import Envelope, from_json_line, to_json_line

BLOCK_BYTES = 1024 * 1024  # lines are compressed in blocks of about this size


class JsonLinesWriter:
    def __init__(self, sink: Any, compression: str, block_bytes: int = BLOCK_BYTES) -> None:
        self.compression = compression
        self.block_bytes = block_bytes
        self.pending = 0  # bytes written to the writer, not yet to the sink
        self._sink = sink
        self._zstd: Any = None
        self._lines: list[bytes] = []
        if compression == "zstd":
            self._zstd = zstandard.ZstdCompressor(level=3).stream_writer(sink, closefd=False)

    def write(self, envelope: Envelope) -> None:
        line = to_json_line(envelope)
        if self._zstd is not None:
            self._zstd.write(line)
            self.pending += len(line)
            if self.pending >= self.block_bytes:
                self._zstd.flush(zstandard.FLUSH_BLOCK)  # the sink's size stays current
                self.pending = 0
        elif self.compression == "snappy":
            self._lines.append(line)
            self.pending += len(line)
            if self.pending >= self.block_bytes:
                self._flush_snappy()
        else:
            self._sink.write(line)

    def _flush_snappy(self) -> None:
        if self._lines:
            self._sink.write(bytes(cramjam.snappy.compress(b"".join(self._lines))))
            self._lines, self.pending = [], 0

    def close(self) -> None:
        if self._zstd is not None:
            self._zstd.flush(zstandard.FLUSH_FRAME)
            self._zstd.close()
            self.pending = 0
        else:
            self._flush_snappy()


def read_jsonl(fo: IO[bytes], compression: str) -> Iterator[Envelope]:
    if compression == "zstd":
        reader: Any = zstandard.ZstdDecompressor().stream_reader(fo, read_across_frames=True)
        import io

        stream: Any = io.BufferedReader(reader)
    elif compression == "snappy":
        import io

        stream = io.BytesIO(bytes(cramjam.snappy.decompress(fo.read())))
    else:
        stream = fo
    for line in stream:
        if line.strip():
            yield from_json_line(line)

"""Export envelopes: every format and compression round-trips records exactly, and the
files are readable by the format's own library without kasten-bp."""

from __future__ import annotations

import base64
import io
import json

import fastavro
import pyarrow.parquet as pq
import pytest
import zstandard

from kasten_bp.errors import UsageError
from kasten_bp.export.envelope import LOG_APPEND_TIME, Envelope, timestamp_type
from kasten_bp.export.formats import COMPRESSIONS, FORMATS, get_format
from kasten_bp.export.sink import HashingSink
from kasten_bp.records import Record


def envelopes(n: int = 200) -> list[Envelope]:
    out = []
    for i in range(n):
        record = Record(
            "orders.v1",
            2,
            1000 + i * 2,  # gaps, as compaction or transaction markers leave
            1_700_000_000_000 + i,
            None if i % 7 == 0 else f"k{i}".encode(),
            None if i % 11 == 0 else bytes(range(256))[: i % 256] + "é".encode(),
            (("trace", b"\x00\xff"), ("empty", None), ("dup", b"1"), ("dup", b"2"))
            if i % 3
            else (),
        )
        out.append(Envelope(record, "CreateTime"))
    return out


def write(fmt: str, compression: str, items: list[Envelope]) -> HashingSink:
    sink = HashingSink()
    writer = get_format(fmt, compression).writer(sink, compression, 4096)
    for e in items:
        writer.write(e)
    writer.close()
    return sink


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip(fmt: str, compression: str) -> None:
    items = envelopes()
    sink = write(fmt, compression, items)
    sink.file.seek(0)
    data = sink.file.read()
    assert len(data) == sink.size
    import hashlib

    assert hashlib.sha256(data).hexdigest() == sink.sha256
    back = list(FORMATS[fmt].reader(io.BytesIO(data), compression))
    assert back == items


def test_parquet_is_plain_parquet() -> None:
    sink = write("parquet", "snappy", envelopes(10))
    sink.file.seek(0)
    table = pq.read_table(io.BytesIO(sink.file.read()))
    assert table.column_names == [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestamp_type",
        "key",
        "value",
        "headers",
    ]
    row = table.slice(1, 1).to_pylist()[0]
    assert row["key"] == b"k1" and row["offset"] == 1002
    assert row["headers"][0] == {"key": "trace", "value": b"\x00\xff"}
    assert str(table.schema.field("headers").type) == (
        "list<element: struct<key: string not null, value: binary>>"
    )


def test_avro_carries_its_schema() -> None:
    sink = write("avro", "zstd", envelopes(5))
    sink.file.seek(0)
    reader = fastavro.reader(io.BytesIO(sink.file.read()))
    assert reader.writer_schema["name"].endswith("KafkaRecord")  # type: ignore[index]
    rows = list(reader)
    assert rows[1]["value"] == bytes(range(256))[:1] + "é".encode()  # type: ignore[index]


def test_jsonl_envelope_is_documented_base64() -> None:
    sink = write("jsonl", "zstd", envelopes(2))
    sink.file.seek(0)
    raw = zstandard.ZstdDecompressor().stream_reader(sink.file).read()
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first["key"] is None and first["timestamp_type"] == "CreateTime"
    assert base64.b64decode(second["key"]) == b"k1"
    assert second["headers"][1] == {"key": "empty", "value": None}


def test_extensions() -> None:
    assert FORMATS["jsonl"].extension("zstd") == "jsonl.zst"
    assert FORMATS["jsonl"].extension("none") == "jsonl"
    assert FORMATS["parquet"].extension("zstd") == "parquet"
    assert FORMATS["avro"].extension("snappy") == "avro"


def test_unknown_format_or_compression() -> None:
    with pytest.raises(UsageError, match="unknown export format 'csv'"):
        get_format("csv", "zstd")
    with pytest.raises(UsageError, match="unknown compression 'lz4'"):
        get_format("avro", "lz4")


def test_timestamp_type_from_the_topic_config() -> None:
    assert timestamp_type({"message.timestamp.type": "LogAppendTime"}) == LOG_APPEND_TIME
    assert timestamp_type({}) == "CreateTime"

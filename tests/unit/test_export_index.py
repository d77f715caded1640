"""The export index: partition counts follow the files, gaps are counted, the summary is
what `export -o json` prints; size parsing; the CLI refuses bad input before any write."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kasten_bp import waiting
from kasten_bp.cli import app
from kasten_bp.cli.export import parse_size
from kasten_bp.errors import UsageError
from kasten_bp.export.index import ExportIndex, FileEntry, PartitionEntry, new_export_id
from tests.unit.local_config import write_local_config

runner = CliRunner()


def index() -> ExportIndex:
    return ExportIndex(
        export_id="ex-1",
        backup_id="bk-1",
        url="s3://b/p/ex-1",
        format="avro",
        compression="zstd",
        roll_bytes=100,
        partitions=[PartitionEntry(topic="t", partition=0, start=0, end=20)],
    )


def entry(first: int, last: int, records: int) -> FileEntry:
    return FileEntry(
        key=f"t/0/{first}.avro",
        topic="t",
        partition=0,
        records=records,
        first_offset=first,
        last_offset=last,
        sha256="0" * 64,
        size=10,
    )


def test_files_move_the_partition_on() -> None:
    idx = index()
    p = idx.partitions[0]
    assert p.next_offset == 0
    idx.add_file(entry(2, 9, 8))
    idx.add_file(entry(12, 19, 6))  # 10, 11 and two inside: compaction or markers
    assert (p.first_offset, p.last_offset, p.records, p.gaps) == (2, 19, 14, 4)
    assert p.next_offset == 20
    summary = idx.summary()
    assert summary["records"] == 14
    assert set(summary["files"][0]) == {
        "key",
        "topic",
        "partition",
        "records",
        "first_offset",
        "last_offset",
        "sha256",
    }
    assert ExportIndex.model_validate(idx.model_dump(mode="json")) == idx


def test_export_ids_are_unique_and_sortable() -> None:
    a, b = new_export_id(), new_export_id()
    assert a != b and a.startswith("ex-")


@pytest.mark.parametrize(
    ("text", "size"), [("64M", 64 << 20), ("512k", 512 << 10), ("1GiB", 1 << 30), ("100", 100)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["x", "-1M", "0"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(waiting, "_listeners", [])
    return write_local_config(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "/tmp/x"], "is not an S3 URL"),
        (["--to", "s3://"], "names no bucket"),
        (["--to", "s3://b/p", "--format", "csv"], "unknown export format 'csv'"),
        (["--to", "s3://b/p", "--compression", "lz4"], "unknown compression 'lz4'"),
        (["--to", "s3://b/p", "--topic", "("], "is not a regular expression"),
        (["--to", "s3://b/p", "--roll-size", "big"], "is not a size"),
        (["--to", "s3://b/p"], "backup bk-nope not found"),
    ],
)
def test_export_refuses_bad_input(config_file: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["export", "bk-nope", "--config", str(config_file), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output

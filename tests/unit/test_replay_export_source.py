"""An export as a replay source, without services: an index and files written by the real
format writers into an in-memory object store, planned, windowed and streamed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from typer.testing import CliRunner

from kasten_bp.cli import app
from kasten_bp.errors import UsageError
from kasten_bp.export.envelope import Envelope
from kasten_bp.export.formats import FORMATS
from kasten_bp.export.index import ExportIndex, FileEntry, PartitionEntry
from kasten_bp.export.reading import ExportCorrupt
from kasten_bp.export.sink import HashingSink
from kasten_bp.records import Record
from kasten_bp.replay.copy import selected
from kasten_bp.replay.export_source import ExportSource
from kasten_bp.replay.plan import plan_replay
from kasten_bp.replay.report import PartitionProgress, ReplayReport
from kasten_bp.replay.service import _dry_run, _lacking
from kasten_bp.replay.spec import parse_spec

URL = "s3://bucket/exports/ex-1"
TOPIC = "orders"
BASE_MS = 1_764_000_000_000
PER_FILE = 10  # records per file: offsets 0-9, 10-19, ... of each partition
RECORDS = 40  # per partition
HOLE = 25  # an offset no file holds (compaction), inside the third file's span


class Store:
    """Objects by key, as S3Objects offers them; counts what is downloaded."""

    def __init__(self) -> None:
        self.url = URL
        self.objects: dict[str, bytes] = {}
        self.downloads: list[str] = []

    def read_json(self, key: str) -> dict[str, Any] | None:
        data = self.objects.get(key)
        return None if data is None else json.loads(data)

    def download(self, key: str, into: IO[bytes]) -> None:
        self.downloads.append(key)
        into.seek(0)
        into.truncate()
        into.write(self.objects[key])


def record(partition: int, offset: int) -> Record:
    # Every field a Kafka record has: a null key now and then, headers with a null value,
    # timestamps one second apart.
    return Record(
        TOPIC,
        partition,
        offset,
        BASE_MS + offset * 1000,
        None if offset % 7 == 0 else b"k%d" % offset,
        b"\x00\xff" * (offset % 5),
        (("n", str(offset).encode()), ("empty", None)) if offset % 2 else (),
    )


def offsets(partition: int) -> list[int]:
    return [o for o in range(RECORDS) if not (partition == 1 and o == HOLE)]


def make_export(fmt: str = "avro", compression: str = "none", **index: Any) -> Store:
    store = Store()
    ext = FORMATS[fmt].extension(compression)
    files, parts = [], []
    for p in range(2):
        held = offsets(p)
        for first in range(0, RECORDS, PER_FILE):
            items = [record(p, o) for o in held if first <= o < first + PER_FILE]
            sink = HashingSink()
            writer = FORMATS[fmt].writer(sink, compression, 1024)
            for r in items:
                writer.write(Envelope(r, "CreateTime"))
            writer.close()
            sink.file.seek(0)
            key = f"{TOPIC}/{p}/{first}.{ext}"
            store.objects[key] = sink.file.read()
            files.append(
                FileEntry(
                    key=key,
                    topic=TOPIC,
                    partition=p,
                    records=len(items),
                    first_offset=items[0].offset,
                    last_offset=items[-1].offset,
                    sha256=sink.sha256,
                    size=sink.size,
                    max_timestamp=max(r.timestamp for r in items),
                )
            )
        parts.append(
            PartitionEntry(
                topic=TOPIC,
                partition=p,
                start=0,
                end=RECORDS,
                records=len(held),
                first_offset=0,
                last_offset=RECORDS - 1,
                done=True,
            )
        )
    doc = ExportIndex(
        export_id="ex-1",
        backup_id="bk-1",
        url=URL,
        format=fmt,
        compression=compression,
        roll_bytes=1024,
        status="completed",
        heads=[
            {"topic": TOPIC, "primary_topic": "orders-primary", "partition": p} for p in range(2)
        ],
        partitions=parts,
        files=files,
        **index,
    )
    store.objects["index.json"] = doc.model_dump_json().encode()
    return store


def spec(**raw: Any) -> Any:
    return parse_spec({"topics": [{"source": TOPIC}], **raw}, "test")


# --- planning from the index ----------------------------------------------------------


def test_topics_and_plan_come_from_the_index_without_reading_a_file() -> None:
    store = make_export()
    source = ExportSource.open(store)
    topics = source.topics()
    assert list(topics) == [TOPIC]
    assert topics[TOPIC].original == "orders-primary"
    assert [(p.number, p.start, p.end) for p in topics[TOPIC].partitions] == [
        (0, 0, RECORDS),
        (1, 0, RECORDS),
    ]
    assert source.backup_id == "bk-1" and URL in source.description
    plan = plan_replay(
        parse_spec(
            {
                "topics": [
                    {
                        "source": "ord.*",
                        "target": "copy",
                        "partitions": [{"number": 1, "from_offset": 12, "until_offset": 33}],
                    }
                ]
            },
            "test",
        ),
        topics,
    )
    assert plan.problems == []
    (item,) = plan.partitions
    assert (item.target_topic, item.partition, item.ranges) == ("copy", 1, ((12, 33),))
    # The primary's name finds the topic too; an unknown partition is one line.
    named = plan_replay(
        parse_spec(
            {"topics": [{"source": "orders-primary", "partitions": [{"number": 5}]}]}, "test"
        ),
        topics,
    )
    assert named.problems == ["topic orders: unknown partition: 5 (the source has partitions 0-1)"]
    assert store.downloads == []


def test_dry_run_counts_come_from_the_index() -> None:
    source = ExportSource.open(make_export())
    assert source.estimate((TOPIC, 0), ((0, RECORDS),)) == RECORDS
    assert source.estimate((TOPIC, 1), ((0, RECORDS),)) == RECORDS - 1  # the hole
    assert source.estimate((TOPIC, 1), ((20, 30),)) == PER_FILE - 1  # a whole file
    assert source.estimate((TOPIC, 0), ((5, 15),)) == 10  # cuts through two files
    assert source.estimate((TOPIC, 0), ((0, 3), (38, 40))) == 5
    assert source.estimate((TOPIC, 0), ((40, 40),)) == 0


def test_configs_are_the_index_s_or_none() -> None:
    kept = {TOPIC: {"max.message.bytes": "2048", "cleanup.policy": "delete"}}
    assert ExportSource.open(make_export(topic_configs=kept)).topic_configs([TOPIC]) == kept
    assert ExportSource.open(make_export()).topic_configs([TOPIC]) == {}


# --- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("jsonl", "zstd"), ("jsonl", "snappy"), ("avro", "zstd"), ("parquet", "snappy")],
)
def test_an_offset_range_reads_only_the_files_it_meets_and_keeps_every_field(
    fmt: str, compression: str
) -> None:
    store = make_export(fmt, compression)
    source = ExportSource.open(store)
    got = list(source.stream({(TOPIC, 1): (12, 33)}))
    assert got == [record(1, o) for o in offsets(1) if 12 <= o < 33]
    ext = FORMATS[fmt].extension(compression)
    assert store.downloads == [f"{TOPIC}/1/{first}.{ext}" for first in (10, 20, 30)]


def test_several_partitions_stream_each_in_offset_order() -> None:
    source = ExportSource.open(make_export())
    got = list(source.stream({(TOPIC, 0): (35, 40), (TOPIC, 1): (0, 3)}))
    assert [(r.partition, r.offset) for r in got] == [(0, o) for o in range(35, 40)] + [
        (1, 0),
        (1, 1),
        (1, 2),
    ]


def test_a_partition_the_export_lacks_is_named() -> None:
    source = ExportSource.open(make_export())
    with pytest.raises(UsageError, match=r"holds no partition orders\[7\]"):
        list(source.stream({(TOPIC, 7): (0, 1)}))


def test_a_time_window_starts_at_the_first_file_that_reaches_it() -> None:
    source = ExportSource.open(make_export())
    window = spec(
        from_datetime=datetime.fromtimestamp((BASE_MS + 23_500) / 1000, UTC),
        until_datetime=datetime.fromtimestamp((BASE_MS + 31_000) / 1000, UTC),
    )
    assert window.from_ms is not None
    first = source.first_offset_at((TOPIC, 0), window.from_ms)
    assert first == 20  # files 0-9 and 10-19 are all older: skipped
    (item,) = [p for p in plan_replay(window, source.topics()).partitions if p.partition == 0]
    item = item.from_offset(first)
    kept = [
        r for r in source.stream({item.key: (item.start, item.end)}) if selected(item, window, r)
    ]
    assert [r.offset for r in kept] == list(range(24, 31))
    assert source.first_offset_at((TOPIC, 0), BASE_MS + RECORDS * 1000) is None


def test_a_window_over_an_index_without_file_timestamps_reads_from_the_start() -> None:
    store = make_export()
    doc = json.loads(store.objects["index.json"])
    for f in doc["files"]:
        del f["max_timestamp"]  # an index written before they were recorded
    store.objects["index.json"] = json.dumps(doc).encode()
    source = ExportSource.open(store)
    assert source.first_offset_at((TOPIC, 0), BASE_MS + 23_500) == 0


# --- a file not matching its index --------------------------------------------------------


def test_a_changed_file_fails_naming_it_before_any_of_its_records() -> None:
    store = make_export("jsonl", "none")
    victim = f"{TOPIC}/0/10.jsonl"
    body = bytearray(store.objects[victim])
    body[len(body) // 2] ^= 0x01
    store.objects[victim] = bytes(body)
    got: list[Record] = []
    with pytest.raises(ExportCorrupt) as caught:
        for r in ExportSource.open(store).stream({(TOPIC, 0): (0, RECORDS)}):
            got.append(r)
    message = str(caught.value)
    assert message.startswith(f"{URL}/{victim}: sha256 ") and "does not match" in message
    assert "\n" not in message and caught.value.exit_code == 1
    # The file before it was whole and is handed on; nothing of the changed file is.
    assert [r.offset for r in got] == list(range(PER_FILE))


def test_a_file_whose_records_lie_outside_its_index_entry_is_refused() -> None:
    store = make_export()
    doc = json.loads(store.objects["index.json"])
    doc["files"][0]["last_offset"] = 5  # the file holds 0-9
    store.objects["index.json"] = json.dumps(doc).encode()
    with pytest.raises(ExportCorrupt, match=r"0\.avro: holds orders\[0\] offset 6, outside"):
        list(ExportSource.open(store).stream({(TOPIC, 0): (0, 6)}))


# --- no export there ------------------------------------------------------------------


def test_no_index_is_one_line_naming_the_url() -> None:
    store = Store()
    with pytest.raises(UsageError, match=rf"^no export at {URL} \(no index.json\)$"):
        ExportSource.open(store)
    store.objects["_progress.json"] = json.dumps(
        {"export_id": "ex-1", "status": "interrupted"}
    ).encode()
    with pytest.raises(UsageError, match=r"is incomplete \(interrupted, no index.json\)"):
        ExportSource.open(store)
    store.objects["index.json"] = b'{"export_id": 3}'
    with pytest.raises(UsageError, match=rf"^{URL}/index.json: not an export index"):
        ExportSource.open(store)


def test_cli_from_excludes_a_backup_and_a_source_cluster(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"topics": [{"source": TOPIC}]}))
    runner = CliRunner()
    for extra in (["bk-1"], ["--source-bootstrap", "127.0.0.1:1"]):
        result = runner.invoke(
            app, ["replay", *extra, "--from", URL, "--to", "127.0.0.1:1", "--spec", str(path)]
        )
        assert result.exit_code == 2
        assert "--from reads an export: drop BACKUP_ID and --source-bootstrap" in result.stderr
    result = runner.invoke(
        app, ["replay", "--from", "/tmp/x", "--to", "127.0.0.1:1", "--spec", str(path)]
    )
    assert result.exit_code == 2 and "--from '/tmp/x' is not an S3 URL" in result.stderr


def test_a_dry_run_of_an_export_prints_the_index_counts() -> None:
    source = ExportSource.open(make_export())
    window = parse_spec(
        {"topics": [{"source": TOPIC, "partitions": [{"number": 1, "from_offset": 12}]}]}, "t"
    )
    items = plan_replay(window, source.topics()).partitions
    plan = _dry_run(items, {}, source, "127.0.0.1:1")
    assert plan["backup_id"] == "bk-1" and plan["records"] == RECORDS - 12 - 1  # the hole
    (row,) = plan["partitions"]
    assert (row["first_source_offset"], row["last_source_offset"]) == (12, RECORDS - 1)


def test_a_resume_from_an_export_lacking_a_partition_is_refused() -> None:
    source = ExportSource.open(make_export())
    progress = [
        PartitionProgress(
            source_topic=TOPIC,
            target_topic="copy",
            partition=n,
            ranges=[(0, RECORDS)],
            target_start_offset=0,
            next_target_offset=0,
            done=n == 5,
        )
        for n in (1, 3, 5)
    ]
    report = ReplayReport(
        replay_id="rp-1",
        backup_id="bk-1",
        source="export",
        source_bootstrap="",
        target_bootstrap="127.0.0.1:1",
        spec={},
        partitions=progress,
    )
    assert _lacking(report, source) == [
        f"topic {TOPIC}: resume: {source.description} has no partition 3"
    ]

"""verify --export's judgement, without services: a file's records against the restored
cluster's (any iterator of records), and a partition's index against the manifest."""

from __future__ import annotations

import dataclasses

import pytest

from kasten_bp.export.check import Peek, against_manifest, compare_file
from kasten_bp.export.envelope import Envelope
from kasten_bp.export.formats import FORMATS
from kasten_bp.export.index import FileEntry, PartitionEntry
from kasten_bp.export.sink import HashingSink
from kasten_bp.manifest import HeadRecord, PartitionHead
from kasten_bp.records import Record

OFFSETS = [3, 4, 6, 7, 9]  # holes at 5 and 8: compaction or transaction markers


def records() -> list[Record]:
    return [Record("t", 0, o, 1000 + o, b"k%d" % o, b"v%d" % o, (("h", b"1"),)) for o in OFFSETS]


def exported(items: list[Record]) -> HashingSink:
    sink = HashingSink()
    writer = FORMATS["avro"].writer(sink, "none", 1024)
    for r in items:
        writer.write(Envelope(r, "CreateTime"))
    writer.close()
    sink.file.seek(0)
    return sink


def entry(items: list[Record], first: int = 3, last: int = 9) -> FileEntry:
    return FileEntry(
        key="t/0/3.avro",
        topic="t",
        partition=0,
        records=len(items),
        first_offset=first,
        last_offset=last,
        sha256="x",
        size=1,
    )


def compare(file_records: list[Record], cluster: list[Record]) -> str | None:
    sink = exported(file_records)
    problem, _ = compare_file(
        FORMATS["avro"], "none", entry(file_records), sink.file, Peek(iter(cluster)), {}
    )
    return problem


def test_a_faithful_file_passes() -> None:
    assert compare(records(), records()) is None


def test_changed_content_is_named() -> None:
    changed = records()
    changed[2] = dataclasses.replace(changed[2], value=b"other")
    assert (
        compare(changed, records()) == "offset 6 differs from the restored cluster (value differ)"
    )


def test_a_record_missing_from_the_file() -> None:
    file_records = [r for r in records() if r.offset != 6]
    problem = compare(file_records, records())
    assert problem == "record at offset 6 of the restored cluster is missing"


def test_a_record_the_cluster_does_not_hold() -> None:
    cluster = [r for r in records() if r.offset != 7]
    assert compare(records(), cluster) == "offset 7 is not a record of the restored cluster"


def test_undecodable_bytes() -> None:
    sink = HashingSink()
    sink.write(b"not avro at all")
    sink.file.seek(0)
    problem, _ = compare_file(
        FORMATS["avro"], "none", entry(records()), sink.file, Peek(iter(records())), {}
    )
    assert problem is not None and problem.startswith("cannot be decoded as avro")


def head(end: int = 10, last: int = 9) -> PartitionHead:
    return PartitionHead(
        topic="t",
        primary_topic="t",
        partition=0,
        log_start_offset=0,
        end_offset=end,
        window_digest="",
        head=[HeadRecord(offset=last, timestamp=0, digest="")],
    )


def partition(records_: int = 5, gaps: int = 2) -> PartitionEntry:
    return PartitionEntry(
        topic="t",
        partition=0,
        start=0,
        end=10,
        records=records_,
        first_offset=3,
        last_offset=9,
        gaps=gaps,
    )


@pytest.mark.parametrize(
    ("p", "h", "message"),
    [
        (partition(), head(end=12), "exported up to 10, the manifest's end is 12"),
        (partition(records_=6), head(), "files hold 5 records, the index says 6"),
        (partition(gaps=0), head(), "0 offset gaps in the index, files leave 2"),
        (partition(), head(last=8), "the manifest's head ends at offset 8, the export at 9"),
    ],
)
def test_index_against_manifest(p: PartitionEntry, h: PartitionHead, message: str) -> None:
    (problem,) = against_manifest(p, h, [entry(records())])
    assert problem.startswith("partition t[0]: ")
    assert message in problem


def test_index_matching_the_manifest() -> None:
    assert against_manifest(partition(), head(), [entry(records())]) == []

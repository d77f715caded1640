"""`verify --export`: read every file of an export back and hold it against its index,
the backup's manifest heads and the restored cluster, record by record.

One problem line per failing file or partition, naming it; the content of a file whose
sha256 does not match its index is not read (it cannot be trusted).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from kasten_bp.catalog.s3_objects import S3Objects
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.export.formats import Format, get_format
from kasten_bp.export.index import ExportIndex, FileEntry, PartitionEntry
from kasten_bp.export.reading import fetch_verified, load_index
from kasten_bp.export.service import ExportSource
from kasten_bp.manifest import Manifest, PartitionHead
from kasten_bp.records import Record


class Peek:
    """The restored cluster's records of a partition, looked at one ahead."""

    def __init__(self, records: Iterator[Record]) -> None:
        self._it = records
        self.head: Record | None = next(self._it, None)

    def take(self) -> Record | None:
        record, self.head = self.head, next(self._it, None)
        return record


def check_export(export: S3Objects, manifest: Manifest, source: ExportSource) -> dict[str, Any]:
    index = load_index(export)
    if index.backup_id != manifest.backup_id:
        raise UsageError(
            f"export {index.export_id} is of backup {index.backup_id}, not {manifest.backup_id}"
        )
    fmt = get_format(index.format, index.compression)
    heads = {p.key: p for p in manifest.partitions}
    problems: list[str] = []
    compared = 0
    for entry in index.partitions:
        files = sorted(
            (f for f in index.files if (f.topic, f.partition) == entry.key),
            key=lambda f: f.first_offset,
        )
        head = heads.get(entry.key)
        if head is None:
            problems.append(f"{_name(entry)}: not a partition of backup {manifest.backup_id}")
            continue
        found, n = _check_partition(export, fmt, index, entry, head, files, source)
        problems += found
        compared += n
    return {
        "export_id": index.export_id,
        "backup_id": index.backup_id,
        "url": export.url,
        "format": index.format,
        "verdict": "consistent" if not problems else "inconsistent",
        "files_checked": len(index.files),
        "records_compared": compared,
        "problems": problems,
    }


def _name(entry: PartitionEntry) -> str:
    return f"partition {entry.topic}[{entry.partition}]"


def _check_partition(
    export: S3Objects,
    fmt: Format,
    index: ExportIndex,
    entry: PartitionEntry,
    head: PartitionHead,
    files: list[FileEntry],
    source: ExportSource,
) -> tuple[list[str], int]:
    name = _name(entry)
    problems = against_manifest(entry, head, files)
    if problems:
        return problems, 0
    digests = {h.offset: h.digest for h in head.head}
    cluster = Peek(source.stream({entry.key: (entry.start, entry.end)}))
    compared = 0
    for f in files:
        where = f"{export.url}/{f.key}"
        with tempfile.TemporaryFile() as local:
            problem = fetch_verified(export, f, local)
            if problem is None:
                problem, n = compare_file(fmt, index.compression, f, local, cluster, digests)
                compared += n
        if problem is not None:
            problems.append(f"{where}: {problem}")
        # Whatever went wrong in this file, the next one starts after its offsets.
        while cluster.head is not None and cluster.head.offset <= f.last_offset:
            cluster.take()
    if cluster.head is not None and not problems:
        problems.append(
            f"{name}: the restored cluster holds offset {cluster.head.offset} that no file "
            "of the export holds"
        )
    return problems, compared


def against_manifest(
    entry: PartitionEntry, head: PartitionHead, files: list[FileEntry]
) -> list[str]:
    name = _name(entry)
    if entry.end != head.end_offset:
        return [f"{name}: exported up to {entry.end}, the manifest's end is {head.end_offset}"]
    records = sum(f.records for f in files)
    if records != entry.records:
        return [f"{name}: files hold {records} records, the index says {entry.records}"]
    if files:
        first, last = files[0].first_offset, files[-1].last_offset
        if (first, last) != (entry.first_offset, entry.last_offset):
            return [
                f"{name}: files span {first}..{last}, the index says "
                f"{entry.first_offset}..{entry.last_offset}"
            ]
        if entry.gaps != last - first + 1 - records:
            return [
                f"{name}: {entry.gaps} offset gaps in the index, files leave "
                f"{last - first + 1 - records}"
            ]
        for before, after in zip(files, files[1:], strict=False):
            if after.first_offset <= before.last_offset:
                return [f"{name}: files {before.key} and {after.key} overlap"]
        if head.head and head.head[-1].offset != last:
            return [
                f"{name}: the manifest's head ends at offset {head.head[-1].offset}, "
                f"the export at {last}"
            ]
    elif head.head:
        return [f"{name}: the manifest holds records up to {head.head[-1].offset}, the export none"]
    return []


def compare_file(
    fmt: Format,
    compression: str,
    f: FileEntry,
    local: IO[bytes],
    cluster: Peek,
    digests: dict[int, str],
) -> tuple[str | None, int]:
    count = 0
    previous = -1
    try:
        for envelope in fmt.reader(local, compression):
            r = envelope.record
            if (r.topic, r.partition) != (f.topic, f.partition):
                return f"offset {r.offset} is of {r.topic}[{r.partition}]", count
            if r.offset <= previous or not f.first_offset <= r.offset <= f.last_offset:
                return (
                    f"offset {r.offset} out of order or outside {f.first_offset}..{f.last_offset}",
                    count,
                )
            previous = r.offset
            c = cluster.head
            if c is None or c.offset > r.offset:
                return f"offset {r.offset} is not a record of the restored cluster", count
            if c.offset < r.offset:
                return f"record at offset {c.offset} of the restored cluster is missing", count
            cluster.take()
            if c.content() != r.content():
                return (
                    f"offset {r.offset} differs from the restored cluster ({_difference(c, r)})",
                    count,
                )
            if r.offset in digests and r.digest() != digests[r.offset]:
                return f"offset {r.offset} differs from the manifest's head digest", count
            count += 1
    except KastenBpError:
        raise  # reading the restored cluster failed: not this file's fault
    except Exception as exc:  # noqa: BLE001 - any decoding error of any format
        return f"cannot be decoded as {fmt.name}: {' '.join(str(exc).split())[:160]}", count
    if count != f.records:
        return f"holds {count} records, the index says {f.records}", count
    if previous != f.last_offset:
        return f"ends at offset {previous}, the index says {f.last_offset}", count
    return None, count


def _difference(expected: Record, got: Record) -> str:
    fields = ("key", "value", "headers", "timestamp")
    return ", ".join(f for f in fields if getattr(expected, f) != getattr(got, f)) + " differ"

"""An export from start to index: plan the partitions of the cut, stream each one into
rolled envelope files, upload each file (multipart), note it in `_progress.json`, and
write `index.json` last. `resume` continues after the last file the progress names.

Memory is bounded: one partition is read at a time, a file is written into a spooling
buffer (8 MiB in memory, the rest on disk) and at most one finished file uploads while the
next is written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

from kasten_bp.catalog.base import Catalog, backup_key
from kasten_bp.catalog.s3_objects import S3Objects
from kasten_bp.consistency.scope import compile_topics
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.export.envelope import Envelope, timestamp_type
from kasten_bp.export.formats import Format, Writer, get_format
from kasten_bp.export.index import (
    INDEX,
    PROGRESS,
    ExportIndex,
    FileEntry,
    PartitionEntry,
    new_export_id,
    now_iso,
)
from kasten_bp.export.sink import HashingSink
from kasten_bp.manifest import Manifest
from kasten_bp.records import Record
from kasten_bp.waiting import announce

DEFAULT_ROLL_BYTES = 64 * 1024 * 1024
BLOCK_BYTES = 4 * 1024 * 1024  # Avro blocks, Parquet row groups, compressed JSON blocks

Key = tuple[str, int]


class ExportSource(Protocol):
    """What an export reads: the replay's source interface (kasten_bp.replay.source), a
    restored cluster bounded by the manifest heads; only the parts an export needs."""

    description: str

    def topics(self) -> Mapping[str, Any]: ...

    def stream(self, ranges: dict[Key, tuple[int, int]]) -> Iterator[Record]: ...

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]: ...


def export_pointer(export_id: str) -> str:
    """Where the catalog notes an export of a backup (the evidence report finds it there)."""
    return f"export-{export_id}.json"


class Exports:
    def __init__(self, catalog: Catalog, destination: S3Objects) -> None:
        self.catalog = catalog
        self.destination = destination

    def refuse_existing(self) -> None:
        """--to must not point into an export (its index or progress would be mixed)."""
        for name in (INDEX, PROGRESS):
            data = self.destination.read_json(name)
            if data is not None:
                raise UsageError(
                    f"{self.destination.url} already holds export {data.get('export_id')}: "
                    "export into its parent prefix, or continue it with --resume"
                )

    def run(
        self,
        source: ExportSource,
        manifest: Manifest,
        fmt: str,
        compression: str,
        topic_regex: str | None = None,
        roll_bytes: int = DEFAULT_ROLL_BYTES,
    ) -> dict[str, Any]:
        get_format(fmt, compression)
        wanted = compile_topics(topic_regex)
        if roll_bytes <= 0:
            raise UsageError(f"--roll-size must be positive, not {roll_bytes}")
        self.destination.check_bucket()
        self.refuse_existing()
        topics = source.topics()
        heads = {p.key: p for p in manifest.partitions}
        entries = [
            PartitionEntry(topic=name, partition=part.number, start=part.start, end=part.end)
            for name, topic in sorted(topics.items())
            if wanted is None or wanted.fullmatch(name)
            for part in topic.partitions
            if (name, part.number) in heads
        ]
        if not entries:
            raise UsageError(
                f"backup {manifest.backup_id}: no topic matches --topic {topic_regex!r}"
            )
        export_id = new_export_id()
        index = ExportIndex(
            export_id=export_id,
            backup_id=manifest.backup_id,
            url=f"{self.destination.url}/{export_id}",
            format=fmt,
            compression=compression,
            topic_regex=topic_regex,
            roll_bytes=roll_bytes,
            source=source.description,
            heads=[
                heads[p.key].model_dump(
                    mode="json",
                    include={
                        "topic",
                        "primary_topic",
                        "partition",
                        "log_start_offset",
                        "end_offset",
                        "compacted",
                        "window_digest",
                        "head",
                    },
                )
                for p in entries
            ],
            partitions=entries,
        )
        out = self.destination.child(export_id)
        out.write_json(PROGRESS, index.model_dump(mode="json"))
        announce(f"export {export_id}: {len(entries)} partitions into {index.url}")
        return self._copy(source, out, index)

    def resume(self, export_id: str, source: ExportSource, backup_id: str) -> dict[str, Any]:
        self.destination.check_bucket()
        out = self.destination.child(export_id)
        data = out.read_json(PROGRESS) or out.read_json(INDEX)
        if data is None:
            raise UsageError(f"no export {export_id} under {self.destination.url}")
        index = ExportIndex.model_validate(data)
        if index.backup_id != backup_id:
            raise UsageError(f"export {export_id} is of backup {index.backup_id}, not {backup_id}")
        if index.status == "completed":
            return index.summary()
        return self._copy(source, out, index)

    def _copy(self, source: ExportSource, out: S3Objects, index: ExportIndex) -> dict[str, Any]:
        fmt = get_format(index.format, index.compression)
        topics = sorted({p.topic for p in index.partitions})
        index.topic_configs = source.topic_configs(topics)
        types = {t: timestamp_type(c) for t, c in index.topic_configs.items()}
        index.status = "running"
        uploader = _Uploader(out, index)
        try:
            with _sigterm_interrupts():
                for entry in index.partitions:
                    if not entry.done:
                        _export_partition(source, fmt, index, entry, types, uploader)
                        uploader.finish_partition(entry)
                uploader.drain()
        except KeyboardInterrupt:
            uploader.drain(quietly=True)
            index.status = "interrupted"
            uploader.save()
            return index.summary()
        except KastenBpError as exc:
            # What is uploaded stays counted; the export has no index, so it is not
            # mistaken for a complete one.
            uploader.drain(quietly=True)
            index.status = "failed"
            with contextlib.suppress(KastenBpError):  # S3 itself may be what failed
                uploader.save()
            raise type(exc)(
                f"export {index.export_id}: {exc} (continue with --resume {index.export_id})"
            ) from None
        finally:
            uploader.close()
        index.status = "completed"
        index.completed_at = now_iso()
        document = index.model_dump(mode="json")
        out.write_json(INDEX, document)
        out.write_json(PROGRESS, document)
        self.catalog.write_json(
            backup_key(index.backup_id, export_pointer(index.export_id)), index.summary()
        )
        return index.summary()


def _export_partition(
    source: ExportSource,
    fmt: Format,
    index: ExportIndex,
    entry: PartitionEntry,
    types: dict[str, str],
    uploader: _Uploader,
) -> None:
    start = entry.next_offset
    if start >= entry.end:
        return
    ttype = types.get(entry.topic, "CreateTime")
    current: _OpenFile | None = None
    for record in source.stream({entry.key: (start, entry.end)}):
        if current is None:
            current = _OpenFile(fmt, index.compression, index.roll_bytes, record)
        current.write(Envelope(record, ttype))
        if current.sink.size + current.writer.pending >= index.roll_bytes:
            uploader.submit(current.finish(fmt, index.compression))
            current = None
    if current is not None:
        uploader.submit(current.finish(fmt, index.compression))


class _OpenFile:
    def __init__(self, fmt: Format, compression: str, roll_bytes: int, first: Record) -> None:
        self.sink = HashingSink()
        # Blocks (row groups) of at most a quarter file: a small roll size still rolls.
        block = max(1024, min(BLOCK_BYTES, roll_bytes // 4))
        self.writer: Writer = fmt.writer(self.sink, compression, block)
        self.topic, self.partition = first.topic, first.partition
        self.first = first.offset
        self.last = first.offset
        self.records = 0
        self.max_timestamp = first.timestamp

    def write(self, envelope: Envelope) -> None:
        self.writer.write(envelope)
        self.last = envelope.record.offset
        self.records += 1
        self.max_timestamp = max(self.max_timestamp, envelope.record.timestamp)

    def finish(self, fmt: Format, compression: str) -> tuple[FileEntry, HashingSink]:
        self.writer.close()
        key = f"{self.topic}/{self.partition}/{self.first}.{fmt.extension(compression)}"
        entry = FileEntry(
            key=key,
            topic=self.topic,
            partition=self.partition,
            records=self.records,
            first_offset=self.first,
            last_offset=self.last,
            sha256=self.sink.sha256,
            size=self.sink.size,
            max_timestamp=self.max_timestamp,
        )
        return entry, self.sink


class _Uploader:
    """One upload in flight while the next file is written; a file counts once uploaded."""

    def __init__(self, out: S3Objects, index: ExportIndex) -> None:
        self.out = out
        self.index = index
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-upload")
        self._pending: tuple[Future[None], FileEntry, HashingSink] | None = None
        # Partitions whose last file is the one in flight: done once it is uploaded.
        self._finishing: list[PartitionEntry] = []

    def finish_partition(self, entry: PartitionEntry) -> None:
        """The partition is done once its last file is uploaded; the next partition is
        read meanwhile."""
        self._finishing.append(entry)
        if self._pending is None:
            self._mark_done()
            self.save()

    def _mark_done(self) -> None:
        for entry in self._finishing:
            entry.done = True
        self._finishing = []

    def submit(self, item: tuple[FileEntry, HashingSink]) -> None:
        self.drain()
        entry, sink = item
        future = self._pool.submit(self.out.upload, entry.key, sink.file)
        self._pending = (future, entry, sink)

    def drain(self, quietly: bool = False) -> None:
        """Wait for the upload in flight and record it (quietly: a failure is dropped, the
        file is simply not counted and a resume writes it again)."""
        if self._pending is None:
            return
        future, entry, sink = self._pending
        try:
            future.result()  # an interrupt here leaves it pending: the quiet drain waits
        except Exception:
            self._pending = None
            sink.discard()
            if quietly:
                return
            raise
        self._pending = None
        sink.discard()
        self.index.add_file(entry)
        self._mark_done()
        self.save()

    def save(self) -> None:
        self.out.write_json(PROGRESS, self.index.model_dump(mode="json"))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops an export like Ctrl-C: progress saved, `--resume` continues it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Reading an export back: its index, and the records of its files, each file checked
against the index's sha256 before a single record of it is decoded.

A file is downloaded into a temporary file (Parquet needs to seek to its footer, and a
record of a file that turns out to be changed must never be handed on), hashed, then decoded
as a stream: memory holds one decoded batch, never a whole file or partition.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Generator
from typing import IO, Any, Protocol

from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.export.formats import get_format
from kasten_bp.export.index import INDEX, PROGRESS, ExportIndex, FileEntry
from kasten_bp.records import Record


class ExportCorrupt(KastenBpError):
    """A file of an export is not what its index says: exit 1, like a failed verify."""

    exit_code = 1


class Objects(Protocol):
    """Where an export's objects are (S3Objects; a dict in the unit tests)."""

    url: str

    def read_json(self, key: str) -> dict[str, Any] | None: ...

    def download(self, key: str, into: IO[bytes]) -> None: ...


def load_index(export: Objects) -> ExportIndex:
    data = export.read_json(INDEX)
    if data is None:
        progress = export.read_json(PROGRESS)
        if progress is not None:
            raise UsageError(
                f"export {export.url} is incomplete ({progress.get('status')}, no {INDEX}): "
                f"finish it with `kasten-bp export ... --resume {progress.get('export_id')}`"
            )
        raise UsageError(f"no export at {export.url} (no {INDEX})")
    try:
        return ExportIndex.model_validate(data)
    except ValueError as exc:
        first = " ".join(str(exc).split())[:160]
        raise UsageError(f"{export.url}/{INDEX}: not an export index: {first}") from None


def fetch_verified(export: Objects, f: FileEntry, local: IO[bytes]) -> str | None:
    """Download `f` into `local` (left at its start); the problem, if its bytes are not
    those the index names."""
    try:
        export.download(f.key, local)
    except KastenBpError as exc:
        return f"cannot be read ({exc})"
    local.seek(0)
    h = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: local.read(1 << 20), b""):
        h.update(chunk)
        size += len(chunk)
    if h.hexdigest() != f.sha256 or size != f.size:
        return (
            f"sha256 {h.hexdigest()[:16]}… ({size} bytes) does not match the index's "
            f"{f.sha256[:16]}… ({f.size} bytes)"
        )
    local.seek(0)
    return None


def files_in(index: ExportIndex, key: tuple[str, int], start: int, end: int) -> list[FileEntry]:
    """The files of a partition holding offsets in [start, end), in offset order: the
    index's first/last offsets decide, no other file is downloaded."""
    return sorted(
        (
            f
            for f in index.files
            if (f.topic, f.partition) == key and f.last_offset >= start and f.first_offset < end
        ),
        key=lambda f: f.first_offset,
    )


def read_file(export: Objects, index: ExportIndex, f: FileEntry) -> Generator[Record, None, None]:
    """The records of one file, in its order, once its sha256 matched the index.
    ExportCorrupt (one line naming the file) when it does not, or cannot be decoded."""
    where = f"{export.url}/{f.key}"
    fmt = get_format(index.format, index.compression)
    with tempfile.TemporaryFile() as local:
        problem = fetch_verified(export, f, local)
        if problem is not None:
            raise ExportCorrupt(f"{where}: {problem}")
        try:
            for envelope in fmt.reader(local, index.compression):
                r = envelope.record
                if (r.topic, r.partition) != (f.topic, f.partition) or not (
                    f.first_offset <= r.offset <= f.last_offset
                ):
                    raise ExportCorrupt(
                        f"{where}: holds {r.topic}[{r.partition}] offset {r.offset}, outside "
                        f"{f.topic}[{f.partition}] {f.first_offset}..{f.last_offset}"
                    )
                yield r
        except KastenBpError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoding error of any format
            detail = " ".join(str(exc).split())[:160]
            raise ExportCorrupt(f"{where}: cannot be decoded as {fmt.name}: {detail}") from None

"""Doctored copies of a real backup, to prove `verify` catches damaged snapshots.

A doctored backup is a new catalog entry whose snapshots are copies of a real backup's,
changed on disk the way storage goes wrong: a torn tail, a flipped value, a lost record."""

from __future__ import annotations

import hashlib
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.platforms.local import tree_digest


def doctor(
    backups: Backups,
    backup_id: str,
    new_id: str,
    surgery: Callable[[Path], None],
    manifest_surgery: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Copy backup_id to new_id, apply `surgery` to each broker's snapshot dir, and record
    the new checksums (the damage happened before the snapshot was checksummed).
    `manifest_surgery`, applied last, edits the new manifest when the damage is to predate
    the capture of the heads too."""
    catalog = backups.catalog
    manifest = catalog.read_json(backup_key(backup_id, "manifest.json"))
    journal = catalog.read_json(backup_key(backup_id, "journal.json"))
    assert manifest is not None and journal is not None
    manifest["backup_id"] = journal["backup_id"] = new_id
    for ref in manifest["snapshots"]:
        source = Path(ref["location"])
        target = source.parent.parent / new_id / source.name
        shutil.copytree(source, target, symlinks=True)
        surgery(target)
        ref["location"] = str(target)
        ref["size_bytes"], ref["checksum"] = tree_digest(target)
    if manifest_surgery is not None:
        manifest_surgery(manifest)
    catalog.write_json(backup_key(new_id, "manifest.json"), manifest)
    catalog.write_json(backup_key(new_id, "journal.json"), journal)


def truncate_tail(topic: str, partition: int, drop_bytes: int) -> Callable[[Path], None]:
    """A torn write: the partition's active segment loses its last bytes, and the broker
    did not shut down cleanly, so recovery truncates to the last whole batch."""

    def surgery(log_dir: Path) -> None:
        part = log_dir / f"{topic}-{partition}"
        if not part.exists():
            return
        segment = sorted(part.glob("*.log"))[-1]
        size = segment.stat().st_size
        with open(segment, "r+b") as f:
            f.truncate(max(0, size - drop_bytes))
        (log_dir / ".kafka_cleanshutdown").unlink(missing_ok=True)
        (log_dir / "recovery-point-offset-checkpoint").unlink(missing_ok=True)

    return surgery


def replace_bytes(topic: str, partition: int, old: bytes, new: bytes) -> Callable[[Path], None]:
    """Bit rot that checksums do not catch: a value changed and its batch CRC recomputed."""
    assert len(old) == len(new)

    def surgery(log_dir: Path) -> None:
        part = log_dir / f"{topic}-{partition}"
        if not part.exists():
            return
        for segment in part.glob("*.log"):
            data = bytearray(segment.read_bytes())
            at = data.find(old)
            if at < 0:
                continue
            data[at : at + len(old)] = new
            _fix_batch_crc(data, at)
            segment.write_bytes(bytes(data))

    return surgery


class RemoveRecord:
    """A record lost from the middle of a partition: the record whose bytes contain `marker`
    is cut out of its batch, and the batch's length, record count and CRC-32C are rewritten,
    so the broker accepts the log: later records keep their offsets, one offset is simply
    gone, the shape log compaction leaves. (A batch of that one record is dropped whole.)
    The broker is made to recover the log dir and to rebuild the segment's indexes.

    Call the object as the snapshot surgery; `record_in_manifest` as the manifest surgery,
    when the loss is to predate the capture of the heads: then the restored head equals
    the manifest, and only the comparison with the primary can show the hole."""

    def __init__(self, topic: str, partition: int, marker: bytes) -> None:
        self.topic = topic
        self.partition = partition
        self.marker = marker
        self.removed_offset: int | None = None

    def __call__(self, log_dir: Path) -> None:
        part = log_dir / f"{self.topic}-{self.partition}"
        if not part.exists():
            return
        hits = 0
        for segment in sorted(part.glob("*.log")):
            data = bytearray(segment.read_bytes())
            at = data.find(self.marker)
            if at < 0:
                continue
            assert data.find(self.marker, at + 1) < 0, "the marker must name one record"
            offset = _remove_record(data, at)
            assert self.removed_offset in (None, offset), "replicas disagree on the offset"
            self.removed_offset = offset
            segment.write_bytes(bytes(data))
            for index in (".index", ".timeindex"):
                segment.with_suffix(index).unlink(missing_ok=True)
            hits += 1
        assert hits == 1, f"{self.marker!r} found in {hits} segments of {part}"
        (log_dir / ".kafka_cleanshutdown").unlink(missing_ok=True)
        (log_dir / "recovery-point-offset-checkpoint").unlink(missing_ok=True)

    def record_in_manifest(self, manifest: dict[str, Any]) -> None:
        """The manifest's head as a capture of the damaged log would have written it."""
        assert self.removed_offset is not None, f"{self.marker!r} was in no snapshot"
        (head,) = [
            p
            for p in manifest["partitions"]
            if (p["topic"], p["partition"]) == (self.topic, self.partition)
        ]
        records = head["head"]
        assert _window_digest([r["digest"] for r in records]) == head["window_digest"]
        # With the whole partition in the window, no older record moves into it.
        assert records[0]["offset"] == head["log_start_offset"]
        kept = [r for r in records if r["offset"] != self.removed_offset]
        assert len(kept) == len(records) - 1, "the removed record was not in the head"
        assert kept[0] == records[0] and kept[-1] == records[-1], "the hole must be inside"
        head["head"] = kept
        head["window_digest"] = _window_digest([r["digest"] for r in kept])


def _window_digest(digests: list[str]) -> str:
    """kasten_bp.records.window_digest, from the manifest's per-record digests."""
    h = hashlib.sha256()
    for d in digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


# Record batch v2 (magic 2): the header's fields and their byte positions.
_LENGTH, _MAGIC, _CRC, _ATTRIBUTES, _COUNT, _RECORDS = 8, 16, 17, 21, 57, 61


def _remove_record(data: bytearray, inside: int) -> int:
    """Cut the record holding byte `inside` out of its batch; returns its offset."""
    start, end = _batch_around(data, inside)
    assert data[start + _MAGIC] == 2, "not a v2 record batch"
    (attributes,) = struct.unpack_from(">h", data, start + _ATTRIBUTES)
    assert attributes & 0x07 == 0, "a compressed batch: the marker could not be seen"
    (base_offset,) = struct.unpack_from(">q", data, start)
    (count,) = struct.unpack_from(">i", data, start + _COUNT)
    pos = start + _RECORDS
    for _ in range(count):
        length, body = _varint(data, pos)
        record_end = body + length
        if pos <= inside < record_end:
            _, at = _varint(data, body + 1)  # after attributes: timestampDelta
            offset_delta, _ = _varint(data, at)
            if count == 1:
                del data[start:end]
            else:
                del data[pos:record_end]
                new_end = end - (record_end - pos)
                struct.pack_into(">i", data, start + _LENGTH, new_end - start - 12)
                struct.pack_into(">i", data, start + _COUNT, count - 1)
                struct.pack_into(
                    ">I", data, start + _CRC, crc32c(bytes(data[start + _ATTRIBUTES : new_end]))
                )
            return base_offset + offset_delta
        pos = record_end
    raise AssertionError("the marker is in a batch header, not in a record")


def _batch_around(data: bytearray, inside: int) -> tuple[int, int]:
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + _LENGTH)
        end = pos + 12 + length
        if pos <= inside < end:
            return pos, end
        pos = end
    raise AssertionError("no record batch holds the marker")


def _varint(data: bytearray, pos: int) -> tuple[int, int]:
    """A zigzag varint (Kafka's record fields): its value and the position after it."""
    raw = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def _fix_batch_crc(data: bytearray, inside: int) -> None:
    """The CRC-32C covers the batch from its attributes to its end."""
    start, end = _batch_around(data, inside)
    struct.pack_into(">I", data, start + _CRC, crc32c(bytes(data[start + _ATTRIBUTES : end])))


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

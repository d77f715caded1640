"""Doctored copies of a real backup, to prove `verify` catches damaged snapshots.

A doctored backup is a new catalog entry whose snapshots are copies of a real backup's,
changed on disk the way storage goes wrong: a torn tail, a flipped value."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

from kasten_bp.backup import Backups
from kasten_bp.catalog.base import backup_key
from kasten_bp.platforms.local import tree_digest


def doctor(backups: Backups, backup_id: str, new_id: str, surgery: Callable[[Path], None]) -> None:
    """Copy backup_id to new_id, apply `surgery` to each broker's snapshot dir, and record
    the new checksums (the damage happened before the snapshot was checksummed)."""
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


def _fix_batch_crc(data: bytearray, inside: int) -> None:
    """Record batch v2: baseOffset(8) length(4) epoch(4) magic(1) crc(4) then the CRC-32C
    covered bytes from attributes to the end of the batch."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        end = pos + 12 + length
        if pos <= inside < end:
            crc = crc32c(bytes(data[pos + 21 : end]))
            struct.pack_into(">I", data, pos + 17, crc)
            return
        pos = end
    raise AssertionError("no record batch holds the replaced bytes")


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

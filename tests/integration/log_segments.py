"""Reading a broker's log dir from its files: what a volume snapshot holds, without a broker."""

from __future__ import annotations

import struct
from pathlib import Path

# A record batch starts: baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
# magic int8, crc uint32, attributes int16, lastOffsetDelta int32 (Kafka's DefaultRecordBatch).
_HEADER = struct.Struct(">qiibIhi")


def log_end_offset(partition_dir: Path) -> int:
    """The next offset the partition in `partition_dir` (`<topic>-<n>`) would write."""
    end = 0
    for segment in sorted(partition_dir.glob("*.log")):
        end = max(end, int(segment.stem))
        data = segment.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            base, length, _, _, _, _, last_delta = _HEADER.unpack_from(data, pos)
            if length <= 0:
                break
            end = max(end, base + last_delta + 1)
            pos += 12 + length
    return end


def node_properties(log_dir: Path) -> dict[str, str]:
    """meta.properties of a KRaft log dir (node.id, cluster.id, directory.id, version)."""
    props: dict[str, str] = {}
    for line in (log_dir / "meta.properties").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props

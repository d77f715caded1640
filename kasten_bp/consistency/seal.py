"""Content digests of whole partitions: sealed from the mirror after a backup, recomputed
from a restored cluster by verify --deep --against manifest. One streaming read of all the
partitions at once; memory does not grow with their size."""

from __future__ import annotations

import hashlib

from kasten_bp.kafka import reading

Key = tuple[str, int]


def content_digests(
    bootstrap: str, ranges: dict[Key, tuple[int, int]]
) -> dict[Key, tuple[str, int]]:
    """key -> (digest over the data records in [start, end), how many there were). The
    digest chains each record's content digest in offset order (records.window_digest's
    rule), so a changed, missing, extra or reordered record changes it."""
    hashers = {key: hashlib.sha256() for key in ranges}
    counts = dict.fromkeys(ranges, 0)
    for record in reading.stream_ranges(bootstrap, ranges):
        key = (record.topic, record.partition)
        hashers[key].update(bytes.fromhex(record.digest()))
        counts[key] += 1
    return {key: (hashers[key].hexdigest(), counts[key]) for key in ranges}

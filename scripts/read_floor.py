#!/usr/bin/env python3
"""The floor under `verify --deep` (a measure of `make bench`): every record of a topic
read from two clusters with deep verify's own reader (`batches.content_batches`, columns
included), a partition's two reads alternating batch by batch as verify's walk does, and
nothing compared. What verify takes beyond this process is its comparison, its CLI
start-up and its head-window pass; what this process takes beyond kcat is confluent-kafka's
and the second cluster's.

usage: read_floor.py PRIMARY RESTORED TOPIC  (prints the records read)
"""

from __future__ import annotations

import gc
import itertools
import sys
from collections.abc import Iterator

from kasten_bp.kafka import admin, batches


def partition_reads(bootstrap: str, topic: str) -> list[Iterator[batches.Batch]]:
    """Batch generators of every partition of `topic`, in partition order."""
    marks = admin.watermarks(bootstrap, [(topic, p) for p in range(admin.topics(bootstrap)[topic])])
    return [
        batches.content_batches(bootstrap, topic, p, low, high)
        for (_, p), (low, high) in sorted(marks.items())
    ]


def main() -> int:
    primary, restored, topic = sys.argv[1:4]
    gc.disable()  # as deep verify does while it compares
    read = 0
    reads = zip(partition_reads(restored, topic), partition_reads(primary, topic), strict=True)
    for ours, theirs in reads:
        for pair in itertools.zip_longest(ours, theirs):
            read += sum(b.size for b in pair if b is not None)
    print(read)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading partitions one after another with the pooled consumers (deep verify's way): a
read its caller abandons gives its consumer back, and what that consumer had prefetched
never reaches the next read, not even of the same partition from an earlier offset."""

from __future__ import annotations

import uuid

import pytest

from kasten_bp.kafka import admin, batches, clients, producing
from kasten_bp.kafka.reading import ISOLATION_LEVEL
from kasten_bp.records import Record

from .helpers import LabHandle

pytestmark = pytest.mark.integration


def test_an_abandoned_read_gives_its_consumer_back_and_nothing_it_prefetched(
    lab: LabHandle,
) -> None:
    topic = f"rd-{uuid.uuid4().hex[:8]}"
    admin.create_topic(lab.primary, topic, 1)
    count = 12_000  # several fetches of ~500-byte records, so a read stops with more queued
    producing.produce(
        lab.primary,
        [Record(topic, 0, -1, 0, b"k", b"v" * 500 + str(i).encode(), ()) for i in range(count)],
    )
    key = (lab.primary, ISOLATION_LEVEL, batches.READ_SETTINGS, clients.security_for(lab.primary))
    for start in (0, 4000, 8000):
        pooled = len(clients._pool.get(key, []))
        read = batches.content_batches(lab.primary, topic, 0, start, count)
        first = next(read)
        assert first.offset(0) == start
        read.close()  # abandoned after its first batch, with more records queued
        # Its consumer went back to the pool (one was taken from it, or made, for the read).
        assert len(clients._pool.get(key, [])) == max(1, pooled)
        # Re-read from before where the abandoned read stood: every record, in order.
        offsets = [
            b.offset(i)
            for b in batches.content_batches(lab.primary, topic, 0, 0, 3000)
            for i in range(b.size)
        ]
        assert offsets == list(range(3000))
        values = [
            b.content(i)[2]
            for b in batches.content_batches(lab.primary, topic, 0, 2990, 3000)
            for i in range(b.size)
        ]
        assert values == [b"v" * 500 + str(i).encode() for i in range(2990, 3000)]

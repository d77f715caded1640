#!/usr/bin/env python3
"""The ceiling of any deep verify built on confluent-kafka (a measure of `make bench`):
every record of a topic read from each cluster given, one process per cluster, all at
once, by deep verify's consumer (`clients.consumer` with `batches.READ_SETTINGS`) in
batches of deep verify's size, nothing done with the records (no columns, no
comparison). A verify reads both clusters, so no verify on this client verifies records
faster than half the rate at which this process reads two clusters.

usage: consume_ceiling.py TOPIC BOOTSTRAP [BOOTSTRAP ...]  (prints the records read)
"""

from __future__ import annotations

import gc
import multiprocessing
import sys

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from kasten_bp.kafka import clients
from kasten_bp.kafka.batches import BATCH, READ_SETTINGS

_error = Message.error


def read_all(bootstrap: str, topic: str) -> int:
    """Records of every partition of `topic` on `bootstrap`, from the beginning until the
    consumer reports each partition's end."""
    gc.disable()  # as deep verify does
    consumer = clients.consumer(bootstrap, dict(READ_SETTINGS))  # deep verify's consumer
    try:
        live = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in live])
        read = 0
        while live:
            msgs = consumer.consume(num_messages=BATCH, timeout=0.2)
            read += len(msgs)
            if any(map(_error, msgs)):  # rare: an end of partition, or a failure
                for m in msgs:
                    if (err := m.error()) is None:
                        continue
                    read -= 1
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {topic} on {bootstrap}: {err.str()}")
                    live.discard(m.partition())
        return read
    finally:
        consumer.close()


def main() -> int:
    topic, *bootstraps = sys.argv[1:]
    # Forked: this process has made no Kafka client (no librdkafka threads to copy).
    with multiprocessing.get_context("fork").Pool(len(bootstraps)) as pool:
        counts = pool.starmap(read_all, [(b, topic) for b in bootstraps])
    print(sum(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

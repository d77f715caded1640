"""Records of one partition as batches of columns: the fast path for reading a whole
partition to compare it (deep verify), with no per-record Python object of ours.

A record's content is `(timestamp, key, value, headers)` exactly as librdkafka hands them
over (headers a list of (name, value) pairs, or None): two records are the same record when
their contents are equal, so comparing needs no digest (equality stops at the first
differing byte, where a hash reads every byte of both). A batch holds them as four columns,
each filled by `map` over the messages' accessors: the calls are made from C, with no
bytecode and no tuple per record (building a tuple per record was half of deep verify's
time), and a run of records compares as four list comparisons.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from kasten_bp.errors import KastenBpError, TemporaryError
from kasten_bp.kafka import clients
from kasten_bp.kafka.reading import ISOLATION_LEVEL, STUCK_AFTER_SECONDS
from kasten_bp.transience import is_temporary

Content = tuple[int, bytes | None, bytes | None, Any]
# Records per batch, and each consumer's prefetch: a deep verify holds a batch and a
# queue per cluster in each process, so both are kept small (measured no slower at 1 M
# records than 5,000 records and 16 MiB, with 100 MiB less resident memory per process).
# A fetch response stays in memory until its last record is consumed: fetches are small.
BATCH = 1000
READ_SETTINGS: clients.ReadSettings = (
    ("queued.max.messages.kbytes", 4096),
    ("fetch.max.bytes", 4 * 1024 * 1024),
    ("max.partition.fetch.bytes", 1024 * 1024),
)
_get_error = Message.error
_timestamp, _key, _value, _headers = Message.timestamp, Message.key, Message.value, Message.headers
_second = itemgetter(1)


@dataclass(frozen=True)
class Batch:
    """Consecutive data records of one partition: their messages (for offsets, asked only
    when a report needs one) and the columns of their contents, index for index."""

    messages: Sequence[Message]
    columns: tuple[list[Any], ...]

    @property
    def size(self) -> int:
        return len(self.messages)

    def content(self, index: int) -> Content:
        timestamps, keys, values, headers = self.columns
        return (timestamps[index], keys[index], values[index], headers[index])

    def offset(self, index: int) -> int:
        return int(self.messages[index].offset() or 0)


def columns_of(messages: Sequence[Message]) -> tuple[list[Any], ...]:
    """(timestamps, keys, values, headers) of the messages; the timestamp without its type
    (MM2 writes the primary's LogAppendTime as a CreateTime)."""
    return (
        list(map(_second, map(_timestamp, messages))),
        list(map(_key, messages)),
        list(map(_value, messages)),
        list(map(_headers, messages)),
    )


def content_batches(
    bootstrap: str, topic: str, partition: int, start: int, end: int, size: int = BATCH
) -> Generator[Batch, None, None]:
    """Data records with start <= offset < end, in order, a batch at a time. Control
    records occupy offsets and are never delivered: the partition is done by the
    consumer's position, not by the last offset seen."""
    if end <= start:
        return
    position = start
    with clients.pooled_consumer(
        bootstrap, ISOLATION_LEVEL, READ_SETTINGS, topics=(topic,)
    ) as consumer:
        tp = TopicPartition(topic, partition, start)
        consumer.assign([tp])
        deadline = time.monotonic() + STUCK_AFTER_SECONDS
        while position < end:
            # Ask for no more than remain, or consume() waits out its timeout for the rest.
            msgs = consumer.consume(num_messages=min(size, end - position), timeout=0.2)
            msgs = _data(msgs, bootstrap, topic, partition, position)
            if not msgs:
                (now,) = consumer.position([TopicPartition(topic, partition)])
                if now.offset >= end:
                    return
                if time.monotonic() > deadline:
                    raise KastenBpError(
                        f"reading {topic}[{partition}] from {bootstrap}: stuck at {position} "
                        f"of {end} (no progress for {STUCK_AFTER_SECONDS:.0f}s)"
                    )
                continue
            deadline = time.monotonic() + STUCK_AFTER_SECONDS
            last = int(msgs[-1].offset() or 0)
            if last >= end:
                offsets = [int(m.offset() or 0) for m in msgs]
                msgs = msgs[: bisect.bisect_left(offsets, end)]
            position = last + 1
            if msgs:
                yield Batch(msgs, columns_of(msgs))


def _data(
    msgs: list[Message], bootstrap: str, topic: str, partition: int, position: int
) -> list[Message]:
    """The batch's data records of this partition from `position` on: end-of-partition
    events dropped, errors raised, leftovers of a previous borrower of the consumer
    skipped (they can only precede this partition's records)."""
    if not msgs:
        return msgs
    if any(map(_get_error, msgs)):
        kept = []
        for m in msgs:
            err = m.error()
            if err is None:
                kept.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                error = TemporaryError if is_temporary(KafkaException(err)) else KastenBpError
                raise error(f"reading {topic}[{partition}] on {bootstrap}: {err.str()}")
        msgs = kept
    if msgs and not _ours(msgs[0], topic, partition, position):
        msgs = [m for m in msgs if _ours(m, topic, partition, position)]
    return msgs


def _ours(m: Message, topic: str, partition: int, position: int) -> bool:
    return m.topic() == topic and m.partition() == partition and (m.offset() or 0) >= position

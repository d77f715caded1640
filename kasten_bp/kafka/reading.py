"""Reading records by offset range, streaming, committed data only."""

from __future__ import annotations

import time
from collections.abc import Generator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kasten_bp.errors import KastenBpError, TemporaryError
from kasten_bp.kafka import clients
from kasten_bp.records import Record
from kasten_bp.transience import is_temporary

# Aborted records are not records: MM2 mirrors with read_committed too, so both sides of a
# comparison see the same data. Reports name it.
ISOLATION_LEVEL = "read_committed"
# A read that makes no progress for this long is stuck.
STUCK_AFTER_SECONDS = 60.0
BATCH = 1000

Key = tuple[str, int]


def _bytes(data: str | bytes | None) -> bytes | None:
    # No deserializer is configured, so librdkafka hands back bytes; str only by typing.
    return data.encode() if isinstance(data, str) else data


def _to_record(msg: Message) -> Record:
    # Once per record read: positional arguments, and the header loop only when there are
    # headers (a replay and its proof spend most of their time here).
    _, ts = msg.timestamp()
    raw_headers = msg.headers()
    headers: tuple[tuple[str, bytes | None], ...] = ()
    if raw_headers:
        pairs: list = list(raw_headers)  # a list of pairs: no deserializer is configured
        headers = tuple((str(name), _bytes(value)) for name, value in pairs)
    key, value = msg.key(), msg.value()
    return Record(
        str(msg.topic()),
        msg.partition() or 0,
        msg.offset() or 0,
        ts,
        key.encode() if isinstance(key, str) else key,
        value.encode() if isinstance(value, str) else value,
        headers,
    )


def stream_ranges(
    bootstrap: str, ranges: dict[Key, tuple[int, int]]
) -> Generator[Record, None, None]:
    """Yield data records with start <= offset < end of many partitions with one assignment
    (one round of fetches for all of them), each partition in offset order.

    Control records (transaction markers) occupy offsets but are never yielded, so a
    partition is done by the consumer's position, not by the last offset seen.
    """
    pending = {key: se for key, se in ranges.items() if se[1] > se[0]}
    if not pending:
        return
    topics = {t for t, _ in pending}
    with clients.pooled_consumer(bootstrap, ISOLATION_LEVEL, topics=topics) as consumer:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
        deadline = time.monotonic() + STUCK_AFTER_SECONDS
        while pending:
            # Ask for no more than remain, or consume() waits out its timeout for the rest.
            remaining = sum(end - start for start, end in pending.values())
            msgs = consumer.consume(num_messages=max(1, min(BATCH, remaining)), timeout=0.2)
            progressed = False
            for msg in msgs:
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    continue
                key = (str(msg.topic()), int(msg.partition() or 0))
                if err is not None:
                    where = f"{key[0]}[{key[1]}] on {bootstrap}" if msg.topic() else bootstrap
                    temporary = is_temporary(KafkaException(err))
                    error = TemporaryError if temporary else KastenBpError
                    raise error(f"reading {where}: {err.str()}")
                record = _to_record(msg)
                if key not in pending or record.offset < pending[key][0]:
                    continue  # finished, or left over from a previous borrower of the consumer
                progressed = True
                end = pending[key][1]
                if record.offset < end:
                    pending[key] = (record.offset + 1, end)
                    yield record
                if record.offset >= end - 1:
                    _finish(consumer, pending, key)
            if progressed:
                deadline = time.monotonic() + STUCK_AFTER_SECONDS
                continue
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                key = (str(tp.topic), tp.partition)
                if key in pending and tp.offset >= pending[key][1]:
                    _finish(consumer, pending, key)
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{t}[{p}] at {s} of {e}" for (t, p), (s, e) in pending.items())
                raise KastenBpError(
                    f"reading from {bootstrap}: stuck, {names} "
                    f"(no progress for {STUCK_AFTER_SECONDS:.0f}s)"
                )


def _finish(consumer: Consumer, pending: dict[Key, tuple[int, int]], key: Key) -> None:
    del pending[key]
    # Stop its fetches so it cannot crowd out the others.
    consumer.pause([TopicPartition(key[0], key[1])])


def stream_range(
    bootstrap: str, topic: str, partition: int, start: int, end: int
) -> Generator[Record, None, None]:
    """Data records with start <= offset < end, in order, without holding them all."""
    return stream_ranges(bootstrap, {(topic, partition): (start, end)})


def read_ranges(bootstrap: str, ranges: dict[Key, tuple[int, int]]) -> dict[Key, list[Record]]:
    """[start, end) of many partitions."""
    out: dict[Key, list[Record]] = {key: [] for key in ranges}
    for record in stream_ranges(bootstrap, ranges):
        out[(record.topic, record.partition)].append(record)
    return out


def read_tails(
    bootstrap: str, partitions: dict[Key, tuple[int, int, int]]
) -> dict[Key, list[Record]]:
    """The last `count` data records of many partitions: key -> (log_start, end, count)."""
    out: dict[Key, list[Record]] = {}
    span = {key: count for key, (_, _, count) in partitions.items()}
    todo = {key for key, (low, end, count) in partitions.items() if count > 0 and end > low}
    out.update({key: [] for key in partitions if key not in todo})
    while todo:
        ranges = {}
        for key in todo:
            low, end, _ = partitions[key]
            ranges[key] = (max(low, end - span[key]), end)
        got = read_ranges(bootstrap, ranges)
        again = set()
        for key in todo:
            low, _, count = partitions[key]
            records = got[key]
            if len(records) >= count or ranges[key][0] == low:
                out[key] = records[-count:]
            else:
                span[key] *= 4  # control records or compaction holes: look further back
                again.add(key)
        todo = again
    return out

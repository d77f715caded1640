"""Reading records by offset range, streaming, committed data only."""

from __future__ import annotations

import time
from collections.abc import Generator

from confluent_kafka import KafkaError, Message, TopicPartition

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients
from kasten_bp.records import Record


def _bytes(data: str | bytes | None) -> bytes | None:
    # No deserializer is configured, so librdkafka hands back bytes; str only by typing.
    return data.encode() if isinstance(data, str) else data


def _to_record(msg: Message) -> Record:
    _, ts = msg.timestamp()
    raw_headers: list = list(msg.headers() or [])
    headers = tuple((str(name), _bytes(value)) for name, value in raw_headers)
    return Record(
        topic=str(msg.topic()),
        partition=int(msg.partition() or 0),
        offset=int(msg.offset() or 0),
        timestamp=ts,
        key=_bytes(msg.key()),
        value=_bytes(msg.value()),
        headers=headers,
    )


def stream_range(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    timeout: float = 60.0,
    batch: int = 1000,
) -> Generator[Record, None, None]:
    """Yield data records with start <= offset < end, in order.

    Control records (transaction markers) occupy offsets but are never yielded, so the
    stop condition is the consumer's position, not the last offset seen.
    """
    if end <= start:
        return
    with clients.pooled_consumer(bootstrap) as consumer:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        next_offset = start
        while True:
            # Ask for no more than remain, or consume() waits out its timeout for the rest.
            wanted = max(1, min(batch, end - next_offset))
            msgs = consumer.consume(num_messages=wanted, timeout=0.5)
            progressed = False
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KastenBpError(f"reading {topic}[{partition}] on {bootstrap}: {err.str()}")
                if msg.topic() != topic or msg.partition() != partition:
                    continue  # left over from a previous assignment of a pooled consumer
                progressed = True
                record = _to_record(msg)
                if record.offset >= end:
                    return
                next_offset = record.offset + 1
                yield record
                if record.offset >= end - 1:
                    return
            if progressed:
                deadline = time.monotonic() + timeout
                continue
            (pos,) = consumer.position([TopicPartition(topic, partition)])
            if pos.offset >= end:
                return
            if time.monotonic() > deadline:
                raise KastenBpError(
                    f"reading {topic}[{partition}] on {bootstrap}: stuck at offset {pos.offset}, "
                    f"expected records up to {end} (timed out after {timeout:.0f}s)"
                )


def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int) -> list[Record]:
    return list(stream_range(bootstrap, topic, partition, start, end))


def read_tail(
    bootstrap: str, topic: str, partition: int, log_start: int, end: int, count: int
) -> list[Record]:
    """The last `count` data records below `end` (looks further back past control records)."""
    if count <= 0 or end <= log_start:
        return []
    span = count
    while True:
        start = max(log_start, end - span)
        records = read_range(bootstrap, topic, partition, start, end)
        if len(records) >= count or start == log_start:
            return records[-count:]
        span *= 4


Key = tuple[str, int]


def read_ranges(
    bootstrap: str, ranges: dict[Key, tuple[int, int]], timeout: float = 60.0
) -> dict[Key, list[Record]]:
    """Read [start, end) of many partitions with one assignment: one round of fetches for
    all of them instead of one per partition."""
    out: dict[Key, list[Record]] = {key: [] for key in ranges}
    pending = {key: se for key, se in ranges.items() if se[1] > se[0]}
    if not pending:
        return out
    with clients.pooled_consumer(bootstrap) as consumer:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
        deadline = time.monotonic() + timeout
        while pending:
            msgs = consumer.consume(num_messages=1000, timeout=0.2)
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KastenBpError(f"reading from {bootstrap}: {err.str()}")
                key = (str(msg.topic()), int(msg.partition() or 0))
                if key not in pending:
                    continue
                record = _to_record(msg)
                start, end = pending[key]
                if start <= record.offset < end:
                    out[key].append(record)
                if record.offset >= end - 1:
                    del pending[key]
                    # Done: stop its fetches so it cannot crowd out the others.
                    consumer.pause([TopicPartition(key[0], key[1])])
                    deadline = time.monotonic() + timeout
            if pending and not msgs:
                # Control records occupy the last offsets: the position tells when done.
                positions = consumer.position([TopicPartition(t, p) for t, p in pending])
                for tp in positions:
                    key = (str(tp.topic), tp.partition)
                    if key in pending and tp.offset >= pending[key][1]:
                        del pending[key]
                if pending and time.monotonic() > deadline:
                    names = ", ".join(f"{t}[{p}]" for t, p in list(pending)[:3])
                    raise KastenBpError(
                        f"reading from {bootstrap}: {names} stuck (timed out after {timeout:.0f}s)"
                    )
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

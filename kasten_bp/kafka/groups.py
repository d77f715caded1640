"""Consumer groups of a cluster, read without touching them (issue 8), and MM2's checkpoints.

Reads only: groups are listed and described with the admin API, and each group's committed
offsets come from an OffsetFetch. Nothing joins a group or commits, so reading creates no
group (of kasten-bp's or anyone's) and moves no offset.

Why the OffsetFetch goes through a consumer handle that never subscribes, rather than the
admin client's ListConsumerGroupOffsets: librdkafka (2.16 still) dereferences a NULL group
handle when an admin OffsetFetch answers NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE
(librdkafka#5040): a primary's leader moving during a backup would kill the process. A
consumer handle with the group's id re-queries the coordinator and retries instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition

from kasten_bp.errors import KastenBpError, TemporaryError
from kasten_bp.kafka import admin, clients, reading
from kasten_bp.kafka.retries import kafka_retry
from kasten_bp.transience import is_temporary

Key = tuple[str, int]

# Groups described per DescribeGroups call, and OffsetFetches in flight at once.
DESCRIBE_BATCH = 100
FETCH_WORKERS = 16
TIMEOUT = 15.0


@dataclass(frozen=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    state: str  # as Kafka names it: EMPTY, STABLE, DEAD, PREPARING_REBALANCING, ...
    members: int
    offsets: list[CommittedOffset]


def _error(what: str, exc: KafkaException) -> KastenBpError:
    kind = TemporaryError if is_temporary(exc) else KastenBpError
    return kind(f"{what}: {exc.args[0] if exc.args else exc}")


@kafka_retry
def group_ids(bootstrap: str, timeout: float = TIMEOUT) -> list[str]:
    """Every consumer group the cluster knows, sorted. A broker that could not answer fails
    the listing: a partial list would silently leave groups out of a backup."""
    client = clients.admin(bootstrap)  # must outlive its future
    try:
        result = client.list_consumer_groups(request_timeout=timeout).result()
    except KafkaException as exc:
        raise _error(f"listing consumer groups on {bootstrap}", exc) from None
    if result.errors:
        raise _error(f"listing consumer groups on {bootstrap}", KafkaException(result.errors[0]))
    return sorted({str(g.group_id) for g in result.valid})


@kafka_retry
def _describe(bootstrap: str, groups: list[str], timeout: float) -> dict[str, tuple[str, int]]:
    client = clients.admin(bootstrap)
    futures = client.describe_consumer_groups(groups, request_timeout=timeout)
    out = {}
    for group, future in futures.items():
        try:
            described = future.result()
        except KafkaException as exc:
            raise _error(f"describing group {group} on {bootstrap}", exc) from None
        state = getattr(described.state, "name", str(described.state))
        out[group] = (state, len(described.members or []))
    return out


def describe(
    bootstrap: str, groups: list[str], timeout: float = TIMEOUT
) -> dict[str, tuple[str, int]]:
    """group -> (state, active members), in batches of DESCRIBE_BATCH."""
    out: dict[str, tuple[str, int]] = {}
    for i in range(0, len(groups), DESCRIBE_BATCH):
        out.update(_describe(bootstrap, groups[i : i + DESCRIBE_BATCH], timeout))
    return out


@kafka_retry
def committed(
    bootstrap: str, group: str, partitions: list[Key], timeout: float = TIMEOUT
) -> list[CommittedOffset]:
    """The group's committed offsets among `partitions` (none where it committed nothing).
    One OffsetFetch; the consumer handle never subscribes, assigns or commits."""
    if not partitions:
        return []
    consumer = clients.consumer(bootstrap, {"group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
    except KafkaException as exc:
        raise _error(f"reading group {group}'s committed offsets on {bootstrap}", exc) from None
    finally:
        consumer.close()
    failed = [tp for tp in tps if tp.error is not None]
    if failed:
        tp = failed[0]
        raise _error(
            f"reading group {group}'s committed offset of {tp.topic}[{tp.partition}] "
            f"on {bootstrap}",
            KafkaException(tp.error),
        )
    out = []
    for tp in tps:
        if tp.offset < 0:
            continue  # nothing committed there
        epoch = getattr(tp, "leader_epoch", None)
        out.append(
            CommittedOffset(
                topic=str(tp.topic),
                partition=tp.partition,
                offset=tp.offset,
                metadata=tp.metadata or "",
                leader_epoch=epoch if epoch is not None and epoch >= 0 else None,
            )
        )
    return sorted(out, key=lambda c: (c.topic, c.partition))


def consumer_groups(
    bootstrap: str,
    selects: Callable[[str], bool],
    partitions: Iterable[Key],
    workers: int = FETCH_WORKERS,
) -> list[GroupOffsets]:
    """Each selected group's state and committed offsets among `partitions`, sorted by id.
    The OffsetFetches run concurrently (each waits on the network, not on Python)."""
    names = [g for g in group_ids(bootstrap) if selects(g)]
    if not names:
        return []
    states = describe(bootstrap, names)
    keys = sorted(set(partitions))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        offsets = list(pool.map(lambda g: committed(bootstrap, g, keys), names))
    return [
        GroupOffsets(group=g, state=states[g][0], members=states[g][1], offsets=o)
        for g, o in zip(names, offsets, strict=True)
    ]


def topic_partitions(bootstrap: str) -> list[Key]:
    """Every partition of every topic of the cluster."""
    return [(t, p) for t, n in sorted(admin.topics(bootstrap).items()) for p in range(n)]


# --- MM2 checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One record of MM2's checkpoints topic: where a source group's committed offset
    (upstream) lands on the target's topic (downstream)."""

    group: str
    topic: str  # the target (mirror) topic, renamed by the replication policy
    partition: int
    upstream_offset: int
    downstream_offset: int
    metadata: str


class CheckpointFormatError(ValueError):
    """Bytes that are not an MM2 Checkpoint this kasten-bp can read."""


# MM2's Checkpoint (connect/mirror-client, org.apache.kafka.connect.mirror.Checkpoint) in
# Kafka's protocol types, big-endian: key = group STRING, topic STRING, partition INT32;
# value = version INT16, then (v0) upstreamOffset INT64, offset INT64, metadata STRING.
# STRING is an INT16 byte length, then that many UTF-8 bytes.
CHECKPOINT_VERSION = 0


def _string(data: bytes, at: int) -> tuple[str, int]:
    if at + 2 > len(data):
        raise CheckpointFormatError(f"string length at byte {at} past the end ({len(data)})")
    (length,) = struct.unpack_from(">h", data, at)
    at += 2
    if length < 0 or at + length > len(data):
        raise CheckpointFormatError(f"string of {length} bytes at byte {at} does not fit")
    try:
        return data[at : at + length].decode("utf-8"), at + length
    except UnicodeDecodeError as exc:
        raise CheckpointFormatError(f"string at byte {at} is not UTF-8: {exc}") from None


def _fixed(fmt: str, data: bytes, at: int) -> tuple[int, int]:
    size = struct.calcsize(fmt)
    if at + size > len(data):
        raise CheckpointFormatError(f"{size}-byte field at byte {at} past the end ({len(data)})")
    (value,) = struct.unpack_from(fmt, data, at)
    return int(value), at + size


def decode_checkpoint(key: bytes, value: bytes) -> Checkpoint:
    group, at = _string(key, 0)
    topic, at = _string(key, at)
    partition, at = _fixed(">i", key, at)
    version, at = _fixed(">h", value, 0)
    if version != CHECKPOINT_VERSION:
        raise CheckpointFormatError(f"checkpoint value version {version}, not {CHECKPOINT_VERSION}")
    upstream, at = _fixed(">q", value, at)
    downstream, at = _fixed(">q", value, at)
    metadata, _ = _string(value, at)
    return Checkpoint(group, topic, partition, upstream, downstream, metadata)


def checkpoints_topic(source_alias: str, separator: str = ".") -> str:
    """MM2's checkpoints topic on the target (ReplicationPolicy.checkpointsTopic)."""
    return f"{source_alias}{separator}checkpoints{separator}internal"


CheckpointKey = tuple[str, str, int]  # group, target topic, partition
# Records read first from the end of the checkpoints topic, when looking for some keys.
FIRST_WINDOW = 10_000


@dataclass(frozen=True)
class Checkpoints:
    # The newest checkpoint in the topic per key.
    latest: dict[CheckpointKey, Checkpoint]
    # Records that could not be read as checkpoints (a newer MM2 format, say): skipped.
    unreadable: int


def latest_checkpoints(
    bootstrap: str, topic: str, wanted: set[CheckpointKey] | None = None
) -> Checkpoints:
    """Per group partition, the newest checkpoint in MM2's checkpoints topic (no topic: none;
    MM2 runs no checkpoint connector).

    The topic is compacted, but its active segment is not: it can hold every checkpoint of
    days. With `wanted`, it is read backwards from its end in growing windows and the read
    stops once every wanted key has been seen; without, or when some never show, all of it.
    """
    counts = admin.topics(bootstrap)
    if topic not in counts:
        return Checkpoints({}, 0)
    marks = admin.watermarks(bootstrap, [(topic, p) for p in range(counts[topic])])
    latest: dict[CheckpointKey, Checkpoint] = {}
    unreadable = 0
    span = FIRST_WINDOW
    upper = {key: high for key, (_, high) in marks.items()}
    while True:
        ranges = {}
        for key, (low, _) in marks.items():
            if upper[key] > low:
                start = low if wanted is None else max(low, upper[key] - span)
                ranges[key] = (start, upper[key])
        if not ranges:
            break
        window: dict[CheckpointKey, Checkpoint] = {}
        for key, records in reading.read_ranges(bootstrap, ranges).items():
            upper[key] = ranges[key][0]
            for record in records:  # in offset order: a later record replaces an earlier one
                if record.key is None or record.value is None:
                    continue  # a tombstone, not a checkpoint
                try:
                    cp = decode_checkpoint(record.key, record.value)
                except CheckpointFormatError:
                    unreadable += 1
                    continue
                window[(cp.group, cp.topic, cp.partition)] = cp
        # Windows come newest first: what an earlier window found stays.
        latest = window | latest
        if wanted is not None and wanted <= latest.keys():
            break
        span *= 4
    return Checkpoints(latest, unreadable)

"""Cluster metadata: topics, partitions, watermarks, health."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from kasten_bp.errors import KastenBpError, TemporaryError, UsageError
from kasten_bp.kafka import clients
from kasten_bp.kafka.retries import kafka_retry
from kasten_bp.transience import is_temporary


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def describe_partitions(bootstrap: str, timeout: float = 10.0) -> list[PartitionState]:
    md = clients.admin(bootstrap).list_topics(timeout=timeout)
    out = []
    for topic in md.topics.values():
        if topic.error is not None:
            # A leader being elected after brokers restart is "not yet" to a health wait.
            temporary = is_temporary(KafkaException(topic.error))
            error = TemporaryError if temporary else KastenBpError
            raise error(f"topic {topic.topic} on {bootstrap}: {topic.error}")
        for p in topic.partitions.values():
            out.append(
                PartitionState(str(topic.topic), p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
            )
    return out


def broker_ids(bootstrap: str, timeout: float = 10.0) -> list[int]:
    md = clients.admin(bootstrap).list_topics(timeout=timeout)
    return sorted(md.brokers)


def topics(bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count."""
    md = clients.admin(bootstrap).list_topics(timeout=timeout)
    return {str(t.topic): len(t.partitions) for t in md.topics.values() if t.error is None}


def all_partitions_healthy(bootstrap: str, expected_brokers: int) -> bool:
    """Every broker registered, every partition led, every ISR full."""
    if len(broker_ids(bootstrap)) < expected_brokers:
        return False
    for p in describe_partitions(bootstrap):
        if p.leader < 0 or set(p.isr) != set(p.replicas):
            return False
    return True


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    replication_factor: int = -1,
    config: dict[str, str] | None = None,
) -> None:
    client = clients.admin(bootstrap)  # must outlive its futures
    futures = client.create_topics(
        [NewTopic(name, partitions, replication_factor, config=config or {})]
    )
    for topic, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() == "TOPIC_ALREADY_EXISTS":
                continue
            raise UsageError(f"creating topic {topic} on {bootstrap}: {err.str()}") from None


def delete_topics(bootstrap: str, names: list[str]) -> None:
    if not names:
        return
    client = clients.admin(bootstrap)  # must outlive its futures
    for topic, future in client.delete_topics(names).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise KastenBpError(f"deleting topic {topic}: {exc.args[0].str()}") from None


@kafka_retry
def watermarks(
    bootstrap: str, partitions: list[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (log start offset, high watermark)."""
    if not partitions:
        return {}
    with clients.pooled_consumer(bootstrap, "read_uncommitted") as consumer:
        out = {}
        for topic, partition in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            out[(topic, partition)] = (low, high)
        return out


@kafka_retry
def offsets_for_times(
    bootstrap: str, partition: tuple[str, int], timestamp_ms: int, timeout: float = 10.0
) -> int:
    """Earliest offset whose timestamp is >= timestamp_ms (-1 when none)."""
    with clients.pooled_consumer(bootstrap) as consumer:
        (tp,) = consumer.offsets_for_times(
            [TopicPartition(partition[0], partition[1], timestamp_ms)], timeout=timeout
        )
        if tp.error is not None:
            raise KastenBpError(f"offset lookup on {partition[0]}[{partition[1]}]: {tp.error}")
        return int(tp.offset)


def committed_group_offsets(
    bootstrap: str, group: str, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """A consumer group's committed offsets for the given partitions (>= 0 only).

    Read through a consumer of the group, not the AdminClient: librdkafka's
    ListConsumerGroupOffsets can crash when the coordinator is not ready yet."""
    consumer = clients.consumer(bootstrap, {"group.id": group})
    try:
        tps = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(str(tp.topic), tp.partition): tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()

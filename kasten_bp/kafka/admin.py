"""Cluster metadata: topics, partitions, watermarks, health."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import ClusterMetadata, NewTopic

from kasten_bp.errors import KastenBpError, TemporaryError, UsageError
from kasten_bp.kafka import clients
from kasten_bp.kafka.reach import names_cluster
from kasten_bp.kafka.retries import kafka_retry
from kasten_bp.transience import is_temporary


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@names_cluster
def describe_partitions(bootstrap: str, timeout: float = 10.0) -> list[PartitionState]:
    return _partitions(clients.admin(bootstrap).list_topics(timeout=timeout), bootstrap)


def _partitions(md: ClusterMetadata, bootstrap: str) -> list[PartitionState]:
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


@names_cluster
def broker_ids(bootstrap: str, timeout: float = 10.0) -> list[int]:
    md = clients.admin(bootstrap).list_topics(timeout=timeout)
    return sorted(md.brokers)


@names_cluster
def topics(bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count."""
    md = clients.admin(bootstrap).list_topics(timeout=timeout)
    return {str(t.topic): len(t.partitions) for t in md.topics.values() if t.error is None}


@names_cluster
def all_partitions_healthy(bootstrap: str, expected_brokers: int) -> bool:
    """Every broker registered, every partition led, every ISR full. One client and one
    metadata request: a readiness wait polls this several times a second, and on a secured
    cluster each new client costs every broker a TLS and SCRAM handshake."""
    md = clients.admin(bootstrap).list_topics(timeout=10.0)
    if len(md.brokers) < expected_brokers:
        return False
    for p in _partitions(md, bootstrap):
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


@names_cluster
@kafka_retry
def watermarks(
    bootstrap: str, partitions: list[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (log start offset, high watermark)."""
    if not partitions:
        return {}
    topics = {t for t, _ in partitions}
    with clients.pooled_consumer(bootstrap, "read_uncommitted", topics=topics) as consumer:
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
    return offsets_for_times_many(bootstrap, {partition: timestamp_ms}, timeout)[partition]


@kafka_retry
def offsets_for_times_many(
    bootstrap: str, stamps: dict[tuple[str, int], int], timeout: float = 10.0
) -> dict[tuple[str, int], int]:
    """offsets_for_times for many partitions in one request: key -> offset (-1: none)."""
    if not stamps:
        return {}
    with clients.pooled_consumer(bootstrap, topics={t for t, _ in stamps}) as consumer:
        found = consumer.offsets_for_times(
            [TopicPartition(t, p, ts) for (t, p), ts in stamps.items()], timeout=timeout
        )
    out = {}
    for tp in found:
        if tp.error is not None:
            raise KastenBpError(f"offset lookup on {tp.topic}[{tp.partition}]: {tp.error}")
        out[(str(tp.topic), tp.partition)] = int(tp.offset)
    return out


def create_acls(
    bootstrap: str, acls: list[tuple[str, str, str, str]], extra: dict | None = None
) -> None:
    """Allow ACLs, each (principal, resource type, literal resource name, operation), e.g.
    ("User:mm2", "TOPIC", "*", "READ"); creating an existing binding is a no-op."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if not acls:
        return
    bindings = [
        AclBinding(
            # librdkafka names the cluster resource BROKER.
            ResourceType["BROKER" if resource_type == "CLUSTER" else resource_type],
            name,
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation[operation],
            AclPermissionType.ALLOW,
        )
        for principal, resource_type, name, operation in acls
    ]
    client = clients.admin(bootstrap, extra)  # must outlive its futures
    for binding, future in client.create_acls(bindings, request_timeout=15).items():
        try:
            future.result()
        except KafkaException as exc:
            error = TemporaryError if is_temporary(exc) else KastenBpError
            raise error(f"creating ACL {binding} on {bootstrap}: {exc.args[0].str()}") from None


def delete_acls(bootstrap: str, acls: list[tuple[str, str, str, str]]) -> int:
    """Delete allow ACLs given as in create_acls (literal patterns, any host); returns how
    many bindings the cluster deleted."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    if not acls:
        return 0
    filters = [
        AclBindingFilter(
            ResourceType["BROKER" if resource_type == "CLUSTER" else resource_type],
            name,
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation[operation],
            AclPermissionType.ALLOW,
        )
        for principal, resource_type, name, operation in acls
    ]
    client = clients.admin(bootstrap)  # must outlive its futures
    deleted = 0
    for binding_filter, future in client.delete_acls(filters, request_timeout=15).items():
        try:
            deleted += len(future.result())
        except KafkaException as exc:
            error = TemporaryError if is_temporary(exc) else KastenBpError
            raise error(
                f"deleting ACL {binding_filter} on {bootstrap}: {exc.args[0].str()}"
            ) from None
    return deleted


def end_offsets(
    bootstrap: str, partitions: list[tuple[str, int]], timeout: float = 15.0
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> end offset, through the admin API (ListOffsets): unlike
    `watermarks`, no consumer, so no group coordinator is looked up."""
    from confluent_kafka.admin import OffsetSpec

    if not partitions:
        return {}
    client = clients.admin(bootstrap)  # must outlive its futures
    wanted = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
    out = {}
    for tp, future in client.list_offsets(wanted, request_timeout=timeout).items():
        try:
            out[(str(tp.topic), tp.partition)] = int(future.result().offset)
        except KafkaException as exc:
            raise KastenBpError(
                f"end offset of {tp.topic}[{tp.partition}] on {bootstrap}: {exc.args[0].str()}"
            ) from None
    return out

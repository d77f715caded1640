"""Setting a consumer group's offsets on a restored cluster (admin API; never by joining
the group). Reading groups is kasten_bp.kafka.groups."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients

Key = tuple[str, int]


def alter(bootstrap: str, group: str, offsets: dict[Key, int], timeout: float = 15.0) -> None:
    """Commit these offsets for the group (the broker refuses while it has active members)."""
    if not offsets:
        return
    admin = clients.admin(bootstrap)  # must outlive its futures
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
    )
    futures = admin.alter_consumer_group_offsets([request], request_timeout=timeout)
    for future in futures.values():
        try:
            result = future.result()
        except KafkaException as exc:
            raise KastenBpError(f"setting group {group}'s offsets on {bootstrap}: {exc}") from None
        failed = [tp for tp in result.topic_partitions if tp.error is not None]
        if failed:
            tp = failed[0]
            raise KastenBpError(
                f"setting group {group}'s offset of {tp.topic}[{tp.partition}] on {bootstrap}: "
                f"{tp.error}"
            )

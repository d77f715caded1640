"""Kafka operations only tests need: deleting topics, reading a group's committed offsets,
producing in transactions. Built on the product's clients, so a lab's security applies."""

from __future__ import annotations

from collections.abc import Collection

from confluent_kafka import KafkaException, TopicPartition

from kasten_bp.kafka import clients
from kasten_bp.records import Record


def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics; one already gone is fine."""
    if not names:
        return
    client = clients.admin(bootstrap)  # must outlive its futures
    for topic, future in client.delete_topics(names).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise AssertionError(f"deleting topic {topic}: {exc.args[0].str()}") from None


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


def produce_transactional(
    bootstrap: str,
    batches: list[list[Record]],
    transactional_id: str,
    abort: Collection[int] = (),
) -> int:
    """Produce each batch in its own transaction; batches whose index is in `abort` are
    aborted. Returns how many records were committed."""
    producer = clients.producer(bootstrap, {"transactional.id": transactional_id})
    producer.init_transactions(30)
    committed = 0
    for i, batch in enumerate(batches):
        producer.begin_transaction()
        for r in batch:
            producer.produce(
                r.topic,
                key=r.key,
                value=r.value,
                partition=max(r.partition, 0),
                headers=list(r.headers) or None,
                timestamp=r.timestamp or 0,
            )
        if i in abort:
            # Delivered first, so the aborted records hold their offsets and the abort's
            # EndTxn cannot reach the coordinator before the partitions are registered in
            # the transaction (librdkafka#4849: a fatal INVALID_TXN_STATE; seen in a run).
            producer.flush(30)
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
            committed += len(batch)
    return committed


def delete_records(bootstrap: str, before: dict[tuple[str, int], int]) -> None:
    """Advance each partition's log start offset to `before[key]` (what retention does)."""
    client = clients.admin(bootstrap)  # must outlive its futures
    tps = [TopicPartition(t, p, o) for (t, p), o in before.items()]
    for tp, future in client.delete_records(tps).items():
        low = future.result(30).low_watermark
        assert low == before[(str(tp.topic), tp.partition)], (tp, low)

"""A real consumer group member that commits as it reads: the lab's stand-in for an
application (`kasten-bp lab consume`). kasten-bp itself never runs one against a primary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients

# Commit after this many records (synchronously), and once more at the end.
COMMIT_EVERY = 10


@dataclass
class Consumed:
    group: str
    topic: str
    records: int = 0
    # partition -> the offset committed (the next record the group reads there).
    committed: dict[int, int] = field(default_factory=dict)
    # Every assigned partition reported its end (only looked for without a record limit).
    reached_end: bool = False


def consume(
    bootstrap: str, group: str, topic: str, records: int | None, timeout: float
) -> Consumed:
    """Join `group`, read `topic` from the group's committed offsets (the earliest record
    without any) and commit: after every COMMIT_EVERY records and at the end. Stops after
    `records` records or, without a limit, at the end of every assigned partition; gives up
    after `timeout` seconds (an error when a limit was set and not reached)."""
    consumer = clients.consumer(
        bootstrap,
        {
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        },
    )
    out = Consumed(group, topic)
    pending: dict[int, tuple[int, int | None]] = {}  # partition -> (offset, leader epoch)
    at_end: set[int] = set()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while records is None or out.records < records:
            if time.monotonic() > deadline:
                break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if _eof(msg):
                at_end.add(int(msg.partition() or 0))
                assigned = {tp.partition for tp in consumer.assignment()}
                if records is None and assigned and assigned <= at_end:
                    out.reached_end = True
                    break
                continue
            err = msg.error()
            if err is not None:
                raise KastenBpError(f"group {group} reading {topic} on {bootstrap}: {err.str()}")
            partition = int(msg.partition() or 0)
            at_end.discard(partition)
            # Committed with the record's leader epoch, as a consumer's own commits are.
            pending[partition] = (int(msg.offset() or 0) + 1, msg.leader_epoch())
            out.records += 1
            if out.records % COMMIT_EVERY == 0:
                _commit(consumer, out, topic, pending)
        _commit(consumer, out, topic, pending)
    finally:
        consumer.close()  # leaves the group: it is EMPTY afterwards, its offsets kept
    if records is not None and out.records < records:
        raise KastenBpError(
            f"group {group} read {out.records} of {records} records of {topic} on {bootstrap} "
            f"in {timeout:.0f}s (committed {out.committed})"
        )
    return out


def _eof(msg: Message) -> bool:
    err = msg.error()
    return err is not None and err.code() == KafkaError._PARTITION_EOF


def _commit(
    consumer: Consumer, out: Consumed, topic: str, pending: dict[int, tuple[int, int | None]]
) -> None:
    if not pending:
        return
    offsets = [
        TopicPartition(topic, p, o, leader_epoch=epoch) for p, (o, epoch) in sorted(pending.items())
    ]
    try:
        done = consumer.commit(offsets=offsets, asynchronous=False) or []
    except KafkaException as exc:
        raise KastenBpError(f"group {out.group} committing {topic}: {exc}") from None
    failed = [tp for tp in done if tp.error is not None]
    if failed:
        tp = failed[0]
        raise KastenBpError(f"group {out.group} committing {tp.topic}[{tp.partition}]: {tp.error}")
    out.committed.update({p: o for p, (o, _) in pending.items()})
    pending.clear()

"""Producing records (lab load, tests, operator scripts)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, Message

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients
from kasten_bp.records import Record


class _DeliveryTracker:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.delivered = 0

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
        else:
            self.delivered += 1


def produce(bootstrap: str, records: Iterable[Record], extra: dict | None = None) -> int:
    """Produce records (topic, partition, key, value, headers, timestamp kept); returns count.

    A partition < 0 lets the partitioner choose; timestamp 0 lets the producer stamp it.
    """
    producer = clients.producer(bootstrap, extra)
    tracker = _DeliveryTracker()
    for r in records:
        kwargs: dict = {"key": r.key, "value": r.value, "on_delivery": tracker}
        if r.partition >= 0:
            kwargs["partition"] = r.partition
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.timestamp > 0:
            kwargs["timestamp"] = r.timestamp
        while True:
            try:
                producer.produce(r.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise KastenBpError(f"{remaining} records to {bootstrap} were not delivered within 60s")
    if tracker.errors:
        raise KastenBpError(f"delivery failed: {tracker.errors[0]} ({len(tracker.errors)} errors)")
    return tracker.delivered

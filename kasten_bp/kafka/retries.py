"""Retrying Kafka calls that failed for a retriable reason (leader moved, broker restarting)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
}


def _retriable(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    err = exc.args[0]
    return isinstance(err, KafkaError) and (err.retriable() or err.code() in _TRANSIENT)


kafka_retry = retry(
    retry=retry_if_exception(_retriable),
    wait=wait_exponential_jitter(multiplier=0.1, max=2),
    stop=stop_after_delay(30),
    reraise=True,
)

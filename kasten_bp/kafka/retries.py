"""Retrying Kafka calls that failed for a temporary reason (leader moved, broker restarting)."""

from __future__ import annotations

from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from kasten_bp.transience import is_temporary

kafka_retry = retry(
    retry=retry_if_exception(is_temporary),
    wait=wait_exponential_jitter(multiplier=0.1, max=2),
    stop=stop_after_delay(30),
    reraise=True,
)

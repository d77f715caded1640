"""The replay's producers: shared across target topics whose settings allow it, and never
more than `max_producers` of them at once.

What makes two target topics need different producers is their `max.message.bytes`: a
producer's batches must fit the smallest limit of the topics it writes (librdkafka does
not split a batch the broker refuses), and its requests must carry the largest record the
topic accepts. Topics with the same limit share one producer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kasten_bp.kafka import clients

T = TypeVar("T")
Settings = tuple[tuple[str, int], ...]

# librdkafka's defaults for batch.size and message.max.bytes.
DEFAULT_BATCH_BYTES = 1_000_000
DEFAULT_REQUEST_BYTES = 1_000_000
# A produce request carries a batch plus its own framing.
REQUEST_MARGIN = 64 * 1024
# Records queued in a producer, at most (librdkafka's default is 1 GiB): memory stays flat
# whatever the data size when the target is slower than the source; raised for topics
# whose records may be larger, so one always fits.
QUEUE_KIB = 32 * 1024


def settings_for(max_message_bytes: int | None) -> Settings:
    """The producer settings a target topic with this `max.message.bytes` needs (None:
    unknown, librdkafka's default batch and request sizes)."""
    batch, request = DEFAULT_BATCH_BYTES, DEFAULT_REQUEST_BYTES
    if max_message_bytes is not None:
        batch = min(DEFAULT_BATCH_BYTES, max_message_bytes)
        request = max(DEFAULT_REQUEST_BYTES, max_message_bytes + REQUEST_MARGIN)
    queue = max(QUEUE_KIB, 2 * request // 1024)
    return (
        ("batch.size", batch),
        ("message.max.bytes", request),
        ("queue.buffering.max.kbytes", queue),
    )


def waves(
    items: Iterable[T], key: Callable[[T], Settings], parallelism: int, max_producers: int
) -> list[list[T]]:
    """Items in groups of at most `parallelism`, each needing at most `max_producers`
    distinct settings. Items needing the same settings are kept together, so a producer
    serves every one of them before it is closed."""
    ordered = sorted(items, key=key)  # stable: the report's order within one settings
    out: list[list[T]] = []
    current: list[T] = []
    keys: set[Settings] = set()
    for item in ordered:
        k = key(item)
        if current and (
            len(current) >= parallelism or (k not in keys and len(keys) >= max_producers)
        ):
            out.append(current)
            current, keys = [], set()
        current.append(item)
        keys.add(k)
    if current:
        out.append(current)
    return out


class Producers:
    """Idempotent acks=all producers of one target, one per settings, created on demand."""

    def __init__(self, bootstrap: str, base: dict[str, Any], max_producers: int) -> None:
        self.bootstrap = bootstrap
        self.base = base
        self.max_producers = max_producers
        self.live: dict[Settings, Any] = {}
        self.created = 0
        self.peak = 0

    def get(self, settings: Settings) -> Any:
        producer = self.live.get(settings)
        if producer is None:
            if len(self.live) >= self.max_producers:
                raise RuntimeError(
                    f"more than max_producers={self.max_producers} producers asked for"
                )
            producer = clients.producer(self.bootstrap, {**self.base, **dict(settings)})
            self.live[settings] = producer
            self.created += 1
            self.peak = max(self.peak, len(self.live))
        return producer

    def keep_only(self, wanted: set[Settings]) -> None:
        """Close the producers not wanted (each flushed by the wave that used it)."""
        for settings in [s for s in self.live if s not in wanted]:
            self.live.pop(settings).flush(0)  # dropping the last reference closes it

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports of every producer (waiting at most `timeout` in all)."""
        share = timeout / max(1, len(self.live))
        for producer in self.live.values():
            producer.poll(share)

    def flush(self, timeout: float) -> int:
        """Wait for what is in flight; the number of records still not acknowledged."""
        return sum(int(p.flush(timeout)) for p in self.live.values())

    def close(self) -> None:
        self.keep_only(set())

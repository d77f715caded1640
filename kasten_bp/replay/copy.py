"""The copy loop: source records into the target, one idempotent acks=all producer, the
report advanced only by what the target acknowledged.

Partitions go in waves of `parallelism`: one source assignment per wave (fetches batched
across its partitions). Single-threaded on purpose: librdkafka's own threads do the I/O,
and a signal only has to set a flag the loop looks at between records.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients
from kasten_bp.records import Header, Record
from kasten_bp.replay.plan import PartitionPlan
from kasten_bp.replay.progress import ProgressSink, for_stderr
from kasten_bp.replay.report import PartitionProgress, ReplayReport
from kasten_bp.replay.source import Source
from kasten_bp.replay.spec import ReplaySpec

# How often the report is rewritten while records flow, and progress shown.
SAVE_EVERY_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 0.2
FLUSH_TIMEOUT = 120.0
# Keep key, value, headers, timestamp and partition; let the producer batch generously.
PRODUCER_SETTINGS = {"linger.ms": 20, "compression.type": "lz4", "enable.idempotence": True}


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event instead of raising: the loop stops between records,
    waits for what is in flight, and writes the report."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def replayed_headers(record: Record, spec: ReplaySpec) -> tuple[Header, ...]:
    """The source's headers, then the original-offset (topic, partition) headers asked for."""
    extra: list[Header] = []
    if spec.original_offset_header:
        extra.append((spec.original_offset_header, str(record.offset).encode()))
    if spec.original_topic_header:
        extra.append((spec.original_topic_header, record.topic.encode()))
    if spec.original_partition_header:
        extra.append((spec.original_partition_header, str(record.partition).encode()))
    return record.headers + tuple(extra)


def selected(plan: PartitionPlan, spec: ReplaySpec, record: Record) -> bool:
    return plan.selects(record.offset) and spec.in_window(record.timestamp)


def remaining_plan(progress: PartitionProgress) -> PartitionPlan:
    """What is left of a partition: after the last acknowledged source offset."""
    plan = progress.plan()
    if progress.last_source_offset is not None:
        plan = plan.from_offset(progress.last_source_offset + 1)
    return plan


class RateLimit:
    """Records/s and bytes/s ceilings (0: none), measured from the start of the copy."""

    def __init__(self, records_per_second: float, bytes_per_second: float) -> None:
        self.records_per_second = records_per_second
        self.bytes_per_second = bytes_per_second
        self.started = time.monotonic()
        self.records = 0
        self.bytes = 0

    def pause_for(self, size: int) -> float:
        """Seconds to wait after counting one record of `size` bytes."""
        self.records += 1
        self.bytes += size
        elapsed = time.monotonic() - self.started
        due = 0.0
        if self.records_per_second:
            due = max(due, self.records / self.records_per_second - elapsed)
        if self.bytes_per_second:
            due = max(due, self.bytes / self.bytes_per_second - elapsed)
        return due


class Copier:
    def __init__(
        self,
        source: Source,
        target_bootstrap: str,
        spec: ReplaySpec,
        report: ReplayReport,
        save: Callable[[ReplayReport], None],
        stop: threading.Event,
    ) -> None:
        self.source = source
        self.spec = spec
        self.report = report
        self.save = save
        self.stop = stop
        self.producer = clients.producer(target_bootstrap, PRODUCER_SETTINGS)
        self.limit = RateLimit(spec.max_records_per_second, spec.max_bytes_per_second)
        self.errors: list[str] = []
        self.sent = 0
        self.total = sum(remaining_plan(p).span for p in report.partitions if not p.done)
        self._saved_at = self._shown_at = time.monotonic()
        self.progress: ProgressSink | None = None
        # Per target partition, the source offsets in flight, oldest first: an idempotent
        # producer delivers a partition's records in order, so a delivery is the oldest.
        self._inflight: dict[tuple[str, int], deque[int]] = {}
        self._progress: dict[tuple[str, int], PartitionProgress] = {}

    def run(self) -> bool:
        """Copy what is left; True when every partition is done, False when stopped."""
        todo = [p for p in self.report.partitions if not p.done]
        size = self.spec.parallelism
        self.progress = for_stderr(self.report.replay_id, self.total)
        try:
            for i in range(0, len(todo), size):
                wave = todo[i : i + size]
                self._wave(wave)
                if self.stop.is_set():
                    return False
                for progress in wave:
                    progress.done = True
                self.save(self.report)
        finally:
            self.progress.close()
        return True

    def _wave(self, wave: list[PartitionProgress]) -> None:
        plans = {p.key: remaining_plan(p) for p in wave}
        ranges = {key: (plan.start, plan.end) for key, plan in plans.items() if plan.span > 0}
        for p in wave:
            self._inflight[(p.target_topic, p.partition)] = deque()
            self._progress[(p.target_topic, p.partition)] = p
        targets = {p.key: p.target_topic for p in wave}
        try:
            for record in self.source.stream(ranges):
                if self.stop.is_set():
                    break
                key = (record.topic, record.partition)
                if not selected(plans[key], self.spec, record):
                    continue
                self._produce(targets[key], record)
                self._tick(len(record.value or b"") + len(record.key or b""))
                if self.errors:
                    break
        finally:
            # Whatever stopped the loop: what is in flight is either acknowledged (and
            # recorded) or failed, before the report is written.
            left = self.producer.flush(FLUSH_TIMEOUT)
            self.save(self.report)
        if left:
            raise KastenBpError(
                f"{left} records to the target were not acknowledged within {FLUSH_TIMEOUT:.0f}s"
            )
        if self.errors:
            raise KastenBpError(
                f"producing to the target failed: {self.errors[0]} ({len(self.errors)} errors)"
            )

    def _produce(self, topic: str, record: Record) -> None:
        kwargs: dict[str, Any] = {
            "key": record.key,
            "value": record.value,
            "partition": record.partition,
            "on_delivery": self._delivered,
        }
        headers = replayed_headers(record, self.spec)
        if headers:
            kwargs["headers"] = list(headers)
        if record.timestamp > 0:
            kwargs["timestamp"] = record.timestamp
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                break
            except BufferError:
                self.producer.poll(0.1)  # the queue is full: let deliveries drain it
        self._inflight[(topic, record.partition)].append(record.offset)
        self.sent += 1

    def _delivered(self, err: Any, msg: Any) -> None:
        key = (str(msg.topic()), int(msg.partition()))
        source_offset = self._inflight[key].popleft()
        if err is not None:
            self.errors.append(f"{key[0]}[{key[1]}] at source offset {source_offset}: {err.str()}")
            return
        if self.errors:
            return  # after a failure, nothing more counts as acknowledged: no gaps
        self._progress[key].acked(source_offset, int(msg.offset()))

    def _tick(self, size: int) -> None:
        self.producer.poll(0)
        pause = self.limit.pause_for(size)
        while pause > 0 and not self.stop.is_set():
            step = min(pause, 0.1)
            self.producer.poll(step)
            pause -= step
        now = time.monotonic()
        if now - self._saved_at >= SAVE_EVERY_SECONDS:
            self.save(self.report)
            self._saved_at = now
        if self.progress is not None and now - self._shown_at >= PROGRESS_EVERY_SECONDS:
            self.progress.update(self.sent, self.total)
            self._shown_at = now

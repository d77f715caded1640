"""The copy loop: source records into the target through idempotent acks=all producers
(one per target settings, see producers.py), the report advanced only by what the target
acknowledged.

Partitions go in waves of at most `parallelism` partitions and `max_producers` producers:
one source assignment per wave (fetches batched across its partitions). Single-threaded on
purpose: librdkafka's own threads do the I/O, and a signal only has to set a flag the loop
looks at between records.
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
from kasten_bp.records import Header, Record
from kasten_bp.replay.plan import PartitionPlan
from kasten_bp.replay.producers import Producers, Settings, settings_for, waves
from kasten_bp.replay.progress import ProgressSink, for_stderr
from kasten_bp.replay.report import PartitionProgress, ReplayReport
from kasten_bp.replay.source import Source
from kasten_bp.replay.spec import ReplaySpec

# How often the report is rewritten while records flow, and progress shown.
SAVE_EVERY_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 0.2
FLUSH_TIMEOUT = 120.0
# Keep key, value, headers, timestamp and partition; let the producer batch generously.
# (Batch, request and queue sizes depend on the target topic: producers.settings_for.)
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
    """Records/s and bytes/s ceilings (0: none). Each record that passes moves the earliest
    time the next may pass on by its cost (1/records_per_second, size/bytes_per_second,
    whichever is longer); time spent idle is not saved up, so a stalled source is never
    followed by a burst. In any window of W seconds at most W * records_per_second + 1
    records pass, and W * bytes_per_second + one record's bytes."""

    def __init__(
        self,
        records_per_second: float,
        bytes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.records_per_second = records_per_second
        self.bytes_per_second = bytes_per_second
        self.clock = clock
        self._next = clock()

    def pause_for(self, size: int) -> float:
        """Seconds to wait after one record of `size` bytes passed, before the next."""
        cost = 0.0
        if self.records_per_second:
            cost = 1.0 / self.records_per_second
        if self.bytes_per_second:
            cost = max(cost, size / self.bytes_per_second)
        if not cost:
            return 0.0
        now = self.clock()
        self._next = max(self._next, now) + cost
        return max(0.0, self._next - now)


class Acks:
    """A partition's acknowledgements not yet in its report, as runs [source_from,
    source_until, target_from]: a delivery report arrives per record, and plain lists are
    much cheaper to update than the report's model."""

    __slots__ = ("progress", "runs")

    def __init__(self, progress: PartitionProgress) -> None:
        self.progress = progress
        self.runs: list[list[int]] = []

    def add(self, source_offset: int, target_offset: int) -> None:
        runs = self.runs
        if runs:
            last = runs[-1]
            if last[1] == source_offset and last[2] + (last[1] - last[0]) == target_offset:
                last[1] = source_offset + 1
                return
        runs.append([source_offset, source_offset + 1, target_offset])

    def fold(self) -> None:
        """Into the report's progress."""
        for source_from, source_until, target_from in self.runs:
            self.progress.acked_run(source_from, source_until, target_from)
        self.runs = []


# Delivery reports are served every this many records (and whenever the queue is full).
POLL_EVERY = 64


class Copier:
    def __init__(
        self,
        source: Source,
        target_bootstrap: str,
        spec: ReplaySpec,
        report: ReplayReport,
        save: Callable[[ReplayReport], None],
        stop: threading.Event,
        limits: dict[str, int | None] | None = None,
    ) -> None:
        self.source = source
        self.spec = spec
        self.report = report
        self.save = save
        self.stop = stop
        # Target topic -> its max.message.bytes (absent: unknown, librdkafka's defaults).
        self.limits = limits or {}
        self.producers = Producers(target_bootstrap, PRODUCER_SETTINGS, spec.max_producers)
        self._producer_of: dict[str, Any] = {}
        self.limit = RateLimit(spec.max_records_per_second, spec.max_bytes_per_second)
        self.limited = bool(spec.max_records_per_second or spec.max_bytes_per_second)
        self.errors: list[str] = []
        self.sent = 0
        self.total = sum(remaining_plan(p).span for p in report.partitions if not p.done)
        self._saved_at = self._shown_at = time.monotonic()
        self.progress: ProgressSink | None = None
        # Per target partition, the source offsets in flight, oldest first: an idempotent
        # producer delivers a partition's records in order, so a delivery is the oldest.
        self._inflight: dict[tuple[str, int], deque[int]] = {}
        self._acks: dict[tuple[str, int], Acks] = {}
        self._counted = 0  # producers created already added to the report

    def run(self) -> bool:
        """Copy what is left; True when every partition is done, False when stopped."""
        todo = [p for p in self.report.partitions if not p.done]
        groups = waves(todo, self._settings, self.spec.parallelism, self.spec.max_producers)
        self.progress = for_stderr(self.report.replay_id, self.total)
        try:
            for wave in groups:
                self._open(wave)
                self._wave(wave)
                if self.stop.is_set():
                    return False
                for progress in wave:
                    progress.done = True
                self._save()
        finally:
            self.producers.close()
            self.progress.close()
        return True

    def _save(self) -> None:
        for acks in self._acks.values():
            acks.fold()
        self.save(self.report)

    def _settings(self, progress: PartitionProgress) -> Settings:
        return settings_for(self.limits.get(progress.target_topic))

    def _open(self, wave: list[PartitionProgress]) -> None:
        """The wave's producers: those of earlier waves it needs are kept, others closed."""
        wanted = {self._settings(p) for p in wave}
        self.producers.keep_only(wanted)
        self._producer_of = {p.target_topic: self.producers.get(self._settings(p)) for p in wave}
        self.report.producers_created += self.producers.created - self._counted
        self._counted = self.producers.created
        self.report.producers_peak = max(self.report.producers_peak, self.producers.peak)

    def _wave(self, wave: list[PartitionProgress]) -> None:
        plans = {p.key: remaining_plan(p) for p in wave}
        ranges = {key: (plan.start, plan.end) for key, plan in plans.items() if plan.span > 0}
        for p in wave:
            self._inflight[(p.target_topic, p.partition)] = deque()
            self._acks[(p.target_topic, p.partition)] = Acks(p)
        targets = {p.key: p.target_topic for p in wave}
        # The stream yields [start, end) only: one range and no time window select it all.
        windowed = self.spec.from_ms is not None or self.spec.until_ms is not None
        check = {key: windowed or len(plan.ranges) > 1 for key, plan in plans.items()}
        stop, errors = self.stop, self.errors
        try:
            for record in self.source.stream(ranges):
                if stop.is_set():
                    break
                key = (record.topic, record.partition)
                if check[key] and not selected(plans[key], self.spec, record):
                    continue
                self._produce(targets[key], record)
                self._tick(len(record.value or b"") + len(record.key or b""))
                if errors:
                    break
        finally:
            # Whatever stopped the loop: what is in flight is either acknowledged (and
            # recorded) or failed, before the report is written.
            left = self.producers.flush(FLUSH_TIMEOUT)
            self._save()
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
        producer = self._producer_of[topic]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)  # the queue is full: let deliveries drain it
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
        self._acks[key].add(source_offset, int(msg.offset()))

    def _tick(self, size: int) -> None:
        if self.sent % POLL_EVERY == 0:
            self.producers.poll(0)
        pause = self.limit.pause_for(size) if self.limited else 0.0
        while pause > 0 and not self.stop.is_set():
            step = min(pause, 0.1)
            self.producers.poll(step)  # serves deliveries while it waits
            pause -= step
        now = time.monotonic()
        if now - self._saved_at >= SAVE_EVERY_SECONDS:
            self._save()
            self._saved_at = now
        if self.progress is not None and now - self._shown_at >= PROGRESS_EVERY_SECONDS:
            self.progress.update(self.sent, self.total)
            self._shown_at = now

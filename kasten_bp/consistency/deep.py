"""Deep verify's reading: every restored record of a partition against the primary's run
of records, partitions compared in this process or in parallel by worker processes.

Turning fetched records into Python objects (`consume()`) holds the GIL, so one process
compares at most one CPU's worth. With `workers` > 1, partitions are handed to that many
processes (spawned, never forked: a fork would copy librdkafka's client threads
half-alive), each reading both clusters of its partitions with its own consumers and
judging them with `deep_walk`. A process's memory is bounded by its consumers' prefetch
queues and one batch per side, whatever the partition's size.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import multiprocessing
import os
import signal
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from kasten_bp.config import ClientSecurity
from kasten_bp.consistency.core.deep_walk import deep_walk
from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import admin, batches, clients

# Beyond this, more processes only add consumers competing for the same cores and brokers.
MAX_WORKERS = 8
_M_ARENA_MAX = -8  # glibc's mallopt parameter


@dataclass(frozen=True)
class DeepTask:
    """One restored partition to compare: its offsets and where its run ends on the
    primary (the restored head's primary offset)."""

    topic: str
    partition: int
    primary_topic: str
    compacted: bool
    low: int
    high: int
    head_primary_offset: int | None


@dataclass(frozen=True)
class DeepOutcome:
    compared: int = 0
    skipped_older: int = 0
    # Why the partition is divergent; None when every restored record was found in order.
    divergence: str | None = None


def default_workers() -> int:
    """One process per two CPUs: a comparing process keeps one CPU busy with Python and
    most of another with librdkafka's fetch threads and the brokers it reads from. On 2
    CPUs next to the brokers, 2 processes were no faster than 1 (`make bench`: 4.76 s
    against 4.69 s for 1.2 M records, median of 3)."""
    return max(1, min((os.cpu_count() or 1) // 2, MAX_WORKERS))


def compare_all(
    primary: str, restored: str, tasks: list[DeepTask], workers: int | None = None
) -> list[DeepOutcome]:
    """Outcomes in the order of `tasks`. The first error of any comparison is raised here
    and the others are stopped; so are they on an interrupt."""
    count = min(workers or default_workers(), len(tasks))
    _cap_malloc_arenas()
    if count <= 1:
        return [compare_partition(primary, restored, task) for task in tasks]
    before = set(multiprocessing.active_children())
    securities = [(b, clients.security_for(b)) for b in (primary, restored)]
    executor = ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(securities,),
    )
    try:
        futures = [executor.submit(_compare_in_worker, primary, restored, t) for t in tasks]
        outcomes = [future.result() for future in futures]
    except BaseException as exc:
        executor.shutdown(wait=False, cancel_futures=True)
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()  # a comparison must not outlive the verify
        if isinstance(exc, BrokenProcessPool):
            raise KastenBpError(
                f"deep verify: a worker process ended unexpectedly ({exc}); "
                "`--workers 1` compares in this process"
            ) from None
        raise
    executor.shutdown()  # reaped, so their CPU time counts as this process's children's
    return outcomes


def _start_worker(securities: Iterable[tuple[str, ClientSecurity]]) -> None:
    # An interrupt is the parent's to handle: it terminates the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _cap_malloc_arenas()
    for bootstrap, security in securities:
        clients.use_security(bootstrap, security)


def _compare_in_worker(primary: str, restored: str, task: DeepTask) -> DeepOutcome:
    try:
        return compare_partition(primary, restored, task)
    except KastenBpError:
        raise
    except Exception as exc:  # noqa: BLE001 - sent to the parent, which may not unpickle it
        raise KastenBpError(f"deep verify of {task.topic}[{task.partition}]: {exc}") from None


def _cap_malloc_arenas() -> None:
    """glibc gives threads their own malloc arenas (up to 8 per core) and librdkafka runs
    several threads per consumer: memory freed in each arena stays resident. Two arenas for
    the threads started from now on (the deep consumers') cut a deep verify process's peak
    RSS by about 100 MiB at 1 M records (measured: 306 -> 194 MiB)."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return  # not glibc
    if libc.startswith("glibc"):
        with contextlib.suppress(OSError, AttributeError):  # only memory is at stake
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Every fetched record is a `Message`, which the cyclic garbage collector tracks: with
    it on, collections triggered by those allocations took a third of deep verify's CPU
    (py-spy). The walk makes no reference cycles; reference counting frees its batches."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compare_partition(primary: str, restored: str, task: DeepTask) -> DeepOutcome:
    """Stream every restored record and walk the primary alongside it, a batch at a time
    (both consumers prefetch concurrently in librdkafka's threads)."""
    with _cyclic_gc_paused():
        return _compare(primary, restored, task)


def _compare(primary: str, restored: str, task: DeepTask) -> DeepOutcome:
    restored_batches = batches.content_batches(
        restored, task.topic, task.partition, task.low, task.high
    )
    primary_batches: Iterator[batches.Batch] = iter(())
    try:
        first = next(restored_batches, None)
        if first is None:
            return DeepOutcome()
        pkey = (task.primary_topic, task.partition)
        start = admin.offsets_for_times(primary, pkey, first.content(0)[0])
        if start < 0:
            return DeepOutcome(divergence="first restored record not on the primary")
        oldest = _primary_oldest(primary, pkey, start)
        end = (task.head_primary_offset or start) + 1
        primary_batches = batches.content_batches(
            primary, task.primary_topic, task.partition, start, end
        )
        walked = deep_walk(
            itertools.chain([first], restored_batches), primary_batches, task.compacted, oldest
        )
    finally:
        # An early verdict leaves both reads unfinished: give their consumers back now.
        restored_batches.close()
        if isinstance(primary_batches, Generator):
            primary_batches.close()
    if walked.mismatch is not None:
        return DeepOutcome(divergence=walked.mismatch)
    return DeepOutcome(compared=walked.compared, skipped_older=walked.skipped_older)


def _primary_oldest(primary: str, pkey: tuple[str, int], start: int) -> batches.Content | None:
    """The primary's oldest record when the walk would start at its log start after it
    has deleted some (log start > 0); None otherwise."""
    low = admin.watermarks(primary, [pkey])[pkey][0]
    if start != low or low == 0:
        return None
    for batch in batches.content_batches(primary, pkey[0], pkey[1], low, low + 1):
        return batch.content(0)
    return None

"""Client construction: the only place that knows confluent-kafka config keys we share."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

# librdkafka logs through Python logging instead of writing to stderr.
_LOG = logging.getLogger("kasten_bp.librdkafka")
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False


def _base(bootstrap: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 10000,
        "logger": _LOG,
    }
    conf.update(extra or {})
    return conf


def admin(bootstrap: str, extra: dict[str, Any] | None = None) -> AdminClient:
    return AdminClient(_base(bootstrap, extra))


def consumer(bootstrap: str, extra: dict[str, Any] | None = None) -> Consumer:
    conf = _base(
        bootstrap,
        {
            "group.id": "kasten-bp-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # Only committed data: MM2 mirrors with read_committed too.
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Short broker-side waits: reads hop between partitions and must not idle.
            "fetch.wait.max.ms": 10,
            "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 10485760,
        },
    )
    conf.update(extra or {})
    return Consumer(conf)


def producer(bootstrap: str, extra: dict[str, Any] | None = None) -> Producer:
    conf = _base(bootstrap, {"linger.ms": 5, "enable.idempotence": True, "acks": "all"})
    conf.update(extra or {})
    return Producer(conf)


# Consumers are costly to create (threads, connections, metadata); reading many partitions
# one after another reuses them. A consumer is checked out exclusively, so nested reads
# (a generator still open while another read starts) get their own.
_pool: dict[tuple[str, str], list[Consumer]] = {}
_pool_lock = threading.Lock()


@contextmanager
def pooled_consumer(bootstrap: str, isolation: str = "read_committed") -> Iterator[Consumer]:
    key = (bootstrap, isolation)
    with _pool_lock:
        free = _pool.get(key)
        c = free.pop() if free else None
    if c is None:
        c = consumer(bootstrap, {"isolation.level": isolation})
    try:
        yield c
    except BaseException:
        c.close()  # state unknown after an error or an abandoned read: never reuse
        raise
    assigned = c.assignment()
    if assigned:
        c.resume(assigned)  # a paused partition would stay paused for the next borrower
    c.unassign()
    with _pool_lock:
        _pool.setdefault(key, []).append(c)


@atexit.register
def _close_pool() -> None:
    with _pool_lock:
        for consumers in _pool.values():
            for c in consumers:
                c.close()
        _pool.clear()

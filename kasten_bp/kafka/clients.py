"""Client construction: the only place that knows confluent-kafka config keys we share."""

from __future__ import annotations

import logging
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

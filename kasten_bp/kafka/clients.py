"""Client construction: the only place that knows confluent-kafka config keys we share.

Security is applied here and only here: `use_security(bootstrap, security)` registers how
to reach one cluster, `use_default_security(security)` how to reach any other (restored
clusters), and `apply_config_security(config)` does both from a loaded config. Every client
built below gets the settings registered for its bootstrap; secrets (SASL password, TLS key
password) are read from their environment variable or file when the client is created and
live only in the dict handed to librdkafka: never in a model, a log line or an error.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from kasten_bp.config import ClientSecurity, Config

# librdkafka logs through Python logging instead of writing to stderr.
_LOG = logging.getLogger("kasten_bp.librdkafka")
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False

PLAINTEXT = ClientSecurity()

# Cluster (its set of host:port) -> how to reach it; plus the default for any other cluster.
_security: dict[frozenset[str], ClientSecurity] = {}
_default_security: ClientSecurity | None = None
_security_lock = threading.Lock()


def _cluster_key(bootstrap: str) -> frozenset[str]:
    """The same cluster whatever the order, spacing or host case of its bootstrap list."""
    return frozenset(part.strip().lower() for part in bootstrap.split(",") if part.strip())


def use_security(bootstrap: str, security: ClientSecurity) -> None:
    """Reach the cluster at `bootstrap` with `security` from now on (replaces any earlier)."""
    with _security_lock:
        _security[_cluster_key(bootstrap)] = security.security()


def use_default_security(security: ClientSecurity | None) -> None:
    """How to reach clusters not registered with use_security (None: plaintext)."""
    global _default_security
    with _security_lock:
        _default_security = security.security() if security is not None else None


def clear_security() -> None:
    """Forget every registration (tests)."""
    global _default_security
    with _security_lock:
        _security.clear()
        _default_security = None


def security_for(bootstrap: str) -> ClientSecurity:
    with _security_lock:
        found = _security.get(_cluster_key(bootstrap))
        return found or _default_security or PLAINTEXT


def apply_config_security(config: Config) -> None:
    """Register the primary's, the mirror's and restored clusters' security from a loaded
    config; check now (UsageError, exit 2) that every secret and file it names is readable."""
    config.primary.check("primary")
    config.mirror.check("mirror")
    if config.restored is not None:
        config.restored.check("restored")
    config.connect.check()
    for index, target in enumerate(config.targets):
        target.check(f"targets[{index}]")
    use_security(config.primary.bootstrap, config.primary)
    use_security(config.mirror.bootstrap, config.mirror)
    for target in config.targets:
        use_security(target.bootstrap, target)
    use_default_security(config.restored_security)


def librdkafka_security(security: ClientSecurity, what: str = "kafka") -> dict[str, Any]:
    """librdkafka settings for `security`, secrets read now. Never log or show the result."""
    if security.plaintext:
        return {}
    conf: dict[str, Any] = {"security.protocol": security.security_protocol.lower()}
    ssl = security.ssl
    if ssl is not None:
        if ssl.ca_file is not None:
            conf["ssl.ca.location"] = ssl.ca_file
        if ssl.cert_file is not None:
            conf["ssl.certificate.location"] = ssl.cert_file
        if ssl.key_file is not None:
            conf["ssl.key.location"] = ssl.key_file
        # From Kubernetes secrets: PEM text handed to librdkafka in memory, never a file.
        pem_settings = {"ca": "ssl.ca.pem", "cert": "ssl.certificate.pem", "key": "ssl.key.pem"}
        for name, pem in ssl.pem_from_secrets(what).items():
            conf[pem_settings[name]] = pem
        if ssl.has_key_password:
            conf["ssl.key.password"] = ssl.key_password(what)
    sasl = security.sasl
    if sasl is not None:
        conf["sasl.mechanisms"] = sasl.mechanism
        conf["sasl.username"] = sasl.username
        conf["sasl.password"] = sasl.password(f"{what} sasl")
    return conf


def _base(bootstrap: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 10000,
        # A new client's first request often goes to the bootstrap connection, which
        # librdkafka drops as soon as it learns the brokers; the request then waits for a
        # connection to a broker that librdkafka holds back for half this backoff (debug
        # log: "still suppressed for 49ms"). 100 ms by default: a first metadata request
        # took 54 ms, 15 ms with 10 ms here, on every client a command makes. The backoff
        # still doubles up to its 10 s maximum while a broker stays down.
        "reconnect.backoff.ms": 10,
        "logger": _LOG,
    }
    conf.update(librdkafka_security(security_for(bootstrap), f"kafka {bootstrap}"))
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
            # Prefetch bounded to 16 MiB per consumer (librdkafka's default is 64 MiB):
            # enough to keep reading busy, and a deep verify holding two stays small.
            "queued.max.messages.kbytes": 16384,
            # Once the queue has been full, librdkafka waits this long before fetching
            # again (default 1 s): a whole-partition read stalled a second every 16 MiB.
            "fetch.queue.backoff.ms": 5,
            "fetch.max.bytes": 16777216,
            "max.partition.fetch.bytes": 8388608,
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
# Keyed by security too: a consumer made before a registration changed is not reused.
# ReadSettings: librdkafka settings of a purpose's consumers, over those of `consumer`.
ReadSettings = tuple[tuple[str, int], ...]
PoolKey = tuple[str, str, ReadSettings, ClientSecurity]
_LEARN_TIMEOUT_SECONDS = 10.0


@dataclass(eq=False)
class _Pooled:
    consumer: Consumer
    known_topics: set[str] = field(default_factory=set)  # whose metadata it holds


_pool: dict[PoolKey, list[_Pooled]] = {}
_pool_lock = threading.Lock()


@contextmanager
def pooled_consumer(
    bootstrap: str,
    isolation: str = "read_committed",
    settings: ReadSettings = (),
    topics: Iterable[str] = (),
) -> Iterator[Consumer]:
    """A consumer of the pool, its metadata holding `topics` (the ones it will read)."""
    key = (bootstrap, isolation, settings, security_for(bootstrap))
    with _pool_lock:
        free = _pool.get(key)
        pooled = free.pop() if free else None
    if pooled is None:
        pooled = _Pooled(consumer(bootstrap, {"isolation.level": isolation, **dict(settings)}))
    try:
        _learn_topics(pooled, topics)
        yield pooled.consumer
    except GeneratorExit:
        # A read its caller stopped early (a generator closed mid-partition): the consumer
        # is as after a finished read, prefetched records at most, which librdkafka drops
        # at the next assignment (and readers skip what is not theirs).
        _give_back(key, pooled)
        raise
    except BaseException:
        pooled.consumer.close()  # state unknown after an error: never reuse
        raise
    _give_back(key, pooled)


def _give_back(key: PoolKey, pooled: _Pooled) -> None:
    c = pooled.consumer
    assigned = c.assignment()
    if assigned:
        c.resume(assigned)  # a paused partition would stay paused for the next borrower
    c.unassign()
    with _pool_lock:
        _pool.setdefault(key, []).append(pooled)


def _learn_topics(pooled: _Pooled, topics: Iterable[str]) -> None:
    """Left to itself, librdkafka learns the metadata of a topic newly assigned (or asked
    about) only after a while: about 300 ms a topic, paid by every read that starts on a
    topic the consumer has not seen. Reading many small partitions one after another paid
    it per topic (`verify --deep` of 600 partitions with 10 records each: 202 s). One
    request for every topic's metadata fills the consumer's cache at once (reading 30 such
    partitions of new topics: 300 ms a partition before, 5-14 ms after). Only a speed-up:
    if the request fails, the read goes on and librdkafka learns as before."""
    if set(topics) <= pooled.known_topics:
        return
    try:
        metadata = pooled.consumer.list_topics(timeout=_LEARN_TIMEOUT_SECONDS)
    except KafkaException:
        return
    pooled.known_topics.update(name for name, t in metadata.topics.items() if t.error is None)


_CLOSE_AT_EXIT_SECONDS = 5.0


@atexit.register
def _close_pool() -> None:
    """Close pooled consumers, but never hold up the exit: a consumer whose cluster has
    stopped can block in close() for minutes waiting for its group coordinator. They
    are closed on a daemon thread that the exit abandons after a few seconds; the
    consumers it still holds are never deallocated (which would block the same way)
    and the OS reclaims their sockets."""
    with _pool_lock:
        consumers = [p.consumer for free in _pool.values() for p in free]
        _pool.clear()
    if not consumers:
        return

    def close_all() -> None:
        while consumers:
            consumers[-1].close()
            consumers.pop()

    closer = threading.Thread(target=close_all, name="kasten-bp-close-pool", daemon=True)
    closer.start()
    closer.join(_CLOSE_AT_EXIT_SECONDS)

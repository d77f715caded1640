"""Can kasten-bp reach a cluster, and may it do there what a backup does? One line why not.

librdkafka reports a refused login or TLS handshake only through its error callback; the
call that failed just times out with "Broker transport failure". `reach` collects those
callback errors while it asks for metadata, and `cause` turns them into one line a person
can act on. `permission_problems` checks, on the primary, what the backup reads.

Read-only by construction: metadata, DescribeTopics and DescribeGroups (with KIP-430's
authorized operations). Nothing is produced, committed or created, and no group is joined.
Messages never hold a secret: they are built from our own words, the user name and
librdkafka's error text, which names no password or key.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from kasten_bp.errors import UsageError
from kasten_bp.kafka import clients
from kasten_bp.kafka.retries import kafka_retry

# Described, never created: DescribeGroups on an unknown group answers DEAD and makes nothing.
PROBE_GROUP = "kasten-bp-access-probe"
# Where group state lives; finding a group coordinator creates it on a cluster without it.
CONSUMER_OFFSETS = "__consumer_offsets"
# Errors no retry can mend: stop probing at once instead of waiting out the timeout.
_DECISIVE = ("_AUTHENTICATION", "_SSL")
_LISTED = 5  # topics named in a message before "and N more"
# What the backup does with a topic it describes -> how a message says it.
_TOPIC_OPERATIONS = {"READ": "read", "DESCRIBE_CONFIGS": "describe the configs of"}


@dataclass(frozen=True)
class ClientError:
    """One error librdkafka reported through its error callback."""

    name: str  # e.g. _AUTHENTICATION, _SSL, _TRANSPORT, _ALL_BROKERS_DOWN
    text: str


@dataclass(frozen=True)
class Reached:
    brokers: list[int]
    topics: list[str]  # the topics this user may describe


# "sasl_ssl://127.0.0.1:9093/bootstrap: " before, "(after 3ms in state X...)" after.
_BROKER_PREFIX = re.compile(r"^\w+://[^ ]+?: ")
_AFTER = re.compile(r"\s*\(after \d+ms in state .*\)\s*$")


def clean(text: str) -> str:
    """librdkafka's message without the broker prefix and the timing suffix."""
    return _AFTER.sub("", _BROKER_PREFIX.sub("", text.strip())).strip()


def _first(errors: Sequence[ClientError], predicate: str) -> ClientError | None:
    return next((e for e in errors if e.name == predicate or predicate in e.text), None)


def cause(errors: Sequence[ClientError], user: str | None, timeout: float) -> str:
    """One line saying why no broker answered, from what the error callback saw."""
    auth = _first(errors, "_AUTHENTICATION")
    if auth is not None:
        if "Unsupported SASL mechanism" in auth.text:
            return f"SASL mechanism refused: {clean(auth.text)}"
        who = f" for user {user}" if user else ""
        return f"SASL authentication failed{who} (wrong password or unknown user)"
    if _first(errors, "certificate verify failed") is not None:
        return "TLS handshake failed: certificate verify failed (is ssl.ca_file the cluster's CA?)"
    tls = _first(errors, "_SSL")
    if tls is not None:
        return f"TLS handshake failed: {clean(tls.text)}"
    if _first(errors, "Connection refused") is not None:
        return "connection refused (is the bootstrap address right and the cluster running?)"
    resolve = _first(errors, "_RESOLVE")
    if resolve is not None:
        return f"cannot resolve the bootstrap address: {clean(resolve.text)}"
    if any(marker in e.text for e in errors for marker in ("closed by peer", "ApiVersion")):
        return "the broker closed the connection (does security_protocol match its listener?)"
    other = next((e for e in errors if e.name != "_ALL_BROKERS_DOWN"), None)
    if other is not None:
        return clean(other.text)
    return (
        f"no broker answered within {timeout:g}s (is the bootstrap address right, and does "
        "security_protocol match the listener?)"
    )


def settings_cause(text: str) -> str:
    """One line for settings librdkafka refuses when it creates a client (it loads the CA,
    certificate and key then, decrypting the key with its password)."""
    detail = text.removeprefix("Failed to create admin client: ")
    if detail.startswith("ssl.key"):
        return "cannot load the TLS client key (wrong key password, or not a PEM key?)"
    return f"client settings refused: {detail}"


def _user(bootstrap: str) -> str | None:
    sasl = clients.security_for(bootstrap).sasl
    return sasl.username if sasl is not None else None


def reach(bootstrap: str, timeout: float = 5.0) -> Reached:
    """The cluster's brokers and the topics this user sees; UsageError with the one-line
    cause (no cluster name) when no broker answers within `timeout` seconds."""
    errors: list[ClientError] = []
    lock = threading.Lock()

    def on_error(err: KafkaError) -> None:
        with lock:
            errors.append(ClientError(err.name(), err.str()))

    try:
        client = clients.admin(bootstrap, {"error_cb": on_error})
    except KafkaException as exc:  # a certificate or key librdkafka cannot load
        raise UsageError(settings_cause(exc.args[0].str())) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            md = client.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return Reached(sorted(md.brokers), sorted(str(t) for t in md.topics))
        except KafkaException:
            pass  # why is in the callback's errors, served by poll
        client.poll(0)
        with lock:
            seen = list(errors)
        if any(e.name in _DECISIVE for e in seen) or time.monotonic() >= deadline:
            raise UsageError(cause(seen, _user(bootstrap), timeout))


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def permission_problems(
    bootstrap: str, reached: Reached, expected_topics: Iterable[str] = (), timeout: float = 10.0
) -> list[str]:
    """What the backup may not do on the primary, one line each (no cluster name): describe,
    read and describe the configs of its topics (those it sees and `expected_topics`, the
    primary names of what the mirror holds), and describe consumer groups."""
    who = f"user {_user(bootstrap) or '(anonymous)'}"
    client = clients.admin(bootstrap)  # must outlive its futures
    problems = _topic_problems(client, who, reached, expected_topics, timeout)
    # Finding a group's coordinator creates __consumer_offsets where it is missing: a
    # primary without it has never had a group, so there is nothing of groups to read.
    if CONSUMER_OFFSETS in reached.topics:
        problems += _group_problems(client, who, timeout)
    return problems


def _topic_problems(
    client: AdminClient,
    who: str,
    reached: Reached,
    expected_topics: Iterable[str],
    timeout: float,
) -> list[str]:
    names = sorted({t for t in reached.topics if not t.startswith("__")} | set(expected_topics))
    if not names:
        return []
    hidden: list[str] = []
    lacking: dict[str, list[str]] = {operation: [] for operation in _TOPIC_OPERATIONS}
    problems: list[str] = []
    futures = client.describe_topics(
        TopicCollection(names), request_timeout=timeout, include_authorized_operations=True
    )
    for name, future in sorted(futures.items()):
        try:
            described = future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() == "TOPIC_AUTHORIZATION_FAILED":
                hidden.append(name)
            elif err.name() != "UNKNOWN_TOPIC_OR_PART":  # gone from the primary: not ours
                problems.append(f"describing topic {name}: {err.str()}")
            continue
        if described.authorized_operations is None:  # a broker before KIP-430: no answer
            continue
        allowed = {op.name for op in described.authorized_operations}
        for operation, missing in lacking.items():
            if operation not in allowed:
                missing.append(name)
    if hidden:
        problems.append(
            f"{who} may not describe topics {_listed(hidden)} (TOPIC_AUTHORIZATION_FAILED): "
            "grant DESCRIBE on topics"
        )
    for operation, missing in lacking.items():
        if missing:
            problems.append(
                f"{who} may not {_TOPIC_OPERATIONS[operation]} topics {_listed(missing)}: "
                f"grant {operation} on topics"
            )
    return problems


@kafka_retry
def _describe_probe_group(client: AdminClient, timeout: float) -> None:
    # Retried while temporary: on a fresh cluster the group coordinator is still loading
    # (__consumer_offsets being created), which says nothing about permissions.
    client.describe_consumer_groups([PROBE_GROUP], request_timeout=timeout)[PROBE_GROUP].result()


def _group_problems(client: AdminClient, who: str, timeout: float) -> list[str]:
    try:
        _describe_probe_group(client, timeout)
    except KafkaException as exc:
        err = exc.args[0]
        if err.name() == "GROUP_AUTHORIZATION_FAILED":
            return [
                f"{who} may not describe consumer groups (GROUP_AUTHORIZATION_FAILED): "
                "grant DESCRIBE on groups"
            ]
        return [f"describing consumer groups: {err.name()}: {err.str()}"]
    return []

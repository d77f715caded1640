"""May this client write to (or create) topics on a cluster? Asked without writing.

Existing topics: DescribeTopics with KIP-430's authorized operations. Missing topics: a
CreateTopics with validate_only, which the broker authorizes (CREATE) and validates but
never carries out. No record is produced and no producer id is taken.
"""

from __future__ import annotations

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import NewTopic

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients

# Describing a topic one may not describe answers this, not a list of operations.
NOT_AUTHORIZED = "TOPIC_AUTHORIZATION_FAILED"


def user_of(bootstrap: str) -> str | None:
    """The SASL user clients of `bootstrap` log in as (None: anonymous or TLS identity)."""
    sasl = clients.security_for(bootstrap).sasl
    return sasl.username if sasl is not None else None


def topic_operations(
    bootstrap: str, topics: list[str], timeout: float = 10.0
) -> dict[str, frozenset[str] | None]:
    """Topic -> the operations this client may do on it (empty: may not even describe it;
    None: the broker predates KIP-430 and does not say)."""
    if not topics:
        return {}
    client = clients.admin(bootstrap)  # must outlive its futures
    futures = client.describe_topics(
        TopicCollection(sorted(topics)),
        request_timeout=timeout,
        include_authorized_operations=True,
    )
    out: dict[str, frozenset[str] | None] = {}
    for name, future in futures.items():
        try:
            described = future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() == NOT_AUTHORIZED:
                out[name] = frozenset()
                continue
            raise KastenBpError(f"describing topic {name} on {bootstrap}: {err.str()}") from None
        ops = described.authorized_operations
        out[name] = None if ops is None else frozenset(op.name for op in ops)
    return out


def create_refusals(
    bootstrap: str,
    topics: dict[str, tuple[int, dict[str, str]]],
    timeout: float = 10.0,
) -> dict[str, str]:
    """Topic -> why creating it would fail (`ERROR_NAME: text`), for topic -> (partitions,
    configs); topics the broker would create are left out. Nothing is created."""
    if not topics:
        return {}
    client = clients.admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, n, -1, config=conf) for name, (n, conf) in sorted(topics.items())],
        request_timeout=timeout,
        validate_only=True,
    )
    out: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() != "TOPIC_ALREADY_EXISTS":  # appeared meanwhile: a later check says
                out[name] = f"{err.name()}: {err.str()}"
    return out

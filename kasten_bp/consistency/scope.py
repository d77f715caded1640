"""The backup's scope: which mirror partitions replicate which primary partitions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kasten_bp.config import ReplicationConfig
from kasten_bp.errors import UsageError
from kasten_bp.kafka import admin
from kasten_bp.kafka.configs import topic_configs

# Topics that belong to Connect, MM2 or Kafka itself, never to the user.
INTERNAL_SUFFIXES = (".internal", ".replica", ".heartbeats")
INTERNAL_NAMES = {"heartbeats"}
INTERNAL_PREFIXES = ("__", "mirrormaker2-cluster-", "connect-", "mm2-")


def is_internal(topic: str) -> bool:
    return (
        topic in INTERNAL_NAMES
        or topic.startswith(INTERNAL_PREFIXES)
        or topic.endswith(INTERNAL_SUFFIXES)
    )


def compile_topics(regex: str | None) -> re.Pattern[str] | None:
    """A `--topic` option: a regular expression that topic names must fully match."""
    if regex is None:
        return None
    try:
        return re.compile(regex)
    except re.error as exc:
        raise UsageError(f"--topic {regex!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True)
class ReplicatedPartition:
    mirror_topic: str
    primary_topic: str
    partition: int

    @property
    def mirror_key(self) -> tuple[str, int]:
        return (self.mirror_topic, self.partition)

    @property
    def primary_key(self) -> tuple[str, int]:
        return (self.primary_topic, self.partition)


def replicated_partitions(
    primary: str, mirror: str, replication: ReplicationConfig
) -> list[ReplicatedPartition]:
    """Mirror partitions that replicate a primary topic (the backup's scope)."""
    mirror_topics = admin.topics(mirror)
    primary_topics = admin.topics(primary)
    out = []
    for mirror_topic, count in sorted(mirror_topics.items()):
        if is_internal(mirror_topic):
            continue
        primary_topic = replication.primary_topic(mirror_topic)
        if primary_topic is None or primary_topic not in primary_topics:
            continue
        out += [ReplicatedPartition(mirror_topic, primary_topic, p) for p in range(count)]
    return out


def compacted_topics(bootstrap: str, topic_names: list[str]) -> set[str]:
    configs = topic_configs(bootstrap, topic_names)
    return {t for t, c in configs.items() if "compact" in c.get("cleanup.policy", "")}
